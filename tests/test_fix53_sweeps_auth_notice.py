"""--ray-address auto on a machine whose ~/.ray/auth_token exists: Ray turns token authentication on and says "Token
authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out.", the notice the local runtime
of --workers already hid because it invites turning the cluster's security off (README). Joining a cluster now hides
it the same way; Ray's other messages still show."""

import logging

from compress_engine.playground import sweeps

NOTICE = ("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out. For more "
          "information, see https://docs.ray.io/en/latest/ray-security/token-auth.html")


class NoticeRay:
    """ray.init as Ray 2.60's joining 'auto' with a token here: the notice, from Ray's own logger, and another line."""

    def __init__(self):
        self.up = False

    def init(self, **kw):
        log = logging.getLogger(sweeps._AUTH_LOGGER)
        log.warning(NOTICE)
        log.warning("another message of Ray's")
        self.up = True

    def is_initialized(self):
        return self.up

    def shutdown(self):
        self.up = False


class Kept(logging.Handler):
    """What reaches Ray's authentication logger's handlers (its own: once Ray is imported, its loggers may not
    propagate to the root logger pytest's caplog listens on)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.said = []

    def emit(self, record):
        self.said.append(record.getMessage())


def test_joining_hides_the_opt_out_notice_and_keeps_rays_other_messages():
    log, kept = logging.getLogger(sweeps._AUTH_LOGGER), Kept()
    log.addHandler(kept)
    try:
        sweeps._init_within(NoticeRay(), "auto", 5)
        assert "another message of Ray's" in kept.said and not any("RAY_AUTH_MODE=disabled" in m for m in kept.said)
        log.warning(NOTICE)  # only while joining: the filter is not left on Ray's logger
        assert kept.said[-1] == NOTICE
    finally:
        log.removeHandler(kept)
