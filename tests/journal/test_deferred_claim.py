"""Several replicas sharing one journal: a deferred request is tried by one at a time."""

from __future__ import annotations

import asyncio

from tests.journal.conftest import Rig


async def test_only_one_claimant_wins_and_the_lease_lapses(rig: Rig) -> None:
    writer = rig.writer()
    await writer.start()
    rig.request("d1")
    rig.journal.deferred("d1", until=10_000.0, callback=None)
    await asyncio.wait_for(writer.flush(), 5)
    store = rig.store
    claims = await asyncio.gather(*(store.claim_deferred("d1", 100.0, 60.0) for _ in range(4)))
    assert sorted(claims) == [False, False, False, True]
    assert [r.rid for r in await store.pending_deferred(120.0)] == []  # held by the claim
    assert await store.claim_deferred("d1", 161.0, 60.0)  # the claimant died: lease lapsed
    assert not await store.claim_deferred("unknown", 161.0, 60.0)
