"""compress_engine.playground.viz: the numbers behind the dashboard's charts, checked against hand-computed values."""

import numpy as np
import pytest
import torch

import compress_engine as ce
from compress_engine.core import quantize, structured
from compress_engine.playground import viz
W = {"fc1.weight": np.array([[0.0, 1.0, -2.0], [0.5, 0.0, 0.0]]), "fc1.bias": np.array([3.0, 0.0]),
     "conv.weight": np.array([[[[0.0, 4.0], [0.0, -1.0]]]])}  # conv: 1 out, 1 in, 2x2 kernel


def test_compressible_names_are_weights_with_two_or_more_dims():
    assert viz.compressible_names(W) == ["fc1.weight", "conv.weight"]
    assert viz.compressible_names({"w": np.zeros((2, 2)), "x.weight": np.zeros(3)}) == []


def test_values_and_nonzero_values():
    assert viz.values(W).tolist() == [0, 1, -2, 0.5, 0, 0, 0, 4, 0, -1]
    assert viz.nonzero_values(W).tolist() == [1, -2, 0.5, 4, -1]
    assert viz.nonzero_values(W, ["conv.weight"]).tolist() == [4, -1]
    assert viz.values({}).size == 0


def test_kept_and_channel_values():
    dense = np.array([[0.1, 0.2], [0.3, 0.4]])
    pruned = np.array([[0.0, 0.2], [0.3, 0.0]])
    assert viz.kept_mask(pruned).tolist() == [[False, True], [True, False]]
    assert viz.kept_values(dense, pruned).tolist() == [0.2, 0.3]
    assert viz.channel_values(W["conv.weight"], 0).tolist() == [0, 4, 0, -1]
    assert viz.channel_values(W["fc1.weight"], 1).tolist() == [0.5, 0, 0]
    with pytest.raises(IndexError):
        viz.channel_values(W["fc1.weight"], 2)


def test_centroids_are_the_distinct_nonzero_values():
    assert viz.centroids(np.array([[0, 0.5, -0.25], [0.5, 0, -0.25]])).tolist() == [-0.25, 0.5]
    assert viz.centroids(np.zeros((2, 2))).size == 0


def test_value_range():
    assert viz.value_range(np.array([1.0, -2.0]), np.array([3.0])) == (-2.0, 3.0)
    assert viz.value_range(np.array([0.0, 4.0]), pad=0.25) == (-1.0, 5.0)
    assert viz.value_range(np.zeros(0)) == (-1.0, 1.0)
    lo, hi = viz.value_range(np.array([2.0, 2.0]))
    assert lo < 2.0 < hi


def test_histogram_counts_and_edges():
    counts, edges = viz.histogram([0, 0.25, 0.5, 1, 1], bins=2, range=(0, 1))
    assert counts.tolist() == [2, 3] and edges.tolist() == [0, 0.5, 1]  # the last bin includes its right edge
    counts, edges = viz.histogram([-1, 1, 1, 1], bins=4)  # range from the data
    assert counts.tolist() == [1, 0, 0, 3] and edges[0] == -1 and edges[-1] == 1
    counts, _ = viz.histogram([5.0], bins=3, range=(0, 1))  # outside an explicit range: not counted
    assert counts.sum() == 0


def test_mask_image_full_size():
    img, block = viz.mask_image(W["fc1.weight"])
    assert block == (1, 1) and img.tolist() == [[0, 1, 1], [1, 0, 0]]
    img, block = viz.mask_image(W["conv.weight"])  # conv: out x (in*k*k)
    assert block == (1, 1) and img.tolist() == [[0, 1, 0, 1]]
    with pytest.raises(ValueError):
        viz.mask_image(np.ones(4))


def test_mask_image_downsamples_by_blocks():
    w = np.array([[1, 1, 0, 0, 1, 0],
                  [1, 0, 0, 0, 1, 1],
                  [0, 0, 0, 0, 0, 0],
                  [1, 1, 1, 1, 1, 0]], dtype=float)
    img, block = viz.mask_image(w, max_side=3)  # 4x6 -> blocks of 2x2 -> 2x3 pixels
    assert block == (2, 2)
    np.testing.assert_allclose(img, [[3 / 4, 0, 3 / 4], [2 / 4, 2 / 4, 1 / 4]])
    img, block = viz.mask_image(np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]]), max_side=2)  # partial edge blocks
    assert block == (2, 2)
    np.testing.assert_allclose(img, [[1 / 4, 2 / 2], [2 / 2, 0 / 1]])
    img, block = viz.mask_image(np.ones((500, 800)), max_side=300)  # LeNet-5 fc1
    assert block == (2, 3) and img.shape == (250, 267) and np.all(img == 1)


