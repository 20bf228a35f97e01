"""What a replica tells the others of its failures, so that their breakers count them:
a table of (event, what is told next)."""

from __future__ import annotations

import pytest

from standby.cluster.failures import FailureTally, Pending

K = "primary/m"

# Each step: "fail K" / "ok K" (this replica's attempt; expected: whether it is news),
# "heard K reset n" (another replica's word), "drain" (expected: what is told, as
# {key: (reset, failures)}).
CASES: dict[str, list[tuple[str, object]]] = {
    "failures are told in one batch, then nothing": [
        ("fail a", None),
        ("fail a", None),
        ("fail b", None),
        ("drain", {"a": (False, 2), "b": (False, 1)}),
        ("drain", {}),
    ],
    "a healthy target costs no message": [
        ("ok a", False),
        ("ok a", False),
        ("drain", {}),
    ],
    "a success after told failures resets the others' count, once": [
        ("fail a", None),
        ("drain", {"a": (False, 1)}),
        ("ok a", True),
        ("drain", {"a": (True, 0)}),
        ("ok a", False),
        ("drain", {}),
    ],
    "a success and failures in one batch: the reset, then the failures after it": [
        ("fail a", None),
        ("ok a", True),
        ("fail a", None),
        ("fail a", None),
        ("drain", {"a": (True, 2)}),
    ],
    "a success here resets a count the others told": [
        ("heard a 0 3", None),
        ("ok a", True),
        ("drain", {"a": (True, 0)}),
        ("ok a", False),
    ],
    "a reset heard ends the count: a success here is no news": [
        ("heard a 0 3", None),
        ("heard a 1 0", None),
        ("ok a", False),
    ],
}


def run(steps: list[tuple[str, object]], tally: FailureTally) -> None:
    for n, (event, expected) in enumerate(steps):
        verb, *args = event.split()
        if verb == "fail":
            tally.failed(args[0])
            continue
        if verb == "heard":
            tally.heard(args[0], bool(int(args[1])), int(args[2]))
            continue
        if verb == "ok":
            got: object = tally.succeeded(args[0])
        else:
            got = {k: (p.reset, p.failures) for k, p in tally.drain().items()}
        assert got == expected, f"step {n} {event}: {got!r}; {tally!r}"


@pytest.mark.parametrize("steps", list(CASES.values()), ids=list(CASES))
def test_failure_tally(steps: list[tuple[str, object]]) -> None:
    run(steps, FailureTally())


def test_bounded_and_cleared() -> None:
    tally = FailureTally(max_targets=2)
    for key in ("a", "b", "c"):
        tally.failed(key)
    assert tally.drain() == {"a": Pending(False, 1), "b": Pending(False, 1)}
    tally.heard("c", False, 1)  # three counts running: the oldest is forgotten
    assert not tally.succeeded("a") and tally.succeeded("c")
    tally.failed("d")
    tally.clear()
    assert not tally and tally.drain() == {} and not tally.succeeded("c")
    assert repr(tally) == "<FailureTally pending=0 counting=0>"
