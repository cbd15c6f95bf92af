"""The sidebar took an uploaded LeNet-5 only with 10 outputs: a LeNet-5 trained for a 5-class IDX dataset (fc2.weight
[5, 500]) was refused on those very data, as 'must be [10, ..]', though an MLP of 5 outputs was taken. Now a LeNet-5's
outputs are read from its checkpoint (fc2.weight's rows) and kept in its spec (so its artifacts rebuild it), and a
LeNet-5 (or LeNet-300-100) whose outputs do not fit the chosen data's classes is refused saying so."""

import io

import numpy as np
import pytest
import torch

import compress_engine as ce
from compress_engine.playground import zoo
from conftest import write_idx


def idx_folder(folder, classes, n_train=256, n_test=200):
    rng = np.random.default_rng(classes)
    folder.mkdir()
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % classes)
    return ce.load_dataset(f"idx:{folder}")


@pytest.fixture(scope="module")
def five(tmp_path_factory):
    return idx_folder(tmp_path_factory.mktemp("fix52") / "five", 5)


@pytest.fixture(scope="module")
def ten(tmp_path_factory):
    return idx_folder(tmp_path_factory.mktemp("fix52") / "ten", 10)


def saved(model):
    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def lenet(classes):
    torch.manual_seed(0)
    return zoo.LeNet5((6, 16, 120), n_classes=classes)


def lenet300(classes):
    torch.manual_seed(0)
    return zoo.build({"arch": "mlp", "sizes": [784, 300, 100, classes]})


@pytest.mark.parametrize("make", [lenet, lenet300])
@pytest.mark.parametrize("classes", [5, 12])
def test_a_checkpoint_of_other_outputs_loads_on_data_it_fits(five, make, classes):
    original = make(classes).eval()
    model = ce.read_weights(saved(original), "mine.pt", cost_limit=True, dataset=five)
    x = five.x("test")[:8]
    assert model(x).shape == (8, classes)
    assert torch.equal(model(x), original(x))  # the same function: the outputs read from the file, not assumed
    if make is lenet:
        assert model.spec() == {"arch": "lenet5", "widths": [6, 16, 120], "classes": classes}


def test_its_artifact_rebuilds_it_with_its_outputs(five):
    model = ce.read_weights(saved(lenet(5)), "mine.pt", dataset=five)
    result = ce.compress(model, ce.Recipe(sparsity=0.5, clusters=16), five)
    decoded, meta = ce.decode_model(result.artifact)  # from the header's spec alone, as Export's Check does
    assert meta["spec"]["classes"] == 5 and decoded.fc2.out_features == 5
    x = five.x("test")[:16]
    assert torch.allclose(decoded(x), result.model(x), atol=1e-5)
    out = ce.evaluate_artifact(result.artifact, five, max_params=zoo.MAX_UPLOAD_PARAMS, cost_limit=True)
    assert out["accuracy"] == result.metrics["accuracy"]


def test_a_ten_output_lenet_is_described_as_before():
    # its spec (every sample artifact's header, the card's, the caches' keys) carries no class count
    assert zoo.LeNet5().spec() == {"arch": "lenet5", "widths": [20, 50, 500]}
    assert zoo.build({"arch": "lenet5", "widths": [20, 50, 500]}).fc2.out_features == 10
    assert ce.arch_text({"arch": "lenet5", "widths": [20, 50, 500], "classes": 5}).endswith("5 outputs")


@pytest.mark.parametrize("bad", [0, -1, True, "5", 10**9])
def test_a_spec_of_no_sensible_class_count_is_refused(bad):
    with pytest.raises(ce.ModelError, match="classes must be an integer"):
        zoo.build({"arch": "lenet5", "widths": [6, 16, 120], "classes": bad})


@pytest.mark.parametrize("make, words", [
    (lenet, r"fc2\.weight is \[5, 120\]: 5 outputs, one a class, for 10 or more classes here.*"
            r"fc2\.weight must have 10 or more rows"),
    (lenet300, r"an MLP of sizes \[784, 300, 100, 5\] cannot run here.*10 classes.*\[784, \.\.\., 10 or more\]")])
def test_too_few_outputs_for_the_data_is_refused_in_words(ten, make, words):
    with pytest.raises(ce.ModelError, match=words) as e:
        ce.read_weights(saved(make(5)), "mine.pt", dataset=ten)
    assert "mine.pt" in str(e.value) and "size mismatch" not in str(e.value)


def test_the_sidebar_says_a_lenet_of_the_datas_outputs_is_taken(five):
    assert "a LeNet-5 of 5 or more outputs" in zoo.sidebar_takes(five)
