"""Google Cloud's incidents.json, from small payloads written after its public schema."""

from __future__ import annotations

from typing import Any

import pytest

from standby.watch.official import Level, parse_google_cloud
from tests.watch.official.expect import Expect
from tests.watch.official.payloads import HTML_PAGE, T0_EPOCH, as_bytes, google_incident

OP, DEG, PART, MAJOR, UNK = (
    Level.OPERATIONAL,
    Level.DEGRADED,
    Level.PARTIAL_OUTAGE,
    Level.MAJOR_OUTAGE,
    Level.UNKNOWN,
)
GEMINI = ("Vertex Gemini API",)
CLOSED = google_incident(
    "old",
    "Vertex Gemini API",
    "SERVICE_OUTAGE",
    end="2026-06-01T00:00:00+00:00",
    updates=[("2026-06-01T00:00:00+00:00", "AVAILABLE", "Resolved.")],
)
BIGQUERY = google_incident(
    "bq",
    "Google BigQuery",
    "SERVICE_OUTAGE",
    severity="high",
    updates=[("2026-07-01T10:00:00+00:00", "SERVICE_OUTAGE", "BigQuery is down.")],
)
DISRUPTION = google_incident(
    "g1",
    "Vertex Gemini API",
    "SERVICE_DISRUPTION",
    updates=[("2026-07-01T10:00:00+00:00", "SERVICE_DISRUPTION", "Elevated 503s.")],
)
OUTAGE = google_incident(
    "g2",
    "Vertex Gemini API",
    "SERVICE_OUTAGE",
    severity="high",
    current_title="Gemini on Agent Platform",
    updates=[
        (
            "2026-07-01T11:00:00+00:00",
            "SERVICE_OUTAGE",
            "Summary: Gemini unavailable in us-central1\nDescription: Mitigation is under way."
            "\nWe expect mitigation to complete by 13:00 US/Pacific.",
        ),
        ("2026-07-01T10:00:00+00:00", "SERVICE_DISRUPTION", "We are investigating."),
    ],
)
BACK = google_incident(
    "g3",
    "Vertex Gemini API",
    "SERVICE_DISRUPTION",
    updates=[("2026-07-01T12:00:00+00:00", "AVAILABLE", "Service is back; we keep watching.")],
)

CASES = [
    pytest.param([], GEMINI, Expect(OP, {"Vertex Gemini API": OP}, worst=OP), id="nothing-open"),
    pytest.param(
        [CLOSED, BIGQUERY],
        GEMINI,
        # a closed Gemini incident, an open one elsewhere in the cloud: nothing for Gemini
        Expect(OP, {"Vertex Gemini API": OP}, worst=OP),
        id="all-operational-for-the-watched-product",
    ),
    pytest.param(
        [DISRUPTION, BIGQUERY],
        GEMINI,
        Expect(DEG, {"Vertex Gemini API": DEG}, incidents=1, worst=DEG),
        id="degraded",
    ),
    pytest.param(
        [OUTAGE],
        ("gemini on agent platform",),  # the renamed title matches too
        Expect(MAJOR, {"gemini on agent platform": MAJOR}, incidents=1, worst=MAJOR),
        id="major-outage-by-current-title",
    ),
    pytest.param(
        [BACK],
        GEMINI,
        Expect(OP, {"Vertex Gemini API": OP}, incidents=1, worst=OP),
        id="open-but-available-again",
    ),
    pytest.param(
        [DISRUPTION, BIGQUERY, CLOSED],
        (),
        Expect(MAJOR, {"Vertex Gemini API": DEG, "Google BigQuery": MAJOR}, incidents=2),
        id="no-watch-list-every-open-product",
    ),
    pytest.param(
        [google_incident("h", "Vertex Gemini API", "SERVICE_DISRUPTION", severity="high")],
        GEMINI,
        Expect(PART, {"Vertex Gemini API": PART}, incidents=1),
        id="high-severity-disruption",
    ),
    pytest.param(HTML_PAGE, GEMINI, Expect(UNK, {}, error="HTML"), id="html-page"),
    pytest.param(b"[{", GEMINI, Expect(UNK, {}, error="invalid JSON"), id="invalid-json"),
    pytest.param(
        b'{"incidents": []}', GEMINI, Expect(UNK, {}, error="not a list"), id="not-a-list"
    ),
]


@pytest.mark.parametrize(("document", "watch", "expect"), CASES)
def test_cases(document: Any, watch: tuple[str, ...], expect: Expect) -> None:
    body = document if isinstance(document, bytes) else as_bytes(document)
    expect.check(
        parse_google_cloud(
            body,
            source_url="https://status.cloud.google.com/incidents.json",
            fetched_at=9.0,
            components=watch,
        )
    )


def test_an_open_incident_in_full() -> None:
    reading = parse_google_cloud(
        [OUTAGE],
        source_url="https://status.cloud.google.com/incidents.json",
        fetched_at=0.0,
        components=GEMINI,
    )
    [outage] = reading.incidents
    assert outage.id == "g2" and outage.name == "Vertex Gemini API elevated errors"
    assert outage.status == "service_outage" and outage.impact is MAJOR
    assert outage.started_at == T0_EPOCH
    assert outage.url == "https://status.cloud.google.com/incidents/g2"
    assert outage.components == ("Vertex Gemini API",)
    assert [u.status for u in outage.updates] == ["service_outage", "service_disruption"]
    assert outage.updates[0].at == T0_EPOCH + 3600
    assert outage.eta == "We expect mitigation to complete by 13:00 US/Pacific."


def test_the_deprecated_service_name_still_names_the_product() -> None:
    old = google_incident("o", "Vertex Gemini API", "SERVICE_OUTAGE")
    del old["affected_products"]
    reading = parse_google_cloud([old], source_url="", fetched_at=0, components=GEMINI)
    assert reading.components == {"Vertex Gemini API": MAJOR}


def test_an_empty_end_is_still_open() -> None:
    still = {**DISRUPTION, "end": ""}
    reading = parse_google_cloud([still], source_url="", fetched_at=0, components=GEMINI)
    assert reading.indicator is DEG and len(reading.incidents) == 1
