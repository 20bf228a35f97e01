"""Machine facts and noise: CPU model, load average, CPU used by foreign processes.

The machine is shared (other engineers run test suites on it), so a run records the load
average at start and end, and every process that is not ours and used ≥ 1 s of CPU
during the run (sampled every 2 s, so processes that exit meanwhile are counted too).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    """The first ``model name`` in ``/proc/cpuinfo``."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def _version(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
        text = (done.stdout or done.stderr).strip().splitlines()
        return text[0] if text else None
    return None


def git_revision(root: Path) -> str | None:
    """``HEAD``'s short hash, with ``+dirty`` when the tree has changes."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    return None


def source_digest(package: Path) -> str:
    """A short hash of every file under ``package`` (``__pycache__`` skipped).

    Taken when each gateway starts and at the end: the working tree is shared and edited
    while benchmarks run, so a run records whether all its phases ran the same code.
    """
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(package)).encode() + b"\0")
            with contextlib.suppress(OSError):
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def facts(root: Path) -> dict[str, Any]:
    """What this run ran on."""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "loadavg_start": loadavg(),
        "wrk": _version(["wrk", "-v"]),
        "node": _version(["node", "--version"]),
        "git": git_revision(root),
    }


def cpu_snapshot() -> dict[int, tuple[str, float, int]]:
    """PID → (command name, CPU seconds, process group) for every visible process."""
    snap: dict[int, tuple[str, float, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            snap[int(entry)] = (name, (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[2]))
    return snap


class CpuWatch:
    """CPU seconds of every process, sampled now and then, so exited ones still count."""

    def __init__(self) -> None:
        self.first = cpu_snapshot()
        self.last = dict(self.first)

    def sample(self) -> None:
        """Take a snapshot (processes that exit later keep their last reading)."""
        self.last.update(cpu_snapshot())

    async def run(self, every: float = 2.0) -> None:
        """Sample every ``every`` seconds until cancelled."""
        while True:
            await asyncio.sleep(every)
            self.sample()

    def foreign(self, ours: set[int], min_seconds: float = 1.0) -> list[dict[str, Any]]:
        """Processes outside the process groups in ``ours`` that used ≥ ``min_seconds``."""
        self.sample()
        found: list[dict[str, Any]] = []
        for pid, (name, seconds, pgid) in self.last.items():
            if pgid in ours or pid in ours:
                continue
            used = seconds - (self.first[pid][1] if pid in self.first else 0.0)
            if used >= min_seconds:
                found.append({"pid": pid, "name": name, "cpu_s": round(used, 1)})
        found.sort(key=lambda p: -p["cpu_s"])
        return found[:10]
