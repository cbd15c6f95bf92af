"""A sweep given up on joining a Ray cluster (Ctrl-C while joining, or --ray-address past its deadline) leaves
ray.init trying in its thread. The command line printed its message and returned 130 (or 2), and Python's exit then
tore the interpreter down under Ray's C++: the process aborted (std::bad_alloc, status -6) about 1 run in 8 under
load (test_fix49_f2_ray's Ctrl-C case, in a fresh clone's suite). While such a thread lives, the command line now
leaves with its status at exit, before any exit hook registered earlier (Ray's) runs; once it has ended, nothing
changes."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import atexit, sys, threading, time
sys.path.insert(0, {root!r})
atexit.register(lambda: print("TEARDOWN", flush=True))  # as Ray's own exit hooks: registered before the command's
from compress_engine.playground import cli, sweeps
ended = threading.Event()  # set as the ray.init thread _init_within gave up on ends
t = threading.Thread(target=lambda: time.sleep(30 if {alive} else 0) or ended.set(), daemon=True)
t.start(); t.join(0 if {alive} else None)
sweeps._GIVEN_UP.append(ended)
sys.exit(cli.leave_past_ray_join(130))
"""


def run(alive):
    return subprocess.run([sys.executable, "-c", SCRIPT.format(root=str(ROOT), alive=alive)], capture_output=True,
                          text=True, timeout=60)


def test_a_join_still_trying_leaves_with_the_commands_status_before_the_teardown():
    done = run(True)
    assert done.returncode == 130 and "TEARDOWN" not in done.stdout, (done.returncode, done.stdout, done.stderr)


def test_once_the_join_has_ended_the_exit_is_as_usual():
    done = run(False)
    assert done.returncode == 130 and "TEARDOWN" in done.stdout, (done.returncode, done.stdout, done.stderr)


def test_a_ctrl_c_while_the_join_thread_starts_counts_it_as_given_up(monkeypatch):
    """Ctrl-C can come while Thread.start() waits for the new thread to run. The thread runs ray.init all the same, but
    it was started outside _init_within's try, so it was never recorded as given up, and is_alive() is False before a
    thread runs anyway: the command line then exited as usual under a ray.init still trying."""
    import threading
    from types import SimpleNamespace

    from compress_engine.playground import sweeps
    monkeypatch.setattr(sweeps, "_GIVEN_UP", [])
    release, calls = threading.Event(), []
    fake = SimpleNamespace(init=lambda **kw: release.wait(30) and calls.append("init"),
                           shutdown=lambda: calls.append("shutdown"))
    start = threading.Thread.start

    def interrupted_start(self):  # as a Ctrl-C landing in start()'s wait for the thread
        start(self)
        if self.name == "ray.init":
            raise KeyboardInterrupt
    monkeypatch.setattr(threading.Thread, "start", interrupted_start)
    try:
        with pytest.raises(KeyboardInterrupt):
            sweeps._init_within(fake, "127.0.0.1:1", 30)
        assert sweeps.join_given_up()
    finally:
        release.set()
    [ended] = sweeps._GIVEN_UP
    assert ended.wait(30) and not sweeps.join_given_up()
    assert calls == ["init", "shutdown"]  # it joined late, and left at once
