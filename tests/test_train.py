"""compress_engine.core.train: subnormal weights, and weights so small that their products are, never ship, never
survive training, never come out of compress()."""

import copy
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
import torch.nn.functional as F
from torch import nn

import compress_engine as ce
from compress_engine.core import train
from compress_engine.core.train import fit, flush_tiny_, tiny_limit

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "sample_models").glob("*.safetensors"))


def subnormals(tensors):
    """How many values of the floating tensors lie strictly between 0 and their dtype's smallest normal."""
    return sum(int(((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).sum()) for t in tensors if t.is_floating_point())


def tiny(tensors):
    """How many values are non-zero and below tiny_limit: subnormal, or with subnormal products."""
    return sum(int(((t != 0) & (t.abs() < tiny_limit(t.dtype))).sum()) for t in tensors if t.is_floating_point())


def test_tiny_limit_is_the_square_root_of_the_smallest_normal():
    # so a kept weight times an activation or gradient of at least the same size is a normal number
    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        lim = torch.tensor(tiny_limit(dtype), dtype=dtype)
        assert lim * lim >= torch.finfo(dtype).tiny and (lim / 2) * (lim / 2) < torch.finfo(dtype).tiny
    assert tiny_limit(torch.float32) == 2.0 ** -63
    assert tiny_limit(torch.float16) == torch.finfo(torch.float16).tiny  # its normal range is too narrow for that


def test_flush_zeroes_exactly_the_values_below_the_limit_of_each_dtype():
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        lim, sub = tiny_limit(dtype), torch.finfo(dtype).tiny / 4
        t = torch.tensor([lim, -lim, lim / 2, -lim / 2, sub, -sub, 0.0, -0.0, 1.0], dtype=dtype)
        assert tiny([t]) == 4
        assert flush_tiny_([t]) == 4
        assert t.tolist() == [lim, -lim, 0.0, 0.0, 0.0, 0.0, 0.0, -0.0, 1.0]
        assert not torch.signbit(t[3]) and not torch.signbit(t[5])  # +0, which the encoder stores as "no element"
    ints = torch.tensor([1, 0, -3])
    assert flush_tiny_([ints]) == 0 and ints.tolist() == [1, 0, -3]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_shipped_checkpoints_hold_no_tiny_weight(path):
    # subnormals made LeNet-5's evaluation 20x slower (8.6 s instead of 0.4 s) and faked a 27-40x int8 speed-up;
    # the 432k normal weights below 2^-63 the teacher then still held made it evaluate 2-3x slower
    assert tiny(load_file(path).values()) == 0


def test_training_leaves_no_tiny_weight(small):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():  # the top rows of pixels are background (all 0): their weights get no gradient,
        model[1].weight[:, :28] = 1e-40  # so only flushing can remove these subnormals
        model[1].weight[:, 28:56] = 1e-25  # and these normal but tiny weights (weight decay only shrinks them)
    assert subnormals(model.parameters()) == 280 and tiny(model.parameters()) == 560
    fit(model, small, epochs=1, lr=1e-3, weight_decay=1e-4)
    assert tiny(model.parameters()) == 0


def test_training_flushes_every_few_steps_not_only_at_the_end(small):
    from compress_engine.core.train import FLUSH_EVERY
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    blank = (small.x("train").flatten(1) == 0).all(0)  # pixels 0 in every training image: their weights get no
    assert blank.sum() > 0                                # gradient (and no weight decay here), so only a flush
    with torch.no_grad():                                 # removes them
        model[1].weight[:, blank] = 1e-25  # normal, but below the limit (subnormals go at the first step: fit's
    seen = {}                              # thread reads them as zero)
    fit(model, small, epochs=1, lr=1e-3, on_step=lambda step, total: seen.setdefault(step, tiny(model.parameters())))
    assert seen[0] == seen[FLUSH_EVERY - 1] == 10 * int(blank.sum())  # the steps between two flushes keep them
    assert seen[FLUSH_EVERY] == 0 and tiny(model.parameters()) == 0


def test_compress_output_holds_no_tiny_weight(lenet300, small):
    r = ce.compress(lenet300, ce.Recipe(sparsity=0.8, clusters=8, finetune_epochs=1), small)
    assert tiny(r.model.state_dict().values()) == 0
    assert tiny(ce.decode(r.artifact).values()) == 0


def test_fit_flushes_subnormal_arithmetic_on_its_thread_and_leaves_the_default_after(small):
    sub = torch.tensor([1e-39])  # a subnormal float32
    seen = []

    def loss_fn(out, idx, y):
        seen.append(float(sub * 1.0))  # 0 while this thread flushes denormals
        return nn.functional.cross_entropy(out, y)

    torch.manual_seed(0)
    fit(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), small, epochs=1, lr=1e-3, loss_fn=loss_fn)
    assert seen and set(seen) == {0.0}
    assert float(sub * 1.0) > 0  # torch's default again afterwards


