"""The vocabulary: severity, the worst of components, matching component names."""

from __future__ import annotations

import pytest

from standby.watch.official import Level, Reading, worst_level
from standby.watch.official.model import match_component, select_components

OP, DEG, PART, MAJOR, MAINT, UNK = (
    Level.OPERATIONAL,
    Level.DEGRADED,
    Level.PARTIAL_OUTAGE,
    Level.MAJOR_OUTAGE,
    Level.MAINTENANCE,
    Level.UNKNOWN,
)


def test_the_severity_ladder() -> None:
    ladder = sorted(Level, key=lambda level: level.severity)
    assert ladder == [UNK, OP, MAINT, DEG, PART, MAJOR]
    assert [level.value for level in ladder][1:] == [
        "operational",
        "maintenance",
        "degraded",
        "partial_outage",
        "major_outage",
    ]


@pytest.mark.parametrize(
    ("levels", "worst"),
    [
        ([], UNK),
        ([UNK, UNK], UNK),
        ([UNK, OP], OP),  # one thing known beats nothing known
        ([OP, MAINT, DEG], DEG),
        ([MAJOR, PART, UNK], MAJOR),
    ],
)
def test_worst_level(levels: list[Level], worst: Level) -> None:
    assert worst_level(levels) is worst


def reading(components: dict[str, Level], indicator: Level = OP) -> Reading:
    return Reading("u", 0.0, indicator, components)


@pytest.mark.parametrize(
    ("components", "asked", "worst"),
    [
        ({"A": OP, "B": DEG}, (), DEG),
        ({"A": OP, "B": DEG}, ("A",), OP),
        ({"A": OP, "B": UNK}, ("A", "B"), OP),  # an unlisted component hides nothing
        ({"A": UNK}, ("A",), UNK),
        ({"A": OP}, ("missing",), UNK),
        ({"a": MAJOR}, ("A",), MAJOR),  # case does not matter
        ({"Claude API (api.anthropic.com)": PART}, ("Claude API",), PART),
        ({}, (), OP),  # a reading without components answers with its indicator
    ],
)
def test_reading_worst(components: dict[str, Level], asked: tuple[str, ...], worst: Level) -> None:
    assert reading(components).worst(asked) is worst


def test_a_failed_reading_knows_nothing() -> None:
    failed = Reading.failed("u", 3.0, "HTTP 500")
    assert failed.indicator is UNK and failed.worst() is UNK and failed.worst(["A"]) is UNK
    assert not failed.ok and failed.error == "HTTP 500" and failed.components == {}


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("Claude API", PART),
        ("claude api", PART),
        ("Claude", None),  # another word is another component, not a qualifier
        ("Codex", None),
        ("API", MAJOR),  # "API - US" and "API: EU": the worse
        ("AP", None),
        ("Files", OP),
    ],
)
def test_match_component(name: str, level: Level | None) -> None:
    levels = {
        "Claude API (api.anthropic.com)": PART,
        "Codex API": DEG,
        "Codex Web": MAJOR,
        "Files": OP,
        "File uploads": MAJOR,
        "API - US": OP,
        "API: EU": MAJOR,
    }
    assert match_component(levels, name) is level


def test_select_components_keys_by_the_watched_name() -> None:
    levels = {"Chat Completions": DEG, "Images": OP}
    assert select_components(levels, (), UNK) == levels
    assert select_components(levels, ("chat completions", "Audio"), UNK) == {
        "chat completions": DEG,
        "Audio": UNK,
    }