def test_structured_masks_by_hand():
    mlp = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    with torch.no_grad():
        mlp[0].weight.copy_(torch.tensor([[3.0, 4.0], [0.1, 0.1], [1.0, 0.0]]))  # norms 5, 0.14, 1: 1/3 drops row 1
        mlp[2].weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))  # last layer: column 1 goes with unit 1
    m = viz.structured_masks(mlp, 1 / 3, torch.zeros(1, 2))
    assert list(m) == ["0.weight", "2.weight"]
    assert m["0.weight"].tolist() == [[True, True], [False, False], [True, True]]
    assert m["2.weight"].tolist() == [[True, False, True], [True, False, True]]
    # conv channels flattened into a Linear: each channel owns a block of 2 columns (a 1x2 map)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        cnn[0].weight.copy_(torch.tensor([1.0, 0.5]).view(2, 1, 1, 1))  # filter 1 is weaker
    m = viz.structured_masks(cnn, 0.5, torch.zeros(1, 1, 1, 2))
    assert m["0.weight"][:, 0, 0, 0].tolist() == [True, False]
    assert m["2.weight"].tolist() == [[True, True, False, False]] * 2


@pytest.mark.parametrize("name", ["lenet-300-100", "lenet-5"])
def test_structured_masks_select_what_the_engine_keeps(name):
    """The pages pass a sample model's dense weights; the masks select exactly the smaller model's weights."""
    model = ce.load_model(name)
    dense = {k: v.numpy() for k, v in model.state_dict().items()}
    for s in (0.3, 0.9):
        small = structured.prune_structured(model, s, torch.zeros(1, 1, 28, 28)).state_dict()
        for layer, mask in viz.structured_masks(dense, s).items():
            assert mask.shape == dense[layer].shape
            np.testing.assert_array_equal(dense[layer][mask], small[layer].numpy().ravel())


def test_layer_sparsity():
    metrics = {"layers": [
        {"name": "fc1.weight", "shape": [2, 4], "params": 8, "nonzero": 2},
        {"name": "fc1.bias", "shape": [2], "params": 2, "nonzero": 2},
        {"name": "fc2.weight", "shape": [1, 2], "params": 2, "nonzero": 2}]}
    rows = viz.layer_sparsity(metrics)
    assert [r["name"] for r in rows] == ["fc1.weight", "fc2.weight"]
    assert [r["sparsity"] for r in rows] == [0.75, 0.0]
    dense = {"layers": [{"name": "fc1.weight", "shape": [4, 4], "params": 16, "nonzero": 16},
                        {"name": "fc2.weight", "shape": [1, 4], "params": 4, "nonzero": 4}]}
    rows = viz.layer_sparsity(metrics, dense)  # structured: the dense layer is the denominator
    assert [(r["params"], r["sparsity"]) for r in rows] == [(16, 0.875), (4, 0.5)]


def test_quant_grid_by_hand():
    g = viz.quant_grid(np.array([-1.0, 0.0, 0.5, 1.0]), 2)  # affine: s = 2/3, z = -round(-1.5) = 2
    assert (g["qmin"], g["qmax"], g["zero_point"]) == (0, 3, 2) and g["channel"] is None
    np.testing.assert_allclose(g["values"], [-4 / 3, -2 / 3, 0, 2 / 3], rtol=1e-6)
    assert viz.quant_grid(np.array([0.0, 3.0]), 2)["values"].tolist() == [0, 1, 2, 3]
    g = viz.quant_grid(np.array([-1.0, 0.0, 0.5]), 3, symmetric=True)  # s = 1 / (7/2), q in -4..3
    np.testing.assert_allclose(g["values"], np.arange(-4, 4) * 2 / 7, rtol=1e-6)
    g = viz.quant_grid(np.array([[0.0, 3.0], [0.0, 6.0]]), 2, per_channel=True, channel=1)
    assert g["values"].tolist() == [0, 2, 4, 6] and g["channel"] == 1 and g["scale"] == 2.0
    assert len(viz.quant_grid(np.array([-1.0, 1.0]), 16)["values"]) == 65536
    with pytest.raises(ce.RecipeError):
        viz.quant_grid(np.array([-1.0, 1.0]), 1, symmetric=True)


@pytest.mark.parametrize("kw", [dict(bits=4), dict(bits=3, symmetric=True, per_channel=True),
                                dict(bits=5, calibration="mse")])
def test_quantized_weights_lie_on_the_grid(kw):
    w = torch.randn(6, 40, generator=torch.Generator().manual_seed(0))
    fq = quantize.fake_quantize(w, **kw).numpy()
    for c in range(6 if kw.get("per_channel") else 1):
        grid = viz.quant_grid(w.numpy(), channel=c, **kw)["values"]
        row = fq[c] if kw.get("per_channel") else fq.ravel()
        assert np.isin(row.astype(np.float64), grid).all()


def test_curve_points():
    assert viz.curve_points([0, 50, 90], 85) == [0, 50, 85, 90]
    assert viz.curve_points((2, 4, 8), 4) == [2, 4, 8]


