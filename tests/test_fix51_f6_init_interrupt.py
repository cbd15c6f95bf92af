"""Ctrl-C while a sweep started its local Ray runtime (inside ray.init) left ray::DashboardAgent and
ray::RuntimeEnvAgent running for ever (orphans of PID 1): the interrupt landed in ray.init before Ray knew the node it
was starting, so nothing shut it down. The sweep now holds a first Ctrl-C until ray.init returns, then shuts Ray down
and stops as sweeps.Interrupted; ray.init failing any other way is shut down too."""

import os
import signal
import types

import pytest

import compress_engine as ce
from compress_engine.playground import sweeps
from small_nets import Digits as Net

ray = pytest.importorskip("ray")


def fake_ray(init):
    calls = []
    fake = types.SimpleNamespace(is_initialized=lambda: False, init=lambda **kw: init(calls),
                                 shutdown=lambda: calls.append("shutdown"), nodes=lambda: [])
    return fake, calls


def test_ctrl_c_inside_ray_init_waits_for_it_then_shuts_ray_down():
    def init(calls):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the runtime starts
        for _ in range(100):  # Python runs a signal handler between bytecodes: ray.init would be interrupted here
            sum(range(100))
        calls.append("init finished")

    fake, calls = fake_ray(init)
    with pytest.raises(KeyboardInterrupt):
        sweeps._connect(fake, 2, None, 1)
    assert calls == ["init finished", "shutdown"]  # not cut halfway; what it started is shut down
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ray_init_raising_is_shut_down():
    def init(calls):
        raise KeyboardInterrupt

    fake, calls = fake_ray(init)
    with pytest.raises(KeyboardInterrupt):
        sweeps._connect(fake, 2, None, 1)
    assert calls == ["shutdown"]


def test_the_sweep_stops_as_interrupted(monkeypatch):
    shut = []

    def init(**kw):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):
            sum(range(100))

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: shut.append(True))
    with pytest.raises(sweeps.Interrupted) as got:
        sweeps.sweep(Net(), ce.Recipe(clusters=8), "digits", "sparsity", [0.5, 0.9], workers=2)
    assert got.value.rows == [] and got.value.total == 2 and shut
