"""Polish of sweeps on Ray: every --workers run printed Ray's "Token authentication is enabled for this Ray cluster. Set
RAY_AUTH_MODE=disabled to opt out", inviting users to turn the local runtime's security off (it stays on, unsaid);
a point's line showed bits=null where the user typed none; a crashed worker's error said "Check
python-core-worker-*.log files" without saying where they are."""

import logging
import types

import pytest

from compress_engine.playground import cli, sweeps

ray = pytest.importorskip("ray")


def test_the_local_runtime_does_not_invite_turning_auth_off(capfd, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "")  # then unset: as before the test afterwards (ray.init sets it to token)
    monkeypatch.delenv("RAY_AUTH_MODE")
    sweeps.start_local(1, ray)
    try:
        assert ray.is_initialized()
    finally:
        ray.shutdown()
    out, err = capfd.readouterr()
    assert "RAY_AUTH_MODE=disabled" not in out + err


def test_only_that_notice_is_dropped(capfd):
    log = logging.getLogger(sweeps._AUTH_LOGGER)

    def init(**kw):
        log.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out.")
        log.warning("Token authentication is disabled for this Ray cluster. Anyone with network access ...")

    sweeps.start_local(1, types.SimpleNamespace(init=init))
    err = capfd.readouterr().err
    assert "is disabled for this Ray cluster" in err and "is enabled" not in err  # Ray's security warning stays
    log.warning("Token authentication is enabled for this Ray cluster.")  # the filter is gone afterwards
    assert "is enabled" in capfd.readouterr().err


def test_a_point_of_none_shows_none(capsys):
    cli.point_line("bits")(1, 2, {"bits": None, "accuracy": 0.5}, 1.0)
    assert capsys.readouterr().err.startswith("point 1/2: bits=none accuracy 0.5000")


def test_a_crashed_worker_says_where_its_logs_are(tmp_path):
    said = ("The worker died unexpectedly while executing this task. Check python-core-worker-*.log files for more "
            "information.")
    node = types.SimpleNamespace(get_logs_dir_path=lambda: str(tmp_path))
    fake = types.SimpleNamespace(_private=types.SimpleNamespace(worker=types.SimpleNamespace(_global_node=node)))
    assert sweeps._logs_at(fake, said) == (
        f"The worker died unexpectedly while executing this task. Check python-core-worker-*.log files in {tmp_path} "
        "on the node that ran the point for more information.")
    assert sweeps._logs_at(fake, "the node was lost") == "the node was lost"
    fake.__dict__["_private"] = types.SimpleNamespace(worker=types.SimpleNamespace(_global_node=None))
    assert sweeps._logs_at(fake, said) == said  # no runtime: no folder, no guess
