"""Statuspage v2 (and incident.io's copy of it): the shared real payloads, then small
payloads written from the public API reference, one per situation."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from standby.watch.official import Level, parse_statuspage, parse_statuspage_webhook
from tests.watch.official.expect import Expect
from tests.watch.official.payloads import (
    FIXTURES,
    HTML_PAGE,
    PAGE,
    T0_EPOCH,
    as_bytes,
    component,
    incident,
    summary,
    update,
)

needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"the shared status fixtures are not at {FIXTURES}"
)
OP, DEG, PART, MAJOR, MAINT, UNK = (
    Level.OPERATIONAL,
    Level.DEGRADED,
    Level.PARTIAL_OUTAGE,
    Level.MAJOR_OUTAGE,
    Level.MAINTENANCE,
    Level.UNKNOWN,
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# -- the real payloads ----------------------------------------------------------------

REAL = [
    pytest.param(
        "openai_summary_incidentio_2026-07.json",
        parse_statuspage,
        ("Embeddings", "batch", "Chat Completions"),  # case-insensitive; one not listed
        Expect(
            OP,
            {"Embeddings": OP, "batch": OP, "Chat Completions": UNK},
            worst=OP,  # the unlisted one cannot hide the others
        ),
        id="openai-incidentio-summary",
    ),
    pytest.param(
        "anthropic_scheduled_maintenances_2026-09.json",
        parse_statuspage,
        (),
        # both maintenances are completed; a maintenances document says nothing of health
        Expect(UNK, {}, worst=UNK),
        id="anthropic-scheduled-maintenances",
    ),
    pytest.param(
        "statuspage_webhook_component_update.json",
        parse_statuspage_webhook,
        (),
        Expect(MAINT, {"Database component": MAINT}, worst=MAINT),
        id="webhook-component-update",
    ),
    pytest.param(
        "statuspage_webhook_incident_update.json",
        parse_statuspage_webhook,
        ("Management Portal", "Billing"),
        # resolved: no open incident; the portal by its qualified name; Billing not told
        Expect(OP, {"Management Portal": OP, "Billing": UNK}, worst=OP),
        id="webhook-incident-resolved",
    ),
]


@needs_fixtures
@pytest.mark.parametrize(("name", "parse", "watch", "expect"), REAL)
def test_real_payloads(name: str, parse: Any, watch: tuple[str, ...], expect: Expect) -> None:
    reading = parse(fixture(name), source_url=name, fetched_at=1.0, components=watch)
    expect.check(reading)
    assert reading.source_url == name and reading.fetched_at == 1.0


@needs_fixtures
def test_openai_summary_lists_every_component_without_a_watch_list() -> None:
    reading = parse_statuspage(
        fixture("openai_summary_incidentio_2026-07.json"), source_url="", fetched_at=0.0
    )
    assert len(reading.components) == 25
    assert set(reading.components.values()) == {OP}
    assert {"Embeddings", "Batch", "Files", "Realtime", "Codex API"} <= set(reading.components)


@needs_fixtures
def test_a_maintenance_under_way_in_the_anthropic_payload() -> None:
    document = orjson.loads(fixture("anthropic_scheduled_maintenances_2026-09.json"))
    first = document["scheduled_maintenances"][0]
    first["status"] = "in_progress"
    first["incident_updates"] = first["incident_updates"][2:]  # up to "in progress"
    reading = parse_statuspage(document, source_url="", fetched_at=0.0)
    assert reading.indicator is MAINT and reading.incidents == ()
    [window] = reading.maintenances
    assert window.id == "x017628t2rl5" and window.status == "in_progress"
    assert window.name == "Upgrades to Connector Auth Storage" and window.impact is MAINT
    assert window.eta == "2025-08-29T02:40:00.000Z"  # its scheduled end, as the page says
    assert window.components == ("claude.ai",) and window.url == "https://stspg.io/kzxt8ykxyx3j"
    assert [u.status for u in window.updates] == ["in_progress", "scheduled"]  # newest first
    assert window.updates[0].body.startswith("Scheduled maintenance is currently in progress")


@needs_fixtures
def test_the_incident_webhook_while_it_was_still_open() -> None:
    document = orjson.loads(fixture("statuspage_webhook_incident_update.json"))
    document["incident"]["status"] = "identified"
    document["incident"]["impact"] = "major"
    document["incident"]["incident_updates"] = document["incident"]["incident_updates"][1:]
    reading = parse_statuspage_webhook(document, source_url="", fetched_at=0.0)
    [open_one] = reading.incidents
    assert (open_one.name, open_one.status, open_one.impact) == (
        "Database query delays",
        "identified",
        PART,
    )
    assert open_one.components == ("Management Portal (example)",)
    assert "quick fix latest by tomorrow" in open_one.updates[0].body


# -- small payloads from the public reference -----------------------------------------

OUTAGE = incident(
    "inc1",
    "Elevated errors on Chat Completions",
    "identified",
    "critical",
    [
        update(
            "investigating", "We are investigating elevated error rates.", "2026-07-01T10:00:00Z"
        ),
        update(
            "identified",
            "<p>The cause is a failed database node.</p><p>We expect full recovery by "
            "14:00 UTC. Next update in 30 minutes.</p>",
            "2026-07-01T10:20:00Z",
        ),
    ],
    ["Chat Completions"],
)
IN_PROGRESS = incident(
    "mnt1",
    "Database upgrade",
    "in_progress",
    "maintenance",
    [
        update(
            "in_progress", "Scheduled maintenance is currently in progress.", "2026-07-01T10:00:00Z"
        )
    ],
    ["Embeddings"],
    scheduled_for="2026-07-01T10:00:00Z",
    scheduled_until="2026-07-01T12:00:00Z",
)
UPCOMING = {**IN_PROGRESS, "id": "mnt2", "status": "scheduled", "name": "Next upgrade"}
RESOLVED = {**OUTAGE, "id": "inc0", "status": "resolved", "name": "Old outage"}
WATCH = ("Chat Completions", "Embeddings")

OWN = [
    pytest.param(
        as_bytes(summary({"Chat Completions": "operational", "Embeddings": "operational"})),
        WATCH,
        Expect(OP, {"Chat Completions": OP, "Embeddings": OP}, worst=OP),
        id="all-operational",
    ),
    pytest.param(
        as_bytes(
            summary(
                {"Chat Completions": "degraded_performance", "Embeddings": "operational"}, "minor"
            )
        ),
        WATCH,
        Expect(DEG, {"Chat Completions": DEG, "Embeddings": OP}, worst=DEG),
        id="degraded-component",
    ),
    pytest.param(
        as_bytes(summary({"Chat Completions": "partial_outage", "Images": "operational"}, "major")),
        WATCH,
        Expect(PART, {"Chat Completions": PART, "Embeddings": UNK}, worst=PART),
        id="partial-outage-and-a-watched-name-not-on-the-page",
    ),
    pytest.param(
        as_bytes(summary({"Chat Completions": "major_outage"}, "critical", [OUTAGE])),
        (),
        Expect(MAJOR, {"Chat Completions": MAJOR}, incidents=1, worst=MAJOR),
        id="major-outage-with-an-open-incident",
    ),
    pytest.param(
        as_bytes(
            summary(
                {"Chat Completions": "operational", "Embeddings": "under_maintenance"},
                "maintenance",
                maintenances=[IN_PROGRESS, UPCOMING],
            )
        ),
        WATCH,
        Expect(MAINT, {"Chat Completions": OP, "Embeddings": MAINT}, maintenances=2, worst=MAINT),
        id="maintenance-in-progress",
    ),
    pytest.param(
        as_bytes({"page": PAGE, "incidents": [RESOLVED, OUTAGE]}),
        (),
        Expect(MAJOR, {}, incidents=1, names=("Elevated errors on Chat Completions",)),
        id="incidents-json-keeps-the-unresolved",
    ),
    pytest.param(
        as_bytes({"page": PAGE, "components": [component("API", "partial_outage")]}),
        (),
        Expect(PART, {"API": PART}),
        id="components-json-derives-the-indicator",
    ),
    pytest.param(
        as_bytes({k: v for k, v in summary({"API": "operational"}).items() if k != "incidents"}),
        (),
        Expect(OP, {"API": OP}),
        id="incidentio-summary-without-incidents",
    ),
    pytest.param(HTML_PAGE, WATCH, Expect(UNK, {}, error="HTML"), id="html-page"),
    pytest.param(
        b'{"status": {"indicator": "no',
        (),
        Expect(UNK, {}, error="invalid JSON"),
        id="invalid-json",
    ),
    pytest.param(b"", (), Expect(UNK, {}, error="empty"), id="empty-body"),
    pytest.param(
        b'{"hello": "world"}', (), Expect(UNK, {}, error="not a Statuspage"), id="other-json"
    ),
    pytest.param(b"[1, 2]", (), Expect(UNK, {}, error="not a Statuspage"), id="a-list"),
    pytest.param(
        as_bytes(summary({"API": "on_fire"}, "apocalyptic")),
        (),
        Expect(UNK, {"API": UNK}, worst=UNK),
        id="words-nobody-documented",
    ),
]


@pytest.mark.parametrize(("body", "watch", "expect"), OWN)
def test_own_payloads(body: bytes, watch: tuple[str, ...], expect: Expect) -> None:
    expect.check(parse_statuspage(body, source_url="u", fetched_at=5.0, components=watch))


def test_an_open_incident_in_full() -> None:
    reading = parse_statuspage(
        summary({"Chat Completions": "major_outage"}, "critical", [OUTAGE]),
        source_url="",
        fetched_at=0.0,
    )
    [outage] = reading.incidents
    assert outage.id == "inc1" and outage.status == "identified" and outage.impact is MAJOR
    assert outage.started_at == T0_EPOCH and outage.url == "https://stspg.io/inc1"
    assert outage.components == ("Chat Completions",)
    assert [u.status for u in outage.updates] == ["identified", "investigating"]
    assert outage.updates[0].at == T0_EPOCH + 1200
    assert outage.updates[0].body == (
        "The cause is a failed database node.\n"
        "We expect full recovery by 14:00 UTC. Next update in 30 minutes."
    )
    assert outage.eta == "We expect full recovery by 14:00 UTC."


def test_an_incident_without_eta_text_has_none() -> None:
    quiet = incident(
        "i",
        "Slow",
        "investigating",
        "minor",
        [update("investigating", "Looking.", "2026-07-01T10:00:00Z")],
    )
    [record] = parse_statuspage(
        summary({}, "minor", [quiet]), source_url="", fetched_at=0
    ).incidents
    assert record.eta is None and record.components == ()


def test_incident_components_fall_back_to_those_its_updates_touched() -> None:
    touched = update("identified", "Found it.", "2026-07-01T10:00:00Z")
    touched["affected_components"] = [
        {"code": "c", "name": "Responses", "new_status": "major_outage"}
    ]
    raw = incident("i", "Down", "identified", "major", [touched])
    raw["components"] = []
    [record] = parse_statuspage(summary({}, "major", [raw]), source_url="", fetched_at=0).incidents
    assert record.components == ("Responses",)


def test_a_link_is_made_from_the_page_when_there_is_no_shortlink() -> None:
    raw = {**OUTAGE, "shortlink": None}
    [record] = parse_statuspage(summary({}, "major", [raw]), source_url="", fetched_at=0).incidents
    assert record.url == "https://status.example.com/incidents/inc1"


def test_two_components_of_one_name_report_the_worse() -> None:
    document = summary({})
    document["components"] = [component("API", "operational"), component("API", "major_outage")]
    assert parse_statuspage(document, source_url="", fetched_at=0).components == {"API": MAJOR}


def test_null_and_odd_values_are_read_as_absent() -> None:
    document = {
        "page": None,
        "status": {"indicator": None},
        "components": [None, {"name": None}, {"name": "API", "status": None}, 5],
        "incidents": [{"id": None, "status": None, "incident_updates": None, "components": 3}],
        "scheduled_maintenances": None,
    }
    reading = parse_statuspage(document, source_url="", fetched_at=0)
    assert reading.error is None and reading.indicator is UNK
    assert reading.components == {"API": UNK}
    assert reading.incidents[0].impact is UNK and reading.incidents[0].updates == ()


@pytest.mark.parametrize(
    ("body", "error"),
    [(HTML_PAGE, "HTML"), (b"{", "invalid JSON"), (b"[]", "not a Statuspage webhook")],
)
def test_webhooks_that_cannot_be_read(body: bytes, error: str) -> None:
    reading = parse_statuspage_webhook(body, source_url="", fetched_at=0)
    assert reading.indicator is UNK and reading.error is not None and error in reading.error
