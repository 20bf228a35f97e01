"""The escalation policy, driven by tables of (time, action, expectation) and checked by
hypothesis for the promises it makes over any sequence of events."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standby.notify.escalation import Escalation
from standby.plan.alerts import Step

# chat and hooks at once, the pager after 10 minutes
TWO = [Step(after=0, notify=["chat", "hooks"]), Step(after=600, notify=["pager"])]
LATE = [Step(after=60, notify=["chat"]), Step(after=600, notify=["pager"])]  # nothing at once
THREE = [
    Step(after=0, notify=["chat"]),
    Step(after=60, notify=["hooks", "chat"]),  # chat was told already
    Step(after=120, notify=["pager"]),
]
POLICIES = {"two": TWO, "late": LATE, "three": THREE}
NO_INTERVAL: dict[str, float] = {}
CHAT_60 = {"chat": 60.0}

# (now, action, expected). Actions:
#   "open|update|ack|resolve ID" → expected None;  "mute ID" → None
#   "due" → the list due(now) returns;  "wake" → next_wake(now);  "has ID" → ID in escalation
Row = tuple[float, str, object]
CASES: dict[str, tuple[str, dict[str, float], list[Row]]] = {
    "a blip resolved before the second step reaches only step 0": (
        "two",
        NO_INTERVAL,
        [
            (0, "open a", None),
            (0, "due", [("a", "opened", ("chat", "hooks"))]),
            (0, "wake", 600),
            (30, "resolve a", None),
            (30, "due", [("a", "resolved", ("chat", "hooks"))]),
            (30, "wake", None),
            (600, "due", []),
            (600, "has a", False),
        ],
    ),
    "a blip resolved before any step sends nothing at all": (
        "late",
        NO_INTERVAL,
        [
            (0, "open a", None),
            (0, "due", []),
            (0, "wake", 60),
            (59, "resolve a", None),
            (59, "due", []),
            (59, "has a", False),
            (60, "due", []),
            (600, "due", []),
        ],
    ),
    "an acknowledgement stops later steps and reaches the channels told": (
        "two",
        NO_INTERVAL,
        [
            (0, "open a", None),
            (0, "due", [("a", "opened", ("chat", "hooks"))]),
            (100, "ack a", None),
            (100, "due", [("a", "acknowledged", ("chat", "hooks"))]),
            (100, "wake", None),
            (600, "due", []),
            (700, "update a", None),
            (700, "due", [("a", "updated", ("chat", "hooks"))]),
            (800, "resolve a", None),
            (800, "due", [("a", "resolved", ("chat", "hooks"))]),
        ],
    ),
    "an acknowledgement before the first step: nobody is ever told": (
        "late",
        NO_INTERVAL,
        [
            (0, "open a", None),
            (30, "ack a", None),
            (30, "due", []),
            (30, "wake", None),
            (600, "due", []),
            (700, "resolve a", None),
            (700, "due", []),
            (700, "has a", False),
        ],
    ),
    "a resolution goes to every channel told, from every step": (
        "two",
        NO_INTERVAL,
        [
            (0, "open a", None),
            (0, "due", [("a", "opened", ("chat", "hooks"))]),
            (599, "due", []),
            (600, "due", [("a", "opened", ("pager",))]),
            (900, "resolve a", None),
            (900, "due", [("a", "resolved", ("chat", "hooks", "pager"))]),
        ],
    ),
    "a late caller gets the steps that came due before the resolution, then it": (
        "two",
        NO_INTERVAL,
        [
            (0, "open a", None),
            (650, "resolve a", None),
            (
                700,
                "due",
                [
                    ("a", "opened", ("chat", "hooks", "pager")),
                    ("a", "resolved", ("chat", "hooks", "pager")),
                ],
            ),
        ],
    ),
    "steps fire in order, once each, a channel told only once": (
        "three",
        NO_INTERVAL,
        [
            (0, "open a", None),
            (0, "due", [("a", "opened", ("chat",))]),
            (0, "wake", 60),
            (59, "due", []),
            (60, "due", [("a", "opened", ("hooks",))]),
            (60, "wake", 120),
            (60, "due", []),
            (500, "due", [("a", "opened", ("pager",))]),
            (500, "wake", None),
            (900, "due", []),
        ],
    ),
    "updates go to the channels told, and only once per due": (
        "two",
        NO_INTERVAL,
        [
            (0, "open a", None),
            (0, "due", [("a", "opened", ("chat", "hooks"))]),
            (10, "update a", None),
            (11, "update a", None),
            (12, "due", [("a", "updated", ("chat", "hooks"))]),
            (12, "due", []),
        ],
    ),
    "maintenance: a muted incident sends nothing": (
        "two",
        NO_INTERVAL,
        [
            (0, "open a", None),
            (0, "mute a", None),
            (0, "due", []),
            (0, "wake", None),
            (10, "update a", None),
            (600, "due", []),
            (700, "resolve a", None),
            (700, "due", []),
            (700, "has a", False),
        ],
    ),
    "maintenance announced before the incident opened": (
        "two",
        NO_INTERVAL,
        [
            (0, "mute a", None),
            (0, "open a", None),
            (0, "due", []),
            (600, "due", []),
        ],
    ),
    "a mute after the first step: quiet, but the page is closed at the end": (
        "two",
        NO_INTERVAL,
        [
            (0, "open a", None),
            (0, "due", [("a", "opened", ("chat", "hooks"))]),
            (10, "mute a", None),
            (20, "update a", None),
            (20, "ack a", None),
            (600, "due", []),
            (700, "resolve a", None),
            (700, "due", [("a", "resolved", ("chat", "hooks"))]),
        ],
    ),
    "min_interval: updates inside it are coalesced into one, sent when it ends": (
        "two",
        CHAT_60,
        [
            (0, "open a", None),
            (0, "due", [("a", "opened", ("chat", "hooks"))]),
            (10, "update a", None),
            (10, "due", [("a", "updated", ("hooks",))]),
            (10, "wake", 60),
            (20, "update a", None),
            (30, "update a", None),
            (30, "due", [("a", "updated", ("hooks",))]),
            (59, "due", []),
            (60, "due", [("a", "updated", ("chat",))]),
            (61, "due", []),
            (61, "wake", 600),
        ],
    ),
    "min_interval: a resolution is delayed, never dropped, and outranks an update": (
        "two",
        CHAT_60,
        [
            (0, "open a", None),
            (0, "due", [("a", "opened", ("chat", "hooks"))]),
            (10, "update a", None),
            (20, "resolve a", None),
            (20, "due", [("a", "resolved", ("hooks",))]),
            (20, "wake", 60),
            (20, "has a", True),
            (60, "due", [("a", "resolved", ("chat",))]),
            (60, "wake", None),
            (60, "has a", True),  # kept for one interval: a re-opening waits for it
            (120, "due", []),
            (120, "has a", False),
        ],
    ),
    "min_interval: an acknowledgement outranks an update inside the interval": (
        "two",
        CHAT_60,
        [
            (0, "open a", None),
            (0, "due", [("a", "opened", ("chat", "hooks"))]),
            (10, "update a", None),
            (20, "ack a", None),
            (30, "update a", None),
            (
                30,
                "due",
                [
                    ("a", "acknowledged", ("hooks",)),
                ],
            ),
            (60, "due", [("a", "acknowledged", ("chat",))]),
        ],
    ),
    "min_interval: opened counts, so the resolution of a blip waits for it": (
        "two",
        CHAT_60,
        [
            (0, "open a", None),
            (5, "resolve a", None),
            (
                5,
                "due",
                [("a", "opened", ("chat", "hooks")), ("a", "resolved", ("hooks",))],
            ),
            (65, "due", [("a", "resolved", ("chat",))]),
        ],
    ),
    "re-opened while a resolution waits: the waiting channel hears an update": (
        "two",
        CHAT_60,
        [
            (0, "open a", None),
            (0, "due", [("a", "opened", ("chat", "hooks"))]),
            (10, "resolve a", None),
            (10, "due", [("a", "resolved", ("hooks",))]),
            (20, "open a", None),
            (20, "due", [("a", "opened", ("hooks",))]),
            (60, "due", [("a", "updated", ("chat",))]),
            (620, "due", [("a", "opened", ("pager",))]),
        ],
    ),
    "a resolved incident is forgotten; the same id opens a new one": (
        "two",
        NO_INTERVAL,
        [
            (0, "open a", None),
            (0, "due", [("a", "opened", ("chat", "hooks"))]),
            (10, "resolve a", None),
            (10, "due", [("a", "resolved", ("chat", "hooks"))]),
            (20, "open a", None),
            (20, "due", [("a", "opened", ("chat", "hooks"))]),
            (20, "wake", 620),
        ],
    ),
    "repeats and unknown incidents change nothing": (
        "two",
        NO_INTERVAL,
        [
            (0, "update x", None),
            (0, "ack x", None),
            (0, "resolve x", None),
            (0, "due", []),
            (0, "open a", None),
            (5, "open a", None),
            (5, "due", [("a", "opened", ("chat", "hooks"))]),
            (5, "wake", 600),
            (10, "ack a", None),
            (11, "ack a", None),
            (12, "due", [("a", "acknowledged", ("chat", "hooks"))]),
            (13, "due", []),
        ],
    ),
    "incidents are independent": (
        "two",
        NO_INTERVAL,
        [
            (0, "open a", None),
            (300, "open b", None),
            (300, "due", [("a", "opened", ("chat", "hooks")), ("b", "opened", ("chat", "hooks"))]),
            (300, "wake", 600),
            (600, "due", [("a", "opened", ("pager",))]),
            (600, "wake", 900),
            (700, "resolve a", None),
            (
                900,
                "due",
                [("a", "resolved", ("chat", "hooks", "pager")), ("b", "opened", ("pager",))],
            ),
        ],
    ),
}


def play(escalation: Escalation, rows: list[Row]) -> None:
    for index, (now, action, expected) in enumerate(rows):
        verb, _, incident = action.partition(" ")
        where = f"row {index}: {now} {action} in {escalation!r}"
        if verb == "due":
            assert escalation.due(now) == expected, where
        elif verb == "wake":
            assert escalation.next_wake(now) == expected, where
        elif verb == "has":
            assert (incident in escalation) == expected, where
        elif verb == "mute":
            escalation.muted(incident)
        else:
            method = {
                "open": escalation.opened,
                "update": escalation.updated,
                "ack": escalation.acknowledged,
                "resolve": escalation.resolved,
            }[verb]
            method(incident, now)


@pytest.mark.parametrize("name", list(CASES))
def test_escalation(name: str) -> None:
    policy, intervals, rows = CASES[name]
    play(Escalation(POLICIES[policy], min_interval=intervals), rows)


def test_repr_shows_threads_and_pending_messages() -> None:
    escalation = Escalation(TWO, min_interval=CHAT_60)
    escalation.opened("a", 0)
    assert repr(escalation) == "<Escalation steps=2 a open fired=0 []>"
    escalation.due(0)
    escalation.updated("a", 10)
    assert repr(escalation) == "<Escalation steps=2 a open fired=1 [chat:updated,hooks:updated]>"


# -- properties over any sequence of events --------------------------------------------

ACTIONS = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=200, allow_nan=False),
        st.sampled_from(["open", "update", "ack", "resolve", "mute", "due"]),
        st.sampled_from(["a", "b"]),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(actions=ACTIONS, interval=st.sampled_from([0.0, 15.0, 60.0]))
def test_threads_are_well_formed(actions: list[tuple[float, str, str]], interval: float) -> None:
    """Whatever happens: a thread starts with ``opened``; messages of one thread are
    ``interval`` apart (``opened`` included); every thread that was told and whose
    incident resolved ends with ``resolved``; a resolved incident is forgotten once
    told; nothing is due twice."""
    policy = [Step(after=0, notify=["chat"]), Step(after=50, notify=["pager"])]
    escalation = Escalation(policy, min_interval={"chat": interval, "pager": interval})
    sent: dict[tuple[str, str], list[tuple[float, str]]] = {}
    resolved: set[str] = set()
    now = 0.0

    def collect(at: float) -> None:
        for incident, event, names in escalation.due(at):
            for name in names:
                sent.setdefault((incident, name), []).append((at, event))

    for delta, verb, incident in sorted(actions, key=lambda action: action[0]):
        now = max(now, delta)
        if verb == "due":
            collect(now)
        elif verb == "mute":
            escalation.muted(incident)
        elif verb == "open":
            escalation.opened(incident, now)
            resolved.discard(incident)
        elif verb == "update":
            escalation.updated(incident, now)
        elif verb == "ack":
            escalation.acknowledged(incident, now)
        else:
            escalation.resolved(incident, now)
            resolved.add(incident)
    for incident in ("a", "b"):
        escalation.resolved(incident, now)
        resolved.add(incident)
    # drain: everything waiting goes out within one interval of the last event
    while (wake := escalation.next_wake(now)) is not None:
        assert wake <= now + interval
        now = max(now, wake)
        collect(now)
    collect(now + interval)  # the resolved incidents' intervals are over: forgotten
    assert "a" not in escalation
    assert "b" not in escalation
    for messages in sent.values():
        events = [event for _, event in messages]
        assert events[0] == "opened", messages
        assert events[-1] == "resolved", messages
        times = [at for at, _ in messages]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert all(gap >= interval - 1e-9 for gap in gaps), messages  # float sums
        for earlier, later in itertools.pairwise(events):
            # after a resolution, only a re-opening thread starts again
            if earlier == "resolved":
                assert later == "opened", messages
