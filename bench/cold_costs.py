"""What a few small steps of a request cost on this host when the core has been quiet.

    python -m bench.cold_costs [--gaps 0,0.001,0.005,0.02] [--calls 150] [--cpu 1]

Each step is timed ``--calls`` times, each call after a pause of one of the ``--gaps``
(seconds; the pause sleeps, or spins with ``--spin`` so the core never idles): a gap of 0
is the warm cost a benchmark at saturation sees; 0.02 s is what every request meets at
50 requests a second.  The median per step and gap is printed (µs).

Why it exists: on the virtual machines these benchmarks run on, the gateway's added
latency at a low rate is several times its CPU cost at saturation, and this shows the
cause outside the gateway: any code or data not touched for a few milliseconds costs
tens of µs to touch again, even with the core kept busy, so a request's latency at a low
rate grows with how much distinct code and data it touches rather than with how much
work it does.  Bounded: at most ``len(gaps) x steps x calls`` calls, a few seconds each.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from collections.abc import Callable

import orjson

from standby.journal.events import RequestIds

BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in five words."}],'
    b'"max_tokens":32}'
)


def steps() -> dict[str, Callable[[], object]]:
    """The steps timed: an empty call, and a few a request really takes."""
    ids = RequestIds()
    return {
        "an empty function call": lambda: None,
        "time.time_ns()": time.time_ns,
        "a request id (RequestIds)": ids,
        "orjson.loads of a chat body": lambda: orjson.loads(BODY),
        "orjson.dumps of a 13-key event": lambda: orjson.dumps(
            {str(k): k for k in range(13)}, option=orjson.OPT_APPEND_NEWLINE
        ),
        "sha256 of a chat body": lambda: hashlib.sha256(BODY).hexdigest(),
    }


def pause(seconds: float, spin: bool) -> None:
    if not seconds:
        return
    if not spin:
        time.sleep(seconds)
        return
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def measure(step: Callable[[], object], gap: float, calls: int, spin: bool) -> float:
    """Median µs of ``step`` over ``calls`` calls, each after ``gap`` seconds."""
    took = []
    for _ in range(calls):
        pause(gap, spin)
        start = time.perf_counter_ns()
        step()
        took.append(time.perf_counter_ns() - start)
    return statistics.median(took) / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--gaps", default="0,0.001,0.005,0.02", help="pauses, seconds")
    parser.add_argument("--calls", type=int, default=150, help="calls per step and gap")
    parser.add_argument("--cpu", type=int, default=1, help="pin to this CPU (-1: no pinning)")
    parser.add_argument("--spin", action="store_true", help="spin instead of sleeping")
    args = parser.parse_args(argv)
    gaps = [float(gap) for gap in args.gaps.split(",")]
    if args.calls < 1 or args.calls > 10_000 or any(not 0 <= gap <= 0.1 for gap in gaps):
        parser.error("--calls must be 1..10000 and every gap 0..0.1 s")
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    table = steps()
    print(f"| step | {' | '.join(f'after {gap * 1000:g} ms' for gap in gaps)} |")
    print(f"|---|{'---:|' * len(gaps)}")
    for name, step in table.items():
        cells = [f"{measure(step, gap, args.calls, args.spin):.1f} µs" for gap in gaps]
        print(f"| {name} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
