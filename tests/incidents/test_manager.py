"""The incident manager on a real SQLite journal database, with injected clocks: the
detector's transitions become stored incidents with timelines, people's actions and the
provider's declarations join them, maintenance mutes them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from standby.incidents.manager import IncidentManager, NotFound
from standby.journal.incident_store import IncidentRow, IncidentStore
from standby.journal.migrate import migrate
from standby.journal.sql import open_engine
from standby.plan.model import Plan
from standby.watch.signals import Signals

WALL0 = 1_800_000_000.0  # unix seconds at monotonic 0


def plan(**extra: object) -> Plan:
    return Plan.model_validate(
        {
            "providers": {
                "primary": {"base_url": "http://127.0.0.1:1"},
                "backup": {"base_url": "http://127.0.0.1:2"},
            },
            "routes": {"chat": {"targets": ["primary/m", "backup/m"]}},
            **extra,
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL0 + self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[IncidentStore]:
    engine = open_engine(f"sqlite:///{tmp_path / 'journal.db'}")
    await migrate(engine)
    yield IncidentStore(engine)
    await engine.dispose()


class Rig:
    def __init__(self, store: IncidentStore, plan: Plan) -> None:
        self.clock = Clock()
        self.signals = Signals()
        self.heard: list[tuple[str, str, str]] = []  # (event, incident id, status)
        self.manager = IncidentManager(
            plan,
            self.signals,
            store,
            listener=lambda event, i: self.heard.append((event, i.id, i.status)),
            monotonic=self.clock.monotonic,
            wall=self.clock.wall,
        )

    async def seconds(self, count: int, *, primary_ok: bool, backup_ok: bool = True) -> None:
        """``count`` seconds of 2 requests a second: each tries primary, then backup."""
        for _ in range(count):
            for n in range(2):
                at = self.clock.now + n / 2
                outcome = "ok" if primary_ok else "timeout_first_token"
                self.signals.attempt("primary/m", outcome, primary_ok, 0.1, at)
                if not primary_ok:
                    self.signals.attempt("backup/m", "ok", backup_ok, 0.1, at)
            self.clock.now += 1.0
            await self.manager.evaluate()


async def test_an_outage_opens_one_incident_and_recovery_resolves_it(
    store: IncidentStore,
) -> None:
    rig = Rig(store, plan())
    await rig.seconds(20, primary_ok=True)
    assert rig.manager.open_incidents() == []
    await rig.seconds(15, primary_ok=False)
    [incident] = rig.manager.open_incidents()
    assert incident.component == "target:primary/m" and incident.status == "investigating"
    assert incident.title == "primary/m is failing" and incident.severity == "major"
    assert incident.first_failure_at == WALL0 + 20.0  # the first failed request
    assert WALL0 + 25 <= incident.opened_at <= WALL0 + 27  # detected within 7 s
    assert rig.heard == [("opened", incident.id, "investigating")]
    await rig.seconds(30, primary_ok=True)
    assert rig.manager.open_incidents() == []
    assert [e for e, _, _ in rig.heard] == ["opened", "updated", "resolved"]
    stored = await store.get(incident.id)
    assert stored is not None and stored.status == "resolved" and stored.resolved_at
    kinds = [event.kind for event in stored.events]
    assert kinds == ["first_failure", "opened", "failover", "monitoring", "resolved"]
    assert stored.events[2].message == "traffic is served by backup/m"
    assert all(a.at <= b.at for a, b in zip(stored.events, stored.events[1:], strict=False))


async def test_a_route_whose_every_target_fails_has_its_own_incident(
    store: IncidentStore,
) -> None:
    rig = Rig(store, plan())
    await rig.seconds(15, primary_ok=False, backup_ok=False)
    components = sorted(i.component for i in rig.manager.open_incidents())
    assert components == ["route:chat", "target:backup/m", "target:primary/m"]


async def test_people_open_update_acknowledge_and_resolve(store: IncidentStore) -> None:
    rig = Rig(store, plan())
    incident = await rig.manager.open("Chat assistant", "Answers are slow", severity="minor")
    assert (await rig.manager.open("Chat assistant", "again")).id == incident.id  # one open
    await rig.manager.update(incident.id, "We are looking into it", status="identified")
    await rig.manager.acknowledge(incident.id, "alice")
    await rig.manager.acknowledge(incident.id, "bob")  # once is enough
    await rig.manager.resolve(incident.id, "Fixed")
    stored = await store.get(incident.id)
    assert stored is not None and stored.source == "manual" and stored.status == "resolved"
    assert [(e.kind, e.message) for e in stored.events] == [
        ("opened", "opened by hand: Answers are slow"),
        ("update", "We are looking into it"),
        ("acknowledged", "acknowledged by alice"),
        ("resolved", "Fixed"),
    ]
    assert [e for e, _, _ in rig.heard] == ["opened", "updated", "acknowledged", "resolved"]
    with pytest.raises(NotFound):
        await rig.manager.update("inc_nope", "?")


async def test_the_providers_declaration_is_attached_and_identifies_the_incident(
    store: IncidentStore,
) -> None:
    rig = Rig(store, plan())
    await rig.seconds(15, primary_ok=False)
    [incident] = rig.manager.open_incidents()
    declared = {"name": "Elevated errors", "status": "investigating", "eta": None}
    await rig.manager.official("primary", [declared], "major_outage")
    await rig.manager.official("primary", [declared], "major_outage")  # no news: no event
    await rig.manager.official("backup", [declared], "major_outage")  # not this incident
    stored = await store.get(incident.id)
    assert stored is not None and stored.status == "identified"
    assert stored.official == {
        "provider": "primary",
        "indicator": "major_outage",
        "incidents": [declared],
    }
    assert [e.kind for e in stored.events].count("official") == 1


async def test_maintenance_mutes_notifications_but_keeps_the_record(
    store: IncidentStore,
) -> None:
    window = {"start": "2027-01-15T08:00:00Z", "end": "2027-01-15T09:00:00Z"}
    rig = Rig(store, plan(incidents={"maintenance": [{**window, "providers": ["primary"]}]}))
    await rig.seconds(15, primary_ok=False)
    [incident] = rig.manager.open_incidents()  # WALL0 is 2027-01-15T08:00:00Z
    assert incident.muted and rig.heard == []
    assert "scheduled maintenance" in incident.events[-1].message


async def test_a_restart_picks_up_open_incidents_and_resolves_them(
    store: IncidentStore,
) -> None:
    first = Rig(store, plan())
    await first.seconds(15, primary_ok=False)
    [incident] = first.manager.open_incidents()
    second = Rig(store, plan())  # a new process on the same database
    await second.manager.recover()
    assert [i.id for i in second.manager.open_incidents()] == [incident.id]
    await second.seconds(30, primary_ok=True)
    stored = await store.get(incident.id)
    assert stored is not None and stored.status == "resolved"


def test_incident_rows_render_for_the_api() -> None:
    row = IncidentRow("inc_1", "target:p/m", "t", "investigating", "major", "detector", 1.0, 1.0)
    assert row.as_dict(events=False)["status"] == "investigating" and row.open
