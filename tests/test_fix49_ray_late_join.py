"""A ray.init given up on (the connect deadline) that joins later must leave at once: in a long-lived process the
next sweep found that runtime, owned by nobody, and used it. And only Ray's own authentication words mean a missing
token: "unexpected token" from a JSON parser was called an authentication problem."""

import threading
import time

import pytest

from compress_engine.playground import sweeps


class SlowRay:
    def __init__(self, delay):
        self.delay, self.up, self.done = delay, False, threading.Event()

    def init(self, **kw):
        time.sleep(self.delay)
        self.up = True
        self.done.set()

    def shutdown(self):
        self.up = False

    def is_initialized(self):
        return self.up


def test_a_join_after_the_deadline_leaves_at_once():
    ray = SlowRay(0.5)
    with pytest.raises(ConnectionError, match="within 0.1 s"):
        sweeps._init_within(ray, "10.0.0.1:6379", 0.1)
    assert ray.done.wait(5)
    time.sleep(0.1)
    assert not ray.is_initialized()


def test_a_join_within_the_deadline_stays():
    ray = SlowRay(0.0)
    sweeps._init_within(ray, "10.0.0.1:6379", 5)
    assert ray.is_initialized()


def test_only_rays_authentication_words_mean_a_token():
    said = sweeps.connect_error("h:1", RuntimeError("Failed to parse JSON: unexpected token < at position 0"))
    assert "token authentication" not in said
    said = sweeps.connect_error("h:1", RuntimeError("Unauthenticated: RPC error: InvalidAuthToken: Authentication "
                                                    "token is missing or incorrect"))
    assert "token authentication" in said
