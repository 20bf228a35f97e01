"""The decision table of the attempt loop, one row per catalogue fault."""

from __future__ import annotations

import pytest

from standby.errors import (
    ConnectFailed,
    DeadlineExceeded,
    LocalLimit,
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


def rate_limited(retry_after: float | None) -> UpstreamStatus:
    return UpstreamStatus("slow down", status=429, kind="rate_limited", retry_after=retry_after)


# (case, error, what the attempt loop says about the try) → (action, effect, label)
CONTEXT_CASES: list[tuple[str, ProviderError, dict[str, bool], Action, Effect, str]] = [
    (
        "F15 a prefill refused",
        status("invalid_request"),
        {"prefill": True},
        Action.RETRY_SAME,
        Effect.NEUTRAL,
        "prefill_rejected",
    ),
    (
        "F15 no prefill: the caller's 400",
        status("invalid_request"),
        {},
        Action.FINAL,
        Effect.NEUTRAL,
        "invalid_request",
    ),
    (
        "F15 a prefill try, another 400",
        status("content_policy"),
        {"prefill": True},
        Action.FINAL,
        Effect.NEUTRAL,
        "content_policy",
    ),
    (
        "F01 prefer same, Retry-After",
        rate_limited(0.5),
        {"prefer_same_target": True},
        Action.WAIT_SAME,
        Effect.RATE_LIMITED,
        "rate_limited",
    ),
    (
        "F02 prefer same, no Retry-After",
        rate_limited(None),
        {"prefer_same_target": True},
        Action.FAILOVER,
        Effect.RATE_LIMITED,
        "rate_limited",
    ),
    (
        "F01 not preferred",
        rate_limited(0.5),
        {},
        Action.FAILOVER,
        Effect.RATE_LIMITED,
        "rate_limited",
    ),
    (
        "503, prefer same",
        status("unavailable", 503),
        {"prefer_same_target": True},
        Action.FAILOVER,
        Effect.FAILURE,
        "unavailable",
    ),
    (
        "Standby's own limit",
        LocalLimit("pool full"),
        {},
        Action.FAILOVER,
        Effect.NEUTRAL,
        "local_limit",
    ),
]


@pytest.mark.parametrize(
    ("name", "error", "context", "action", "effect", "label"),
    CONTEXT_CASES,
    ids=[c[0] for c in CONTEXT_CASES],
)
def test_verdicts_in_context(
    name: str,
    error: ProviderError,
    context: dict[str, bool],
    action: Action,
    effect: Effect,
    label: str,
) -> None:
    verdict = judge(error, same_target_tries=0, max_same_target=1, **context)
    assert (verdict.action, verdict.effect, verdict.label) == (action, effect, label)


def test_a_prefill_refusal_is_a_verdict_and_the_error_is_left_as_it_came() -> None:
    error = status("invalid_request")
    verdict = judge(error, same_target_tries=5, max_same_target=1, prefill=True)
    assert verdict.no_prefill and verdict.action is Action.RETRY_SAME  # retries spent or not
    assert error.kind == "invalid_request", "the provider's error is not rewritten in flight"
    assert not judge(status("rate_limited", 429), same_target_tries=0, max_same_target=1).no_prefill


def test_only_standbys_own_limit_is_local() -> None:
    assert judge(LocalLimit("no fd"), same_target_tries=0, max_same_target=1).local
    others = [error for _, error, *_ in CASES]
    assert not any(judge(e, same_target_tries=0, max_same_target=1).local for e in others)