def test_stop_when_stops_logits_before_a_batch_on_its_own_thread_only():
    model = nn.Sequential(nn.Linear(4, 3)).train()
    x = torch.randn(2500, 4)
    asked = []

    def check():
        asked.append(1)
        return len(asked) > 2
    with ce.stop_when(check):
        with pytest.raises(ce.Stopped):
            ce.logits(model, x)  # batches of 1,000: asked before each, it stops before the third
        assert len(asked) == 3 and model.training  # the model is left as it was
        other = []
        thread = threading.Thread(target=lambda: other.append(tuple(ce.logits(model, x).shape)))
        thread.start()
        thread.join()
        assert other == [(2500, 3)] and len(asked) == 3  # another thread's evaluation is not asked about
        with ce.stop_when(lambda: False):
            assert ce.logits(model, x).shape == (2500, 3)  # the inner check applies
        with pytest.raises(ce.Stopped):
            ce.logits(model, x)  # and the outer one again after it
    assert ce.logits(model, x).shape == (2500, 3)  # outside, nothing is asked


def test_paced_is_called_before_each_training_step_and_evaluation_batch_on_its_own_thread(small):
    """train.paced: fit() calls its fn("step") before each optimizer step (and its epoch-end evaluation fn("batch")
    before each batch), logits() fn("batch") before each batch; another thread's calls are not heard, and outside it
    nothing is called."""
    calls = []
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    steps, batches = train.train_steps(small, 1), train.eval_steps(model, len(small.y("test")))
    with train.paced(lambda kind: calls.append((threading.current_thread(), kind))):
        fit(model, small, epochs=1)
        assert [k for _, k in calls] == ["step"] * steps  # no progress: no epoch-end evaluation
        fit(model, small, epochs=1, progress=lambda *a: True)
        assert [k for _, k in calls[steps:]] == ["step"] * steps + ["batch"] * batches
        thread = threading.Thread(target=lambda: ce.logits(model, small.x("test")))
        thread.start()
        thread.join()
        assert {t for t, _ in calls} == {threading.current_thread()}
    n = len(calls)
    ce.logits(model, small.x("test"))
    assert len(calls) == n


