"""What the parsers share: JSON or why not, timestamps, plain text, ETA sentences."""

from __future__ import annotations

import pytest

from standby.watch.official import OfficialUpdate
from standby.watch.official.decode import Unreadable, load_json, parse_time, plain_text
from standby.watch.official.eta import find_eta


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML"),
        (b'<?xml version="1.0"?><!DOCTYPE html><html></html>', "HTML"),
        (b"<?xml version='1.0'?><rss version='2.0'></rss>", "XML"),
        (b"{'single': 'quotes'}", "invalid JSON"),
    ],
)
def test_bodies_that_are_not_json(body: bytes, reason: str) -> None:
    result = load_json(body)
    assert isinstance(result, Unreadable) and reason in result.reason


def test_json_that_mentions_html_is_still_json() -> None:
    assert load_json('\ufeff {"body": "<html><body>hi</body></html>"}') == {
        "body": "<html><body>hi</body></html>"
    }


@pytest.mark.parametrize(
    ("value", "epoch"),
    [
        ("2026-07-01T10:00:00Z", 1782900000.0),
        ("2026-07-01T10:00:00.500Z", 1782900000.5),
        ("2026-07-01T12:00:00+02:00", 1782900000.0),
        ("2026-07-01T10:00:00", 1782900000.0),  # no zone: UTC
        ("yesterday", None),
        ("", None),
        (None, None),
        (1782900000, None),
    ],
)
def test_parse_time(value: object, epoch: float | None) -> None:
    assert parse_time(value) == epoch


def test_plain_text() -> None:
    markup = (
        "<p>We are <strong>investigating</strong> &amp; will update.</p>"
        "<ul><li>A</li><li>B</li></ul>"
    )
    assert plain_text(markup) == "We are investigating & will update.\nA\nB"


@pytest.mark.parametrize(
    ("bodies", "eta"),
    [
        (
            ["We expect full recovery by 14:00 UTC. Thanks."],
            "We expect full recovery by 14:00 UTC.",
        ),
        (
            ["We do not have an ETA for mitigation at this point."],
            "We do not have an ETA for mitigation at this point.",
        ),
        (["Fix deployed.", "Next update in 30 minutes."], "Next update in 30 minutes."),
        (
            ["We will provide an update by Friday, 2023-03-10 07:30 US/Pacific."],
            "We will provide an update by Friday, 2023-03-10 07:30 US/Pacific.",
        ),
        (
            ["The estimated time to resolution is two hours."],
            "The estimated time to resolution is two hours.",
        ),
        (
            ["Service should be restored within the hour."],
            "Service should be restored within the hour.",
        ),
        (["Service is degraded in us-east1."], None),
        (["We are investigating.", "All good."], None),
        ([], None),
    ],
)
def test_find_eta_reads_the_newest_update_first(bodies: list[str], eta: str | None) -> None:
    updates = [OfficialUpdate(at=float(-i), status="x", body=body) for i, body in enumerate(bodies)]
    assert find_eta(updates) == eta


def test_find_eta_keeps_a_sentence_short() -> None:
    [update] = [OfficialUpdate(0.0, "x", "ETA " + "very " * 200 + "soon.")]
    found = find_eta([update])
    assert found is not None and len(found) == 300 and found.endswith("…")
