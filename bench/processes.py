"""Start and stop the benchmark's own processes, pinned to CPUs, each in its own session.

Every process is started with ``start_new_session=True`` so it leads its own process
group; ``stop`` signals that group (TERM, then KILL) by the PID we recorded, never by
name.  ``ProcessSet`` is a context manager that stops everything it started on exit,
including on errors and Ctrl-C.  ``/proc`` helpers read RSS and CPU time of a PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    """One started process: its name, PID (= process group id) and log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    argv: list[str]

    @property
    def pid(self) -> int:
        """The leader's PID, which is also its process group id."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the process's log (stdout and stderr)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def raise_nofile() -> None:
    """Raise the soft open-files limit to the hard one (1,000 streams need ~3,000 fds)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ProcessSet:
    """The processes this benchmark started; stops them all on ``close`` / exit."""

    workdir: Path
    procs: list[Proc] = field(default_factory=list)
    started: set[int] = field(default_factory=set)  # every process group ever started

    def start(
        self, name: str, argv: list[str], cpus: str | None = None, cwd: Path | None = None
    ) -> Proc:
        """Start ``argv`` in a new session, pinned with ``taskset -c cpus`` when given.

        The working directory defaults to the scratch ``workdir``, so whatever the process
        writes (a gateway's journal, say) stays out of the repository.
        """
        if cpus is not None:
            taskset = shutil.which("taskset")
            if taskset is None:
                raise RuntimeError("taskset (util-linux) is needed to pin processes")
            argv = [taskset, "-c", cpus, *argv]
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd or self.workdir,
                start_new_session=True,
                preexec_fn=raise_nofile,
            )
        proc = Proc(name, popen, log, argv)
        self.procs.append(proc)
        self.started.add(popen.pid)
        return proc

    def stop(self, proc: Proc, grace: float = 3.0) -> None:
        """Stop ``proc``'s process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
        if proc in self.procs:
            self.procs.remove(proc)
        if proc.popen.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=grace)
        _signal_group(proc.pid, signal.SIGKILL)  # stragglers left in the group, if any

    def close(self) -> None:
        """Stop every process still running, newest first."""
        for proc in reversed(list(self.procs)):
            self.stop(proc)

    def __enter__(self) -> ProcessSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def wait_until(
    check: Callable[[], bool], within: float, what: str, proc: Proc | None = None
) -> None:
    """Poll ``check()`` every 0.1 s until it is true; raise after ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.log_tail()}")
        with contextlib.suppress(OSError):
            if check():
                return
        await asyncio.sleep(0.1)
    tail = f"\n{proc.log_tail()}" if proc is not None else ""
    raise RuntimeError(f"timed out after {within:.0f} s waiting for {what}{tail}")


def rss_kib(pid: int) -> int:
    """``VmRSS`` of ``pid`` in KiB, from ``/proc/<pid>/status``."""
    return _status_kib(pid, "VmRSS")


def hwm_kib(pid: int) -> int:
    """``VmHWM`` (peak RSS) of ``pid`` in KiB."""
    return _status_kib(pid, "VmHWM")


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_count(pid: int) -> int:
    """How many threads ``pid`` has."""
    return len(os.listdir(f"/proc/{pid}/task"))


def children(pid: int) -> list[int]:
    """Direct child PIDs of ``pid`` (a gateway that forks workers would show here)."""
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            found.extend(int(x) for x in text)
    return found
