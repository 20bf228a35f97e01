"""The status page benchmark's settings, constants and small helpers, shared by its parts."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import statuspage_rig as rig

PHASES = ("render", "flood", "background")
ROOT = Path(__file__).resolve().parent.parent
PY_SPY = (Path("/tmp/harness-venv/bin/py-spy"), shutil.which("py-spy"))
RENDER_TARGET_MS = 100.0
STAMPEDE = 16  # visitors asking for the page at once when its cached view has expired
P99_TARGET_MS = 1.0
OUTAGE = {
    "component": rig.OUTAGE_COMPONENT,
    "title": "Chat answers fail for some customers",
    "severity": "major",
    "message": "Some chat answers fail or stop half-way; we are investigating.",
}


@dataclass(frozen=True)
class Settings:
    """How big each measurement is (``quick``: a smoke run of ~1 minute)."""

    total_requests: int = 10_000_000  # what the 90 days of figures count
    request_rows: int = 1_000_000  # rows actually inserted into ``requests``
    builds: int = 50
    api_rate: float = 200.0  # chat completions/s, open loop
    duration: float = 10.0  # seconds of each side of a pair
    reps: int = 3
    flood_rate: float = 2000.0  # visitors' requests/s, both pages together
    flood_connections: int = 64
    sweep: tuple[float, ...] = (10.0,)  # smaller floods, one pair each
    sweep_duration: float = 6.0
    background_reps: int = 2
    background_duration: float = 6.0
    revalidate: float = 0.5
    cost_seconds: float = 3.0
    profile_seconds: float = 8.0
    upstream: str = "sim"

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            request_rows=200_000,
            builds=20,
            duration=4.0,
            reps=1,
            sweep=(),
            background_reps=1,
            background_duration=4.0,
            cost_seconds=2.0,
            profile_seconds=3.0,
        )


def log(text: str) -> None:
    print(f"[statuspage] {text}", file=sys.stderr, flush=True)


def _ms(seconds: float) -> float:
    return seconds * 1000.0
