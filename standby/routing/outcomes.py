"""What to do after an attempt failed: retry the same target, fail over, or stop.

One pure function over the error and the attempt count, driven by a table so the fault
catalogue reads straight off it.  ``effect`` says how the target's health is told.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

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


class Action(Enum):
    RETRY_SAME = "retry_same"  # a transient blip: the same target once more, after a backoff
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
    "prefill_rejected": (Action.RETRY_SAME, Effect.NEUTRAL, False),  # F15, retried as instruction
}


def judge(error: ProviderError, *, same_target_tries: int, max_same_target: int) -> Verdict:
    """Decide from one attempt's error. ``same_target_tries`` counts retries already spent."""
    can_retry = same_target_tries < max_same_target
    if isinstance(error, UpstreamStatus):
        action, effect, skip_model = _STATUS_TABLE.get(
            error.kind, (Action.FAILOVER, Effect.FAILURE, False)
        )
        if action is Action.RETRY_SAME and not can_retry and error.kind != "prefill_rejected":
            action = Action.FAILOVER
        return Verdict(action, effect, error.kind, skip_model)
    if isinstance(error, LocalLimit):  # our own pool or file table: not the provider's fault
        return Verdict(Action.FAILOVER, Effect.NEUTRAL, "local_limit")
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
