"""Uploads on a server of its own data (a reviewer's 16x16 and 5-class IDX folders, tables): a refusal said 'the data
are 28x28 greyscale images (1 channel) in 10 classes' whatever the data were, with no way on for a model the sidebar
cannot take. read_weights(dataset=...) now checks a model against the data it will run on, and a refusal names those
data (input shape, classes), what the sidebar takes on them (nothing, on data no page runs on: 16x16 images, 12
classes, a table) and the command line with their --data."""

import io

import pytest
import torch

import compress_engine as ce
from compress_engine.playground import zoo


def data(shape, classes, name, n=40):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes
    return ce.Dataset.from_tensors(torch.rand((n, *shape), generator=g), y, torch.rand((n, *shape), generator=g), y,
                                   name=name)


def pt(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def mlp(*sizes):
    return pt(zoo.build({"arch": "mlp", "sizes": list(sizes)}).state_dict())


def lenet(side=28, classes=10):
    """A LeNet-5 (widths 6-16-120) for side x side images and `classes` outputs, as its state dict."""
    after = ((side - 4) // 2 - 4) // 2
    net = torch.nn.ModuleDict({"conv1": torch.nn.Conv2d(1, 6, 5), "conv2": torch.nn.Conv2d(6, 16, 5),
                               "fc1": torch.nn.Linear(16 * after * after, 120), "fc2": torch.nn.Linear(120, classes)})
    return pt(net.state_dict())


def refusal(blob, ds, name="mine.pt"):
    with pytest.raises(ce.ModelError) as e:
        zoo.read_weights(blob, name, cost_limit=True, dataset=ds)
    return str(e.value)


NONE = ("the sidebar takes no model on these data: the dashboard's pages (sample models and uploads) take 28x28 "
        "greyscale images (1 channel) in at most 10 classes")


def ends_with_the_command_line(message, ds):
    assert message.endswith(zoo.command_line_text("'mine.pt'", ds)), message
    # the data the model was made for, not this server's: run with those, a tabular model failed on its images
    assert "--weights 'mine.pt' --data DATA " in message and "DATA is the data it was made for" in message, message
    assert f"this server's are {ds.name}" in message, message


def test_a_refusal_describes_the_data_loaded_not_fashion_mnist():
    small = data((1, 16, 16), 5, "small16")
    for blob, why in ((lenet(16, 5), "a LeNet-5 with 1 input channel(s) and 5 outputs cannot run here: it was built "
                                     "for 16x16 images"),
                      (mlp(784, 100, 5), "an MLP of sizes [784, 100, 5] cannot run here: the data here (small16) are "
                                         "16x16 greyscale images (1 channel) in 5 classes (256 inputs each), so for "
                                         "the engine and the command line a model for these data has sizes [256, "
                                         "..., 5 or more]; the sidebar takes no model")):
        message = refusal(blob, small)
        # the reason stays (for a caller of the engine), without a "must be" beside "takes no model" (a review)
        assert why in message, message
        assert "the data here (small16) are 16x16 greyscale images (1 channel) in 5 classes" in message, message
        assert "sizes must be" not in message, message
        assert "(1 channel) in 10 classes" not in message and "28x28 images (784 inputs)" not in message, message
        assert NONE in message, message  # a 256-input MLP would be read, but no page runs on 16x16 images
        ends_with_the_command_line(message, small)


def test_a_tabular_model_is_pointed_to_the_command_line():
    table = data((22,), 2, "csv:/t.csv")
    message = refusal(mlp(20, 32, 3), table)
    assert "the data here (csv:/t.csv) are rows of 22 features in 2 classes" in message, message
    assert "a model for these data has sizes [22, ..., 2 or more]" in message and NONE in message, message
    assert "sizes must be" not in message, message
    ends_with_the_command_line(message, table)
    assert zoo.arch_spec(zoo.read_weights(mlp(22, 32, 2), "mine.pt", dataset=table))["sizes"] == [22, 32, 2]


def test_a_lenet_of_ten_outputs_cannot_run_on_twelve_classes():
    twelve = data((1, 28, 28), 12, "twelve")
    message = refusal(lenet(), twelve)
    assert "in 12 classes" in message and "has 10 outputs, so it cannot run on these data" in message, message
    assert NONE in message, message
    ends_with_the_command_line(message, twelve)


def test_a_refusal_on_data_no_page_takes_keeps_a_renaming_hint():
    """A diff review: on a table, an nn.Sequential state dict of the right sizes lost its 'rename 0.* to layers.0.*'
    hint (every reason was replaced by the data's description); read through the engine it fits once renamed."""
    import io

    table = data((22,), 2, "csv:/t.csv")
    net = torch.nn.Sequential(torch.nn.Linear(22, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    message = refusal(buf.getvalue(), table)
    assert "rename 0.* to layers.0.*" in message, message