# --- axes, colours and reference series (issue 12) -------------------------------------------------

def test_log_ticks_are_whole_readable_numbers():
    def labels(values):
        return [t for _, t in viz.log_ticks(values)]
    assert labels([16, 1067]) == ["20", "50", "100", "200", "500", "1,000"]
    assert labels([1, 100_000]) == ["1", "10", "100", "1,000", "10,000", "100,000"]
    assert labels([20, 35]) == ["20", "30"]
    assert labels([20.4, 26.1, 243.1, 1066.4])[:2] == ["20", "50"]  # a tick just beyond the smallest run, not 50 alone
    assert labels([0.5, 3]) == ["0.5", "0.6", "0.7", "0.8", "0.9", "1", "2", "3"]
    assert labels([21, 22]) == ["20", "30"]  # too short a range for two ticks inside: the nearest around it
    assert labels([100, 100]) == ["100"] and labels([0, -1, None]) == []
    for values in ([3, 7], [2, 256], [1e-3, 5], [12, 9e6]):
        ticks = [v for v, _ in viz.log_ticks(values)]
        assert 2 <= len(ticks) <= 8 and ticks == sorted(ticks)


def test_palette_hues_are_far_apart():
    import colorsys
    assert len(set(viz.PALETTE)) == len(viz.PALETTE) >= 8 and viz.GREY not in viz.PALETTE
    hls = [colorsys.rgb_to_hls(*(int(c[i:i + 2], 16) / 255 for i in (1, 3, 5))) for c in viz.PALETTE[:6]]
    for i, a in enumerate(hls):  # the colours a handful of techniques get: 25 degrees of hue apart
        for b in hls[i + 1:]:
            apart = min(abs(a[0] - b[0]), 1 - abs(a[0] - b[0])) * 360
            assert apart >= 25, (a, b)
    for h, lightness, s in hls:  # seen on a white page and on the dark theme's near-black one alike
        assert 0.3 <= lightness <= 0.7, viz.PALETTE


def test_reference_series_groups_and_labels_the_benchmark_points():
    points = [{"source": "deep_compression.csv", "model": "m", "label": "dense float32", "artifact_bytes": 1000,
               "accuracy": 0.9},
              {"source": "deep_compression.csv", "model": "m", "label": "+ Huffman (Deep Compression)",
               "artifact_bytes": 25, "accuracy": 0.89},
              {"source": "techniques.csv", "model": "m", "label": "prune @ 1/8", "artifact_bytes": 125, "accuracy": 0.8},
              {"source": "techniques.csv", "model": "m", "label": "prune @ 1/16", "artifact_bytes": 60, "accuracy": 0.7}]
    [dc] = viz.reference_series(points, "deep_compression.csv")
    assert dc["labels"] == ["dense float32", "+ Huffman"] and dc["bytes"] == [1000, 25]
    assert dc["hover"] == ["dense float32", "+ Huffman (Deep Compression)"]
    [prune] = viz.reference_series(points, "techniques.csv")
    assert prune["name"] == "m: prune" and prune["labels"] == ["", "prune"] and prune["bytes"] == [125, 60]
    assert viz.reference_series(points, "other.csv") == []
    two = points + [dict(p, model="n") for p in points]  # two models' grey lines: each names its model once
    assert [s["labels"] for s in viz.reference_series(two, "deep_compression.csv")] == [
        ["m: dense float32", "+ Huffman"], ["n: dense float32", "+ Huffman"]]
    assert [s["labels"] for s in viz.reference_series(two, "techniques.csv")] == [["", "m: prune"], ["", "n: prune"]]


def test_next_steps_are_a_sliders_neighbours_either_way():
    assert viz.next_steps(range(100), 80) == [81, 79]
    assert viz.next_steps(range(100), 0) == [1] and viz.next_steps(range(100), 99) == [98]
    assert viz.next_steps((2, 4, 8, 16), 4) == [8, 2]


def test_zero_share_is_of_a_models_own_parameters():
    assert viz.zero_share(75, 100) == 0.25
    assert viz.zero_share(110_688, 110_688) == 0  # a structured-pruned model: fewer parameters, none of them zero
    assert viz.zero_share(None, 100) is None and viz.zero_share(5, 0) is None and viz.zero_share(True, 4) is None


def test_a_stage_named_by_the_bench_is_labelled_by_what_it_did():
    """Compare labelled LeNet-5's '97 % pruned, 16 conv / 8 fc clusters' point 'stretch' (the bench's name for it),
    which told a class nothing; the hover keeps the whole label."""
    points = [{"source": "deep_compression.csv", "model": "m", "label": "stretch: 97% pruned, 16 conv / 8 fc clusters",
               "artifact_bytes": 16043, "accuracy": 0.91}]
    [dc] = viz.reference_series(points, "deep_compression.csv")
    assert dc["labels"] == ["97% pruned"] and dc["hover"] == [points[0]["label"]]