def test_bfloat16_precision_runs_the_forward_pass_in_bfloat16_and_keeps_float32_weights(small):
    """fit(precision="bfloat16") is torch.autocast's mixed precision: the layers compute in bfloat16, the weights and
    the optimizer stay float32, and the model learns as in float32 (within a point here); evaluation is float32."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    reference = copy.deepcopy(model)
    seen = []
    model[1].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    fit(model, small, epochs=2, precision="bfloat16")
    assert set(seen) == {torch.bfloat16} and len(seen) == train.train_steps(small, 2)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    fit(reference, small, epochs=2)
    x, y = small.x("test"), small.y("test")
    mixed, plain = train.accuracy(model, x, y), train.accuracy(reference, x, y)
    assert seen[-1] == torch.float32  # the evaluation
    assert mixed > 0.6 and abs(mixed - plain) < 0.01, (mixed, plain)
    with pytest.raises(ValueError, match="precision='float16'"):
        fit(model, small, precision="float16")


def test_logits_report_each_batch_and_stop_when_told_with_the_same_numbers():
    model, x, seen = nn.Sequential(nn.Linear(4, 3)).train(), torch.randn(2500, 4), []
    out = ce.logits(model, x, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1000, 2500), (2000, 2500), (2500, 2500)] and torch.equal(out, ce.logits(model, x))
    with pytest.raises(ce.Stopped):  # False after the second batch: no third
        ce.logits(model, x, progress=lambda done, total: seen.append(done) or done < 2000)
    assert seen[3:] == [1000, 2000] and model.training  # the model is left as it was


def test_stop_when_abandons_a_whole_compress_run(lenet300, small):
    batches = []
    with ce.stop_when(lambda: batches.append(1) or len(batches) > 1):  # 2,000 test images: 2 batches each
        with pytest.raises(ce.Stopped):
            ce.compress(lenet300, ce.Recipe(sparsity=0.5), small)
    assert len(batches) == 2


# -----------------------------------------------------------------------------
# recalibrate_batchnorm: the statistics of the inputs each BatchNorm now sees


class NormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc, self.bn1d = nn.Linear(4 * 6 * 6, 5), nn.BatchNorm1d(5)

    def forward(self, x):
        return self.bn1d(self.fc(self.drop(F.relu(self.bn(self.conv(x)))).flatten(1)))


def test_recalibrated_statistics_are_the_average_of_each_batchs_as_torch_computes_them():
    """Each BatchNorm's running mean and variance become the average over the drawn batches of that batch's mean
    and unbiased variance of its input (the earlier BatchNorms normalizing by their batch's statistics, as in
    training), computed here with hooks and torch.var; dropout stays off, weights and modes are left as they
    were, and the momenta come back."""
    torch.manual_seed(0)
    model, x = NormNet().eval(), torch.randn(300, 1, 8, 8) * 3 + 1
    weights = {k: v.clone() for k, v in model.named_parameters()}
    seen = {"bn": [], "bn1d": []}
    ref = copy.deepcopy(model)
    for name in seen:
        ref.get_submodule(name).register_forward_pre_hook(lambda m, inp, name=name: seen[name].append(inp[0]))
        ref.get_submodule(name).train()  # batch statistics, as recalibration runs it; dropout stays in eval
    chosen = torch.randperm(300, generator=torch.Generator().manual_seed(7))[:256]
    with torch.no_grad():
        for c in chosen.split(64):
            ref(x[c])
    assert train.recalibrate_batchnorm(model, x, inputs=256, batch_size=64, seed=7) == 2
    for name, dims in (("bn", (0, 2, 3)), ("bn1d", (0,))):
        bn = model.get_submodule(name)
        mean = torch.stack([t.mean(dims) for t in seen[name]]).mean(0)
        var = torch.stack([t.var(dims, unbiased=True) for t in seen[name]]).mean(0)
        assert torch.allclose(bn.running_mean, mean, atol=1e-5) and torch.allclose(bn.running_var, var, rtol=1e-4)
        assert bn.momentum == 0.1 and bn.num_batches_tracked == 4 and not bn.training
    assert not model.training and all(torch.equal(p, weights[k]) for k, p in model.named_parameters())
    first = model.bn.running_mean.clone()  # the same draw, the same statistics
    train.recalibrate_batchnorm(model.train(), x, inputs=256, batch_size=64, seed=7)
    assert torch.equal(model.bn.running_mean, first) and model.training and model.drop.training


def test_recalibration_skips_models_without_statistics_and_single_inputs():
    class Refuses(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.ln = nn.Linear(4, 4), nn.LayerNorm(4)
            self.bn = nn.BatchNorm1d(4, track_running_stats=False)

        def forward(self, x):
            raise AssertionError("no forward pass for a model without running statistics")

    assert train.recalibrate_batchnorm(Refuses(), torch.randn(10, 4)) == 0
    model = NormNet().eval()
    before = model.bn.running_mean.clone()
    assert train.recalibrate_batchnorm(model, torch.randn(1, 1, 8, 8)) == 0  # one input: no statistics to take
    assert torch.equal(model.bn.running_mean, before)
    assert train.recalibrate_batchnorm(model, torch.randn(129, 1, 8, 8)) == 2  # 128 + a lone input, which is left out
    assert model.bn.num_batches_tracked == 1
