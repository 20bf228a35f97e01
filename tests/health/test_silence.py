from __future__ import annotations

from standby.health.silence import SilenceWatch


def test_quorum_of_overdue_attempts_makes_a_target_silent() -> None:
    w = SilenceWatch(floor=0.5, factor=10, quorum=3)
    for i in range(10):  # first bytes usually take 10 ms
        t = w.started(float(i))
        w.answered(t, i + 0.01)
    stuck = [w.started(20.0 + i * 0.1) for i in range(3)]
    assert not w.silent(20.3)  # nobody has waited 0.5 s yet
    assert not w.silent(20.6)  # only two have
    assert w.silent(20.75)
    w.ended(stuck[0])
    assert not w.silent(20.75)


def test_no_history_means_never_silent() -> None:
    w = SilenceWatch(quorum=1)
    w.started(0.0)
    assert not w.silent(1000.0)


def test_threshold_follows_what_is_usual_for_the_target() -> None:
    w = SilenceWatch(floor=0.5, factor=10, quorum=1)
    for i in range(16):  # a slow target: 2 s to first byte
        t = w.started(float(i * 10))
        w.answered(t, i * 10 + 2.0)
    w.started(500.0)
    assert not w.silent(515.0)
    assert w.silent(521.0)
    assert "threshold=20.000s" in repr(w)
