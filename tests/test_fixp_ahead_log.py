"""A run computed ahead (or the dense run warm() computes) that fails does not stop the page, and the failure is in
the server's log with its traceback, where a bug in _run used to vanish."""

import logging

import pytest

import compress_engine as ce


@pytest.fixture
def broken_run(monkeypatch):
    from pages import common

    def _run(*args):
        raise RuntimeError("a bug in _run")
    monkeypatch.setattr(common, "_run", _run)
    return common


def _logged(caplog):
    return [r for r in caplog.records if r.name == "pages.common" and r.levelno >= logging.WARNING
            and r.exc_info and "a bug in _run" in str(r.exc_info[1])]


def test_a_failed_run_computed_ahead_is_logged(broken_run, caplog):
    key = ("lenet-300-100", ce.Recipe(sparsity=0.5).to_json(), "fashion-mnist", "")
    with caplog.at_level(logging.WARNING, logger="pages.common"):
        broken_run._compute_ahead((0.0, key))  # does not raise
    assert len(_logged(caplog)) == 1


def test_a_failed_dense_warm_up_is_logged(broken_run, caplog):
    with caplog.at_level(logging.WARNING, logger="pages.common"):
        assert broken_run._warm_dense("lenet-300-100", "fashion-mnist", "") is None
    assert len(_logged(caplog)) == 1
