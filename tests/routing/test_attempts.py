"""The attempt plan with a scripted health gate and a hand-moved clock."""

from __future__ import annotations

import random

import pytest

from standby.errors import (
    CapacityShort,
    ConnectFailed,
    Exhausted,
    LocalLimit,
    ProviderError,
    Throttled,
    UpstreamStatus,
)
from standby.plan.model import Retry, Timeouts
from standby.routing.attempts import AttemptSchedule, Step
from standby.routing.outcomes import Verdict
from standby.routing.policy import Target


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Gate:
    def __init__(self, refused: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.refused = set(refused)
        self.log: list[tuple[str, str]] = []
        self.admitted: list[tuple[str, float]] = []

    def admit(self, key: str, now: float) -> object | None:
        self.admitted.append((key, now))
        return None if key in self.refused else object()

    def refuses_prefill(self, key: str) -> bool:
        return False

    def responded(self, key: str, token: object, now: float) -> None:
        pass

    def abandoned(self, key: str, token: object, now: float) -> None:
        self.log.append((key, "abandoned"))

    def trial_deadline(self, key: str, token: object) -> float | None:
        return 0.2 if token == "trial" else None

    def succeeded(self, key: str, token: object, now: float, seconds: float) -> None:
        self.log.append((key, "ok"))

    def failed(
        self,
        key: str,
        token: object,
        now: float,
        verdict: Verdict,
        error: ProviderError,
        seconds: float,
    ) -> None:
        self.log.append((key, verdict.label))


A1, A2, B1 = Target("a", "m1"), Target("a", "m2"), Target("b", "m1")


def plan(gate: Gate, clock: Clock, *targets: Target, **retry: object) -> AttemptSchedule:
    return AttemptSchedule(
        candidates=list(targets),
        gate=gate,
        timeouts=Timeouts(total=10),
        retry=Retry.model_validate(retry),
        clock=clock,
        rng=random.Random(3),
    )


def test_failover_prefers_a_different_provider() -> None:
    p = plan(Gate(), Clock(), A1, A2, B1)
    step = p.first()
    assert step.target == A1
    assert p.failed(step, ConnectFailed("down"), 0.01).target == B1


def test_open_breakers_are_skipped_but_the_last_target_is_never_ejected() -> None:
    p = plan(Gate(refused={"a/m1"}), Clock(), A1, B1)
    assert p.first().target == B1
    q = plan(Gate(refused={"a/m1", "b/m1"}), Clock(), A1, B1)
    forced = q.first()
    assert forced.target == A1 and forced.token is None
    with pytest.raises(Exhausted):
        q.failed(forced, ConnectFailed("down"), 0.01)


def test_one_transient_500_retries_the_same_target_after_a_jittered_backoff() -> None:
    p = plan(Gate(), Clock(), A1, B1, backoff=0.1, max_backoff=1)
    step = p.first()
    again = p.failed(step, UpstreamStatus("x", status=500, kind="server_error"), 0.01)
    assert again.target == A1 and 0.05 <= again.delay <= 0.1
    third = p.failed(again, UpstreamStatus("x", status=500, kind="server_error"), 0.01)
    assert third.target == B1 and third.delay == 0


def test_rate_limit_waits_out_retry_after_only_when_nothing_else_can_serve() -> None:
    p = plan(Gate(), Clock(), A1)
    step = p.first()
    wait = p.failed(
        step, UpstreamStatus("x", status=429, kind="rate_limited", retry_after=0.5), 0.01
    )
    assert wait.target == A1 and wait.delay == 0.5
    with pytest.raises(Exhausted) as exc:
        p.failed(wait, UpstreamStatus("x", status=429, kind="rate_limited", retry_after=0.5), 0.01)
    assert exc.value.retry_after == 0.5
    too_long = plan(Gate(), Clock(), A1)
    with pytest.raises(Exhausted):
        too_long.failed(
            too_long.first(),
            UpstreamStatus("x", status=429, kind="rate_limited", retry_after=60),
            0.01,
        )


def test_final_errors_propagate_and_budget_bounds_everything() -> None:
    p = plan(Gate(), Clock(), A1, B1)
    policy = UpstreamStatus("no", status=400, kind="content_policy")
    with pytest.raises(UpstreamStatus):
        p.failed(p.first(), policy, 0.01)
    clock = Clock()
    q = plan(Gate(), clock, A1, B1)
    step = q.first()
    clock.now += 11
    with pytest.raises(Exhausted):
        q.failed(step, ConnectFailed("down"), 0.01)


def test_context_length_skips_every_target_with_that_model() -> None:
    p = plan(Gate(), Clock(), A1, B1, A2)
    nxt = p.failed(p.first(), UpstreamStatus("long", status=400, kind="context_length"), 0.01)
    assert nxt.target == A2


def test_deadlines_are_clipped_to_the_remaining_budget() -> None:
    clock = Clock()
    p = plan(Gate(), clock, A1)
    clock.now += 9.5
    d = p.deadlines_for(Timeouts(connect=3, first_token=5, idle=5, total=10))
    assert d.connect == pytest.approx(0.5) and d.first_token == pytest.approx(0.5)


def test_a_half_open_trial_waits_about_as_long_as_the_target_usually_needs() -> None:
    p = plan(Gate(), Clock(), A1)
    t = Timeouts(connect=3, first_token=30, idle=5, total=100)
    assert p.deadlines_for(t, Step(A1, "trial")).first_token == 1.0  # floor of a second
    assert p.deadlines_for(t, Step(A1, object())).first_token == 10  # the budget left


# -- retry.prefer_same_target: wait out a 429's Retry-After on the same target ------------


def too_many(retry_after: float | None) -> UpstreamStatus:
    return UpstreamStatus("slow down", status=429, kind="rate_limited", retry_after=retry_after)


# case: prefer_same_target, the 429's Retry-After, max_retry_after, seconds of the 10 s
# budget already spent → what follows the 429 on A1 (with B1 as the other candidate)
PREFER_CASES: list[tuple[str, bool, float | None, float, float, tuple[Target, float]]] = [
    ("waits out a Retry-After that fits", True, 0.5, 5.0, 0.0, (A1, 0.5)),
    ("the longest wait allowed", True, 5.0, 5.0, 0.0, (A1, 5.0)),
    ("beyond max_retry_after: fail over", True, 6.0, 5.0, 0.0, (B1, 0.0)),
    ("beyond the budget left: fail over", True, 2.0, 5.0, 8.5, (B1, 0.0)),
    ("no Retry-After (F02): fail over", True, None, 5.0, 0.0, (B1, 0.0)),
    ("not preferred (the default): fail over", False, 0.5, 5.0, 0.0, (B1, 0.0)),
]


@pytest.mark.parametrize(
    ("name", "prefer", "retry_after", "max_retry_after", "spent", "then"),
    PREFER_CASES,
    ids=[c[0] for c in PREFER_CASES],
)
def test_prefer_same_target(
    name: str,
    prefer: bool,
    retry_after: float | None,
    max_retry_after: float,
    spent: float,
    then: tuple[Target, float],
) -> None:
    clock = Clock()
    p = plan(Gate(), clock, A1, B1, prefer_same_target=prefer, max_retry_after=max_retry_after)
    step = p.first()
    clock.now += spent
    nxt = p.failed(step, too_many(retry_after), 0.01)
    assert (nxt.target, nxt.delay) == then
    assert p.history[-1].outcome == "rate_limited"


def test_a_second_429_after_the_wait_fails_over() -> None:
    clock = Clock()
    gate = Gate()
    p = plan(gate, clock, A1, B1, prefer_same_target=True)
    wait = p.failed(p.first(), too_many(0.5), 0.01)
    assert (wait.target, wait.delay, wait.token) == (A1, 0.5, None)
    clock.now += 0.5
    p.waited(wait)  # the wait is over: the gate admits the target again, now
    assert gate.admitted[-1] == ("a/m1", 100.5) and wait.token is not None
    assert p.failed(wait, too_many(0.5), 0.01).target == B1, "one wait per request, no more"


def test_a_backoff_is_admitted_by_the_gate_once_it_is_over() -> None:
    clock = Clock()
    gate = Gate()
    p = plan(gate, clock, A1, B1, backoff=0.1, max_backoff=1)
    first = p.first()
    again = p.failed(first, UpstreamStatus("x", status=500, kind="server_error"), 0.01)
    assert again.token is first.token, "not admitted before the wait"
    assert gate.admitted == [("a/m1", 100.0)]
    clock.now += again.delay
    p.waited(again)
    assert gate.admitted[-1] == ("a/m1", clock.now) and again.token is not first.token


# -- F15: a prefill refusal ------------------------------------------------------------------


def test_a_refused_prefill_is_asked_again_at_once_and_spends_no_retry() -> None:
    gate = Gate()
    p = plan(gate, Clock(), A1, B1)
    step = p.first()
    step.prefill = True
    refusal = UpstreamStatus("no prefill", status=400, kind="invalid_request")
    again = p.failed(step, refusal, 0.01)
    assert (again.target, again.delay, again.prefill) == (A1, 0.0, False)
    assert p.refused_prefill == ("a/m1",)
    assert gate.log == [("a/m1", "prefill_rejected")]
    assert refusal.kind == "invalid_request"
    # the same-target retry of a transient error is still there
    blip = p.failed(again, UpstreamStatus("x", status=500, kind="server_error"), 0.01)
    assert blip.target == A1 and blip.delay > 0


def test_a_400_without_a_prefill_is_the_callers_error() -> None:
    p = plan(Gate(), Clock(), A1, B1)
    with pytest.raises(UpstreamStatus):
        p.failed(p.first(), UpstreamStatus("bad", status=400, kind="invalid_request"), 0.01)


# -- LocalLimit: Standby's own limit ---------------------------------------------------------


def test_exhausted_by_local_limits_only_names_standbys_limit() -> None:
    p = plan(Gate(), Clock(), A1, B1)
    step = p.failed(p.first(), LocalLimit("a: no connection slot"), 0.0)
    assert step.target == B1
    with pytest.raises(Exhausted) as caught:
        p.failed(step, LocalLimit("b: no connection slot"), 0.0)
    assert isinstance(caught.value.last, LocalLimit)
    assert [r.outcome for r in p.history] == ["local_limit", "local_limit"]


def test_a_providers_failure_stays_the_cause_when_a_local_limit_follows() -> None:
    p = plan(Gate(), Clock(), A1, B1)
    down = UpstreamStatus("down", status=503, kind="unavailable", retry_after=7)
    step = p.failed(p.first(), down, 0.01)
    with pytest.raises(Exhausted) as caught:
        p.failed(step, LocalLimit("b: no connection slot"), 0.0)
    assert caught.value.last is down and caught.value.retry_after == 7


def test_a_target_short_of_capacity_is_passed_over_and_ends_in_a_429_not_a_503() -> None:
    gate = Gate(refused={"a/m1"})  # the primary's breaker is open
    p = plan(gate, Clock(), A1, B1)
    step = p.first()
    assert step.target == B1
    # it ends here: the open primary is not forced (the request has an honest answer)
    with pytest.raises(Throttled) as ended:
        p.failed(step, CapacityShort("no room", retry_after=12.5), 0.0)
    assert ended.value.retry_after == 12.5
    assert gate.log == [("b/m1", "capacity")]  # nothing counted against the backup
    assert p.attempts == 0  # not a try: no retry budget spent


def test_capacity_short_after_a_real_failure_still_says_429() -> None:
    p = plan(Gate(), Clock(), A1, B1)
    first = p.first()
    second = p.failed(first, UpstreamStatus("x", status=503, kind="unavailable"), 0.01)
    assert second.target == B1
    with pytest.raises(Throttled) as ended:
        p.failed(second, CapacityShort("no room", retry_after=3.0), 0.0)
    assert isinstance(ended.value.last, UpstreamStatus)
