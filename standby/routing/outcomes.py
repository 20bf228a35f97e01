"""What to do after an attempt failed: retry the same target, wait for it, fail over, or stop.

One pure function over the error and what the attempt loop says about the try (how many
retries of the target were spent, whether the try was a prefill continuation, whether
the plan prefers waiting out a Retry-After), driven by a table so the fault catalogue
reads straight off it.  ``effect`` says how the target's health is told; the two flags
say what the attempt loop and the health registry learn beyond that.

To change how a fault is handled, change its row here: the attempt schedule
(``routing.attempts``) applies the action within the request's budget, and the health
gate (``health.gate``) applies the effect; neither decides anything of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from standby.errors import (
    CapacityShort,
    ConnectFailed,
    DeadlineExceeded,
    LocalLimit,
    MalformedReply,
    ProviderError,
    ResetBeforeHeaders,
    StreamBroken,
    UpstreamStatus,
)


class Action(Enum):
    RETRY_SAME = "retry_same"  # a transient blip: the same target once more, after a backoff
    WAIT_SAME = "wait_same"  # the target asked for a pause (Retry-After): wait, then it again
    FAILOVER = "failover"  # the next candidate target
    FINAL = "final"  # the caller's own problem: propagate, never retry


class Effect(Enum):
    FAILURE = "failure"  # counts towards opening the breaker
    NEUTRAL = "neutral"  # says nothing about the target's health
    AUTH = "auth"  # bad or exhausted key: eject for long and alert
    RATE_LIMITED = "rate_limited"  # hold the target until Retry-After, and count a failure
    TRIP = "trip"  # the target went silent: eject it at once, do not wait for N failures


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    effect: Effect
    label: str  # the outcome name in metrics, health counts and logs
    skip_model: bool = False  # no other target with this model name either (context length)
    no_prefill: bool = False  # the target refuses an assistant prefill: remember it (F15)
    local: bool = False  # Standby's own limit: the target's health records nothing at all


# UpstreamStatus.kind → (action, effect, skip_model)
_STATUS_TABLE: dict[str, tuple[Action, Effect, bool]] = {
    "server_error": (Action.RETRY_SAME, Effect.FAILURE, False),  # F03
    "unavailable": (Action.FAILOVER, Effect.FAILURE, False),  # F04
    "rate_limited": (Action.FAILOVER, Effect.RATE_LIMITED, False),  # F01, F02
    "auth": (Action.FAILOVER, Effect.AUTH, False),  # F18
    "context_length": (Action.FAILOVER, Effect.NEUTRAL, True),  # F13
    "not_found": (Action.FAILOVER, Effect.NEUTRAL, False),  # the target's model is missing there
    "content_policy": (Action.FINAL, Effect.NEUTRAL, False),  # F14
    "invalid_request": (Action.FINAL, Effect.NEUTRAL, False),
}

# F15: the continuation target refused the prefill; the same target is asked again at
# once with an instruction instead (never counted as a retry: it cannot loop, since a
# target known to refuse is never sent a prefill again)
PREFILL_REJECTED = Verdict(Action.RETRY_SAME, Effect.NEUTRAL, "prefill_rejected", no_prefill=True)
LOCAL_LIMIT = Verdict(Action.FAILOVER, Effect.NEUTRAL, "local_limit", local=True)
# the target's capacity this minute is spent or kept for higher priorities: not tried
CAPACITY = Verdict(Action.FAILOVER, Effect.NEUTRAL, "capacity", local=True)


def judge(
    error: ProviderError,
    *,
    same_target_tries: int,
    max_same_target: int,
    prefill: bool = False,
    prefer_same_target: bool = False,
) -> Verdict:
    """Decide from one attempt's error.

    ``same_target_tries`` counts retries of this target already spent; ``prefill``: the
    try continued a trailing assistant message, so a plain "invalid request" means the
    target refuses prefill; ``prefer_same_target`` (the plan's ``retry``): a 429 that
    names its Retry-After is waited out on the same target rather than failed over
    (the attempt schedule still checks the wait against ``max_retry_after`` and the budget).
    """
    can_retry = same_target_tries < max_same_target
    if isinstance(error, UpstreamStatus):
        if error.kind == "prefill_rejected" or (prefill and error.kind == "invalid_request"):
            return PREFILL_REJECTED
        action, effect, skip_model = _STATUS_TABLE.get(
            error.kind, (Action.FAILOVER, Effect.FAILURE, False)
        )
        if action is Action.RETRY_SAME and not can_retry:
            action = Action.FAILOVER
        if effect is Effect.RATE_LIMITED and prefer_same_target and error.retry_after is not None:
            action = Action.WAIT_SAME
        return Verdict(action, effect, error.kind, skip_model)
    if isinstance(error, CapacityShort):
        return CAPACITY
    if isinstance(error, LocalLimit):  # our own pool or file table: not the provider's fault
        return LOCAL_LIMIT
    if isinstance(error, ResetBeforeHeaders):  # F05: often a stale pooled connection
        return Verdict(Action.RETRY_SAME if can_retry else Action.FAILOVER, Effect.FAILURE, "reset")
    if isinstance(error, DeadlineExceeded):  # F07, F08, F10: never retry a silent target
        # silence past the deadline ejects at once (the plan's first_token says how long a
        # healthy target may take to start answering); a stalled stream only counts
        effect = Effect.TRIP if error.phase in ("connect", "first_token") else Effect.FAILURE
        return Verdict(Action.FAILOVER, effect, f"timeout_{error.phase}")
    if isinstance(error, ConnectFailed):  # F06
        return Verdict(Action.FAILOVER, Effect.FAILURE, "connect_failed")
    if isinstance(error, MalformedReply):  # F19
        return Verdict(Action.FAILOVER, Effect.FAILURE, "malformed")
    if isinstance(error, StreamBroken):  # F09, F23
        return Verdict(Action.FAILOVER, Effect.FAILURE, "stream_broken")
    return Verdict(Action.FAILOVER, Effect.FAILURE, "error")
