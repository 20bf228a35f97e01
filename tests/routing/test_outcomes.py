"""The decision table of the attempt loop, one row per catalogue fault."""

from __future__ import annotations

import pytest

from standby.errors import (
    ConnectFailed,
    DeadlineExceeded,
    MalformedReply,
    ProviderError,
    ResetBeforeHeaders,
    StreamBroken,
    UpstreamStatus,
)
from standby.routing.outcomes import Action, Effect, judge


def status(kind: str, code: int = 400) -> UpstreamStatus:
    return UpstreamStatus("x", status=code, kind=kind)


CASES: list[tuple[str, ProviderError, int, Action, Effect]] = [
    ("F01/F02 429", status("rate_limited", 429), 0, Action.FAILOVER, Effect.RATE_LIMITED),
    ("F03 first 500", status("server_error", 500), 0, Action.RETRY_SAME, Effect.FAILURE),
    ("F03 second 500", status("server_error", 500), 1, Action.FAILOVER, Effect.FAILURE),
    ("F04 503", status("unavailable", 503), 0, Action.FAILOVER, Effect.FAILURE),
    ("F05 first reset", ResetBeforeHeaders("x"), 0, Action.RETRY_SAME, Effect.FAILURE),
    ("F05 second reset", ResetBeforeHeaders("x"), 1, Action.FAILOVER, Effect.FAILURE),
    ("F06 refused", ConnectFailed("x"), 0, Action.FAILOVER, Effect.FAILURE),
    ("F07 silent", DeadlineExceeded("x", phase="first_token"), 0, Action.FAILOVER, Effect.TRIP),
    ("F07 connect", DeadlineExceeded("x", phase="connect"), 0, Action.FAILOVER, Effect.TRIP),
    ("F10 stall", DeadlineExceeded("x", phase="idle"), 0, Action.FAILOVER, Effect.FAILURE),
    ("F09 cut", StreamBroken("x"), 0, Action.FAILOVER, Effect.FAILURE),
    ("F13 context", status("context_length"), 0, Action.FAILOVER, Effect.NEUTRAL),
    ("F14 policy", status("content_policy"), 0, Action.FINAL, Effect.NEUTRAL),
    ("F15 prefill", status("prefill_rejected"), 3, Action.RETRY_SAME, Effect.NEUTRAL),
    ("F18 auth", status("auth", 401), 0, Action.FAILOVER, Effect.AUTH),
    ("F19 malformed", MalformedReply("x"), 0, Action.FAILOVER, Effect.FAILURE),
    ("bad request", status("invalid_request"), 0, Action.FINAL, Effect.NEUTRAL),
    ("model missing there", status("not_found", 404), 0, Action.FAILOVER, Effect.NEUTRAL),
]


@pytest.mark.parametrize(
    ("name", "error", "tries", "action", "effect"), CASES, ids=[c[0] for c in CASES]
)
def test_verdicts(
    name: str, error: ProviderError, tries: int, action: Action, effect: Effect
) -> None:
    verdict = judge(error, same_target_tries=tries, max_same_target=1)
    assert (verdict.action, verdict.effect) == (action, effect)


def test_context_length_skips_the_model() -> None:
    assert judge(status("context_length"), same_target_tries=0, max_same_target=1).skip_model
