"""The journal's three targets, measured in one invocation.

    python -m bench.journal_targets [--quick] --out bench/results/NAME

1. saturation, non-streaming, journal on vs off within 10 % (``bench.journal_overhead
   --only saturation``, 5 pairs);
2. p99 at 500 req/s while a 100,000-event spool replays, at most 2 ms over no replay
   (``bench.journal_replay``, 5 pairs);
3. the write-ahead log's backlog during 60 s of streaming saturation under one second
   of events (``bench.journal_backlog``).

Each part writes ``NAME-saturation``, ``NAME-replay`` and ``NAME-backlog`` (``.json``,
``.md``); this one writes ``NAME.md``: the three verdicts and the parts' tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench import journal_backlog, journal_overhead, journal_replay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="the parts' quick modes")
    parser.add_argument("--out", type=Path, required=True, help="NAME for the results")
    args = parser.parse_args(argv)
    quick = ["--quick"] if args.quick else []
    out: Path = args.out
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    parts = {
        "saturation": (journal_overhead, ["--only", "saturation", "--reps", "5"]),
        "replay": (journal_replay, ["--reps", "5"]),
        "backlog": (journal_backlog, []),
    }
    for name, (module, options) in parts.items():
        print(f"[journal targets {time.strftime('%H:%M:%S')}] {name}", file=sys.stderr)
        module.main([*options, *quick, "--out", f"{out}-{name}"])
    saturation = json.loads(Path(f"{out}-saturation.json").read_text())["saturation"]
    replay = json.loads(Path(f"{out}-replay.json").read_text())["results"]
    backlog = json.loads(Path(f"{out}-backlog.json").read_text())["results"]
    ratio = saturation["ratio"]
    extra = replay["during_p99"]["difference"]
    behind = backlog["backlog_s"]["max"]
    verdicts = [
        ("saturation on / off (median of pairs)", f"x{ratio:.3f}", ratio >= 0.9, "≥ x0.90"),
        ("p99 while replaying - none (median of pairs)", f"{extra:+.2f} ms", extra <= 2, "≤ +2 ms"),
        ("WAL backlog, streaming saturation, max", f"{behind:.2f} s", behind < 1, "< 1 s"),
    ]
    lines = [
        f"# Journal targets — {started}",
        "",
        f"`python -m bench.journal_targets {' '.join(argv or sys.argv[1:])}`",
        "",
        "| target | measured | goal | met |",
        "|---|---:|---:|---|",
        *(
            f"| {what} | {value} | {goal} | {'yes' if ok else 'no'} |"
            for what, value, ok, goal in verdicts
        ),
        "",
    ]
    for name in parts:
        lines += [Path(f"{out}-{name}.md").read_text(), ""]
    text = "\n".join(lines)
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
