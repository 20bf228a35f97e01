"""The sim's own official status page (Statuspage v2 shape) follows its fault, and Standby's
reader understands it."""

from __future__ import annotations

import aiohttp
import pytest

from standby.sim import Fault, SimProvider
from standby.watch.official import Level, parse_statuspage


@pytest.mark.parametrize(
    ("fault", "level"),
    [
        (None, Level.OPERATIONAL),
        (Fault("latency", delay=0.01), Level.DEGRADED),
        (Fault("rate_limit"), Level.PARTIAL_OUTAGE),
        (Fault("error", status=503), Level.MAJOR_OUTAGE),
        (Fault("silent"), Level.MAJOR_OUTAGE),
    ],
)
async def test_the_page_says_what_the_fault_is(fault: Fault | None, level: Level) -> None:
    async with SimProvider("primary") as sim:
        if fault is not None:
            sim.set_fault(fault)
        url = f"{sim.root_url}/status/api/v2/summary.json"
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            body = await resp.read()
        sim.clear()
    reading = parse_statuspage(
        body, source_url=url, fetched_at=0.0, components=["Chat Completions"]
    )
    assert reading.worst(["Chat Completions"]) is level
    assert bool(reading.incidents) is (level is not Level.OPERATIONAL)
