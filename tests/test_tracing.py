"""core.tracing: the engine's torch.fx traces (BatchNorm folding, structured pruning) leave other threads alone.

torch.fx patches torch.nn.Module.__call__ for the whole process while it traces; a dashboard session that folded
ResNet-8's BatchNorms made another session's evaluation fail with "NameError: module is not installed as a
submodule" (bench/load.py --model resnet-8, 5 sessions)."""

import copy
import threading

import torch
from torch import nn

import compress_engine as ce
from compress_engine.core import fold, structured, tracing


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10)).eval()


def forwards_beside(work, rounds=60, until_caught=False):
    """Run small_cnn() forward in a loop in another thread while `work()` runs `rounds` times in this one (until_caught:
    or until the other thread has met a problem) -> the other thread's exceptions and wrong outputs."""
    other, x = small_cnn(), torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        expected = other(x)
    problems, stop = [], threading.Event()

    def loop():
        while not stop.is_set():
            try:
                with torch.no_grad():
                    out = other(x)
                if not torch.equal(out, expected):
                    problems.append("a different output")
            except Exception as e:  # noqa: BLE001 - what a hijacked forward raises is the finding
                problems.append(f"{type(e).__name__}: {e}")
                return
    thread = threading.Thread(target=loop)
    thread.start()
    try:
        for _ in range(rounds):
            work()
            if until_caught and problems:
                break
    finally:
        stop.set()
        thread.join()
    return problems


def test_a_forward_in_another_thread_runs_untouched_while_the_engine_traces():
    resnet = ce.load_model("resnet-8")
    assert forwards_beside(lambda: fold.foldable_pairs(copy.deepcopy(resnet))) == []
    assert forwards_beside(lambda: structured.plan(resnet, 0.5, torch.zeros(1, 1, 28, 28)), rounds=10) == []


def test_plain_torch_fx_would_break_that_forward():
    """The reference: the same loop beside torch.fx's own Tracer fails (what the engine did before tracing.py)."""
    resnet = ce.load_model("resnet-8")
    problems = forwards_beside(lambda: torch.fx.Tracer().trace(copy.deepcopy(resnet)), rounds=1000, until_caught=True)
    assert problems and "not installed as a submodule" in problems[0]


def test_traces_in_several_threads_at_once_leave_torch_unpatched():
    call, getattr_ = nn.Module.__call__, nn.Module.__getattr__
    resnet, errors = ce.load_model("resnet-8"), []

    def traces():
        try:
            for _ in range(20):
                graph = tracing.trace(copy.deepcopy(resnet))
                assert any(n.op == "call_module" for n in graph.nodes)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=traces) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and nn.Module.__call__ is call and nn.Module.__getattr__ is getattr_
    gm = tracing.symbolic_trace(small_cnn())
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(gm(x), small_cnn()(x))  # a GraphModule that computes the model's function
