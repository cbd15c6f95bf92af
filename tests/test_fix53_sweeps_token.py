"""--ray-address HOST:PORT of a head started on this machine (Ray 2.60 turns token authentication on for `ray start
--head` when ~/.ray/auth_token exists): Ray sends that token to an explicit address only with RAY_AUTH_MODE=token
set, so joining failed, and the sweep said "this process has no valid token: copy the head's ~/.ray/auth_token to
the same path here", a token already there. With the token file here and RAY_AUTH_MODE unset, the message now says
to set RAY_AUTH_MODE=token; without the file it still says to copy the head's."""

from compress_engine.playground import sweeps

# what ray.init raised joining a token head from a shell without RAY_AUTH_MODE (Ray 2.60's words)
CAUSE = ("Failed to connect to GCS. Last connection error: ray.exceptions.AuthenticationError: RPC error: "
         "InvalidAuthToken: Authentication token is missing or incorrect. Note: RAY_AUTH_MODE is currently 'disabled' "
         "(not 'token').")


def said(address="127.0.0.1:6391"):
    try:
        raise ConnectionError(f"Failed to connect to Ray cluster at {address}") from RuntimeError(CAUSE)
    except ConnectionError as e:
        return sweeps.connect_error(address, e)


def test_a_token_here_without_the_mode_says_set_the_mode_not_copy_the_token(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("x" * 64)
    msg = said()
    assert msg.startswith("cannot reach the Ray cluster at '127.0.0.1:6391': it uses token authentication")
    assert "RAY_AUTH_MODE=token" in msg and str(tmp_path / ".ray" / "auth_token") in msg
    assert "no valid token" not in msg and "to the same path here" not in msg


def test_no_token_here_or_the_mode_set_still_says_copy_the_heads(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    msg = said()
    assert "no valid token" in msg and "copy the head's ~/.ray/auth_token to the same path here" in msg
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("x" * 64)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # the mode is on and the token still fails: it is not the head's
    assert "copy the head's ~/.ray/auth_token to the same path here" in said()
