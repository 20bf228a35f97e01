"""Fault catalogue F16: a flapping primary.

Every request must succeed while the primary fails half the time; its breaker opens,
half-opens for one trial, and once the primary recovers it serves again. The breaker
ejection is tiny (200 ms, at most 400 ms) so waiting for it to pass is a bounded poll of
the health endpoint, not a sleep.
"""

from __future__ import annotations

import asyncio

from standby.sim import Fault, SimProvider
from tests.conftest import two_target_plan
from tests.e2e.faults_support import seen, serve

PRIMARY = "primary/gpt-4o-mini"


async def test_f16_flapping_primary_never_fails_a_request_and_is_used_again_after_recovery(
    primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("flap", fraction=0.5, seed=1))
    plan = two_target_plan(
        primary,
        backup,
        breaker={"failures": 2, "ejection": "200ms", "growth": 1.5, "max_ejection": "400ms"},
    )
    async with serve(plan) as gw:
        answers = [await gw.ask(stream=i % 2 == 1) for i in range(40)]
        flapping = await gw.target(PRIMARY)
        flap_seen, backup_seen = seen(primary), len(backup.requests)

        # down hard for a moment, so the breaker is surely open when the primary recovers
        primary.set_fault(Fault("error", status=503))
        async with asyncio.timeout(5):
            while (await gw.target(PRIMARY))["state"] != "open":
                assert (await gw.ask(stream=False)).provider == "backup"
        primary.clear()
        async with asyncio.timeout(5):  # the ejection is at most 400 ms
            while (state := (await gw.target(PRIMARY))["state"]) == "open":
                pass
        assert state == "half_open", "ejection over: one trial may go to the primary"
        recovered = [await gw.ask(stream=i % 2 == 1) for i in range(6)]
        after = await gw.target(PRIMARY)

    assert all(a.text == primary.expected_text() for a in answers), "100% success"
    assert all(a.finish_reason == "stop" for a in answers)
    by_primary = [a for a in answers if a.provider == "primary"]
    assert len(by_primary) == flap_seen.count("ok")
    assert len(answers) - len(by_primary) == backup_seen
    assert "flap" in flap_seen and by_primary, "the primary both failed and answered"
    assert flapping["opened_count"] >= 1, "two failures in a row open the breaker"
    assert len(flap_seen) <= 40, "a failing attempt is never retried on a 503"

    assert [(a.provider, a.attempts) for a in recovered] == [("primary", 1)] * 6, (
        "after recovery the half-open trial succeeds and the primary serves again"
    )
    assert after["state"] == "closed"
    assert after["consecutive_failures"] == 0
    assert set(seen(primary)[len(flap_seen) : -6]) <= {"error"}
    assert seen(primary)[-6:] == ["ok"] * 6
