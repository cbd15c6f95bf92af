"""`sweep --workers 2 --threads 99` was refused (more threads than this machine's cores) only after the model and the
data had loaded, some 14 s; the core count is known up front, so it is refused before anything loads."""

import os

import pytest

from compress_engine.playground import cli

pytest.importorskip("ray")


def test_too_many_threads_is_refused_before_loading(monkeypatch, capsys):
    def must_not_load(*a, **kw):
        raise AssertionError("loaded the model or the data before refusing --threads")

    monkeypatch.setattr(cli, "user_model", must_not_load)
    monkeypatch.setattr(cli, "build_model", must_not_load)
    cores = os.cpu_count() or 1
    code = cli.main(["sweep", "--field", "sparsity", "--values", "0.5,0.9", "--workers", "2",
                     "--threads", str(cores + 1)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err == (f"error: --threads {cores + 1} needs {cores + 1} CPUs on one node (a point runs on one node); this "
                   f"machine has {cores}: give --threads {cores} or fewer\n")
