"""The backup capacity guard and the clients' own limits, over a local ledger."""

from __future__ import annotations

from typing import Any

import pytest

from standby.capacity.clients import ClientLimits, reset_text
from standby.capacity.guard import CapacityGuard
from standby.capacity.ledger import LocalLedger
from standby.errors import CapacityShort, RateLimited
from standby.plan.model import Plan
from standby.plan.scale import Priority

HASH = "sha256:" + "ab" * 32


def plan(**overrides: Any) -> Plan:
    data: dict[str, Any] = {
        "providers": {
            "primary": {"base_url": "http://127.0.0.1:1/v1"},
            "backup": {
                "base_url": "http://127.0.0.1:2/v1",
                "limits": {"requests_per_minute": 10, "tokens_per_minute": 1000},
            },
        },
        "routes": {"m": {"targets": ["primary/m", "backup/m"]}},
    }
    data.update(overrides)
    return Plan.model_validate(data)


@pytest.mark.parametrize(
    ("priority", "allowed"),
    [("low", 6), ("normal", 9), ("high", 10)],
)
async def test_each_priority_may_fill_the_minute_up_to_its_share(
    priority: Priority, allowed: int
) -> None:
    now = [0.0]
    guard = CapacityGuard(plan(), LocalLedger(lambda: now[0]))
    taken = 0
    for _ in range(12):
        try:
            await guard.take("backup", "backup/m", priority)
            taken += 1
        except CapacityShort as short:
            assert short.target == "backup/m"
            assert 0.0 < short.retry_after <= 60.0
    assert taken == allowed
    assert guard.refused == {"backup/m": 12 - allowed}


async def test_low_priority_is_turned_away_while_high_priority_still_has_room() -> None:
    guard = CapacityGuard(plan(), LocalLedger(lambda: 0.0))
    for _ in range(6):
        await guard.take("backup", "backup/m", "low")
    with pytest.raises(CapacityShort, match="60% of it for low priority"):
        await guard.take("backup", "backup/m", "low")
    for _ in range(4):
        await guard.take("backup", "backup/m", "high")
    with pytest.raises(CapacityShort, match="limit is 10/min"):
        await guard.take("backup", "backup/m", "high")


async def test_the_plans_limit_counts_the_whole_account_and_tokens_are_a_budget() -> None:
    guard = CapacityGuard(plan(), LocalLedger(lambda: 0.0))
    assert guard.limited("backup", "backup/m") and guard.limited("backup", "backup/other")
    assert not guard.limited("primary", "primary/m")
    await guard.take("backup", "backup/other", "normal")  # another model, the same account
    assert guard.counts_tokens
    await guard.spent("backup", "m", 950)
    await guard.take("backup", "backup/m", "high")  # 950 < 1000
    with pytest.raises(CapacityShort, match="no tokens left"):
        await guard.take("backup", "backup/m", "normal")  # 90 % of 1000 is 900


async def test_limits_learned_from_a_provider_count_per_model_unless_the_plan_says() -> None:
    guard = CapacityGuard(plan(), LocalLedger(lambda: 0.0))
    guard.learn("primary/m", 1, None)
    assert guard.limits("primary", "primary/m") == ("primary/m", 1, None)
    assert not guard.limited("primary", "primary/other")
    await guard.take("primary", "primary/m", "high")
    with pytest.raises(CapacityShort):
        await guard.take("primary", "primary/m", "high")
    guard.learn("backup/m", 5000, None)  # the plan's limit wins
    assert guard.limits("backup", "backup/m") == ("backup", 10, 1000)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.12, "120ms"), (1.0, "1s"), (59.2, "1m0s"), (360.0, "6m0s"), (3723.0, "1h2m3s")],
)
def test_resets_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert reset_text(seconds) == text


def clients(**limits: int) -> ClientLimits:
    keys = plan(server={"client_keys": {"alice": {"key": HASH, **limits}, "bob": HASH}})
    return ClientLimits(keys.server.client_keys, LocalLedger(lambda: 0.0))


async def test_a_clients_requests_per_minute_give_openai_headers_then_a_429() -> None:
    limits = clients(requests_per_minute=2)
    assert not limits.limited("bob") and await limits.admit("bob") == ()
    first = dict(await limits.admit("alice"))
    assert first[b"x-ratelimit-limit-requests"] == b"2"
    assert first[b"x-ratelimit-remaining-requests"] == b"1"
    await limits.admit("alice")
    with pytest.raises(RateLimited) as refused:
        await limits.admit("alice")
    headers = dict(refused.value.headers)
    assert headers[b"x-ratelimit-remaining-requests"] == b"0"
    assert headers[b"retry-after"] == b"60"
    assert refused.value.status == 429 and refused.value.code == "rate_limit_exceeded"
    assert "requests per min (RPM): Limit 2" in refused.value.message


async def test_a_clients_tokens_are_counted_after_its_answers() -> None:
    limits = clients(tokens_per_minute=100, tokens_per_day=150)
    await limits.admit("alice")
    await limits._count("alice", limits._limits["alice"], 100)
    with pytest.raises(RateLimited, match="tokens per min") as refused:
        await limits.admit("alice")
    assert refused.value.type == "tokens"


async def test_a_daily_token_budget_once_spent_refuses_until_it_frees() -> None:
    limits = clients(tokens_per_day=150)
    await limits._count("alice", limits._limits["alice"], 200)
    with pytest.raises(RateLimited, match="tokens per day") as refused:
        await limits.admit("alice")
    assert refused.value.retry_after > 3600


class CountingLedger(LocalLedger):
    """A local ledger that counts the asks made of it (each would be a Redis trip)."""

    def __init__(self, clock: Any) -> None:
        super().__init__(clock)
        self.asks = 0

    async def take(
        self, key: str, cap: int, span: float, *, want: int = 1, hold: float = 0.0
    ) -> Any:
        self.asks += 1
        return await super().take(key, cap, span, want=want, hold=hold)


async def test_at_a_steady_rate_units_are_taken_ahead_in_a_few_asks() -> None:
    now = [0.0]
    ledger = CountingLedger(lambda: now[0])
    providers = plan().model_dump()["providers"]
    providers["backup"]["limits"] = {"requests_per_minute": 100_000}
    guard = CapacityGuard(plan(providers=providers), ledger, clock=lambda: now[0])
    first_second = 0
    for tick in range(1000):  # 200 tries a second for 5 s
        now[0] = tick / 200
        if tick == 200:
            first_second = ledger.asks  # one ask per try until the rate is known
        await guard.take("backup", "backup/m", "high")
    assert first_second == 200
    assert ledger.asks - first_second <= 4 * 10 + 2  # then about one per 0.1 s
    assert ledger._logs["target:backup"].used(now[0]) >= 1000  # every try is counted


@pytest.mark.parametrize("priority", ["low", "normal", "high"])
async def test_taking_ahead_never_lets_a_minute_hold_more_than_a_share(
    priority: Priority,
) -> None:
    now = [0.0]
    ledger = CountingLedger(lambda: now[0])
    guard = CapacityGuard(plan(), ledger, clock=lambda: now[0])  # 10 per minute
    tried = 0
    sent: list[float] = []
    for tick in range(2000):  # 100 tries a second for 20 s: far over the limit
        now[0] = tick / 100
        tried += 1
        try:
            await guard.take("backup", "backup/m", priority)
            sent.append(now[0])
        except CapacityShort:
            pass
    cap = guard.cap(10, priority)
    assert len(sent) == cap  # the minute filled to the share, never past it
