"""--ray-address HOST:PORT with RAY_AUTH_MODE=token set (README's cluster set-up) but the head's token not yet copied
here: ray.init raised ray.exceptions.AuthenticationError ("Token authentication is enabled but no authentication token
was found"), which the sweep did not catch, so the user got a Python traceback and exit status 1. It is now the
sweep's own error: which cluster, and to copy the head's ~/.ray/auth_token here."""

import socket

import pytest

import compress_engine as ce
from compress_engine.playground import sweeps

ray = pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[ray]'")

SAID = ("Token authentication is enabled but no authentication token was found. Ensure that the token for the cluster "
        "is available in a local file (e.g., ~/.ray/auth_token or via RAY_AUTH_TOKEN_PATH) or as the `RAY_AUTH_TOKEN` "
        "environment variable.")


class NoTokenRay:
    """ray.init as Ray 2.60 with RAY_AUTH_MODE=token and no token: its own AuthenticationError, before any connection."""
    exceptions = ray.exceptions

    def is_initialized(self):
        return False

    def init(self, **kw):
        raise ray.exceptions.AuthenticationError(SAID)

    def shutdown(self):
        pass


def test_no_token_here_is_the_sweeps_error_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    with socket.socket() as head:  # something listens there, as a head does
        head.bind(("127.0.0.1", 0))
        head.listen()
        address = f"127.0.0.1:{head.getsockname()[1]}"
        with pytest.raises(ce.CompressError) as e:
            sweeps._connect(NoTokenRay(), None, address, 1)
    msg = str(e.value)
    assert msg.startswith(f"cannot reach the Ray cluster at '{address}': it uses token authentication")
    assert "copy the head's ~/.ray/auth_token to the same path here" in msg
