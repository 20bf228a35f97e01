"""The scripted outage of ``standby demo``: phases, client load, and what each phase saw.

``Scenario`` drives a real client (the official ``openai`` SDK) against a real gateway in
front of two simulated providers. Each ``Phase`` sets a fault on the primary, runs a
bounded client load for a few seconds, and fills a ``PhaseResult``: requests sent and
answered, who answered (from the ``x-standby-provider`` header and, per chunk, the sim's
``system_fingerprint``), how many requests the primary actually received, and the
primary's breaker states read from ``GET /standby/health``. Nothing here prints.
Every loop is bounded in count and time (``MAX_REQUESTS_PER_WORKER``, ``REQUEST_LIMIT``,
``RECOVERY_LIMIT``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from standby.sim import Fault, SimProvider

if TYPE_CHECKING:
    import openai

ROUTE = "gpt-4o-mini"
PRIMARY_TARGET = "primary/gpt-4o-mini"
WORKERS = 3  # concurrent clients
PAUSE = 0.15  # seconds a client waits between two requests
REQUEST_LIMIT = 15.0  # seconds one request may take, stream included
MAX_REQUESTS_PER_WORKER = 200  # per phase; a safety bound, never reached at PAUSE
RECOVERY_LIMIT = 10.0  # seconds a phase may wait for the primary's breaker to close
PAGE_LIMIT = 20.0  # seconds a phase may wait for the status page to say what it waits for
POLL_EVERY = 0.2  # seconds between two reads of /standby/health


@dataclass(frozen=True, slots=True)
class Phase:
    """One step of the scripted outage.

    ``fault`` is set on the primary at the start (``None``: the primary is cleared).
    With ``after_recovery`` the phase first clears the primary and waits (under load)
    until its breaker is closed again. With ``until_back`` the phase first runs until
    the primary's breaker is closed and the primary answers again, then ``seconds`` more.
    ``backup_fault`` breaks the backup too: nothing can answer (``total``), the phase
    runs until the customers' status page says ``until_page`` (its Statuspage
    indicator), then ``seconds`` more; its errors are expected and shown as such.
    """

    title: str
    story: str
    fault: Fault | None
    seconds: float
    after_recovery: bool = False
    until_back: bool = False
    backup_fault: Fault | None = None
    until_page: str = ""

    @property
    def total(self) -> bool:
        """Nothing can answer in this phase: customers see clean errors, and the page."""
        return self.backup_fault is not None


PHASES: tuple[Phase, ...] = (
    Phase("All healthy",
          "Both providers are up: every answer streams from the primary.",
          None, 3.0),
    Phase("Primary returns 503",
          "Every request to the primary fails with 503. Standby fails over to the backup; "
          "after 3 failures the primary's breaker opens and the primary is left alone.",
          Fault("error", status=503), 6.0),
    Phase("Primary cuts streams mid-answer",
          "The primary sends 4 words, then drops the connection. Standby asks the backup to "
          "continue the same answer and splices it in: the client sees one complete stream.",
          Fault("cut_stream", after=4), 4.0, after_recovery=True),
    Phase("Primary goes silent",
          "The primary accepts requests but never answers. At the 2 s first-token deadline "
          "Standby fails over, and the breaker keeps later requests away from the primary.",
          Fault("silent"), 5.0, after_recovery=True),
    Phase("Primary recovers",
          "The fault is cleared. When the ejection period ends, the breaker lets one trial "
          "request through; it succeeds and traffic returns to the primary.",
          None, 2.0, until_back=True),
    Phase("Both providers fail",
          "The backup fails too: nothing can answer. Each request gets a clean 503 at once "
          "(no hanging, no broken stream); Standby opens an incident for the route, and your "
          "customers' status page says so, in their words, within seconds.",
          Fault("error", status=503), 1.0, backup_fault=Fault("error", status=503),
          until_page="critical"),
    Phase("Both recover",
          "The faults are cleared; answers flow again, the route's incident resolves itself "
          "and the status page is back to operational, the incident in its history.",
          None, 1.0, until_page="none"),
)  # fmt: skip


def demo_plan(primary_url: str, backup_url: str, hook_url: str = "") -> dict[str, Any]:
    """The demo's downtime plan: ``gpt-4o-mini`` on the primary, then on the backup;
    with ``hook_url``, incidents are told to a webhook there (the demo's own receiver)."""
    notify: dict[str, Any] = {}
    if hook_url:
        notify = {
            "channels": {"demo-hook": {"kind": "webhook", "url": hook_url, "secret": "demo"}},
            "escalation": [
                {"after": "0s", "notify": ["demo-hook"]},
                {"after": "0s", "publish": "status-page"},  # customers read of it at once
            ],
        }
    return {
        "providers": {
            "primary": {"kind": "openai-compatible", "base_url": primary_url,
                        "api_key": "sk-demo-primary",
                        # the sim's own status page: read, and told on the incident's
                        # timeline, but not demoting (the demo is about failing over)
                        "status_page": {"url": primary_url.removesuffix("/v1")
                                        + "/status/api/v2/summary.json",
                                        "components": ["Chat Completions"],
                                        "interval": "10s", "demote": False}},
            "backup": {"kind": "openai-compatible", "base_url": backup_url,
                       "api_key": "sk-demo-backup"},
        },
        "timeouts": {"connect": "1s", "first_token": "2s", "idle": "2s", "total": "30s"},
        # Ejections grow 2 s → 3 s → 4 s while the faults follow each other closely;
        # the cap keeps the waits for recovery, and so the scripted part, short.
        "breaker": {"failures": 3, "ejection": "2s", "max_ejection": "4s"},
        "routes": {ROUTE: {"targets": [PRIMARY_TARGET, "backup/gpt-4o-mini"]}},
        # a short outage in a short demo: judge every 0.5 s, open after 2 s of failing
        "incidents": {"detect": {"evaluate_every": "500ms", "fast_window": "3s",
                                 "open_after": 4, "resolve_after": 4}},
        "notify": notify,
        "probes": {"interval": "2s"},  # after the traffic stops, probes tell it is over
    }  # fmt: skip


@dataclass(slots=True)
class Outcome:
    """One client request as the client saw it."""

    provider: str  # who answered, from the x-standby-provider header ("" if none)
    parts: list[tuple[str, str]]  # (provider from the chunks' fingerprint, text), merged
    complete: bool  # the whole expected answer arrived and the stream ended cleanly
    seconds: float
    error: str = ""
    ids: int = 1  # distinct chunk ids seen: one stream must keep one id across a failover

    @property
    def text(self) -> str:
        """The answer text, all parts joined."""
        return "".join(text for _, text in self.parts)

    @property
    def broken(self) -> bool:
        """Content arrived, but not the whole answer: the failure Standby must never show."""
        return bool(self.text) and not self.complete

    @property
    def answered_by(self) -> str:
        """``primary``, ``backup``, or ``primary→backup`` for an answer spliced mid-stream."""
        names = list(dict.fromkeys(who for who, _ in self.parts))
        return "→".join(names) if names else self.provider


@dataclass(slots=True)
class PhaseResult:
    """What one phase (or the wait for recovery before it) saw."""

    title: str
    story: str
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    sent: int = 0
    answered: int = 0
    failed: int = 0
    broken: int = 0
    by: Counter[str] = field(default_factory=Counter)
    primary_hits: int = 0
    states: list[str] = field(default_factory=list)  # breaker states of the primary, in order
    # what the customers' status page said, in order: (indicator, description)
    pages: list[tuple[str, str]] = field(default_factory=list)
    total: bool = False  # nothing could answer: errors are expected, broken streams not
    slowest: float = 0.0
    last: Outcome | None = None
    sample: Outcome | None = None  # the first answer continued mid-stream
    logs: list[str] = field(default_factory=list)  # what the gateway logged, condensed
    error: str = ""  # the first failure the client saw, if any

    @property
    def state(self) -> str:
        """The primary's breaker state last seen."""
        return self.states[-1] if self.states else "?"

    @property
    def page(self) -> str:
        """The status page's indicator last seen."""
        return self.pages[-1][0] if self.pages else "?"

    def note_page(self, page: tuple[str, str]) -> None:
        if not self.pages or self.pages[-1] != page:
            self.pages.append(page)

    def note_state(self, state: str) -> None:
        """Record a breaker state if it changed."""
        if not self.states or self.states[-1] != state:
            self.states.append(state)

    def record(self, outcome: Outcome) -> None:
        """Count one finished request."""
        self.last = outcome
        self.slowest = max(self.slowest, outcome.seconds)
        if outcome.complete:
            self.answered += 1
            self.by[outcome.answered_by] += 1
        else:
            self.failed += 1
            self.error = self.error or outcome.error
        self.broken += outcome.broken
        if "→" in outcome.answered_by and outcome.complete:
            self.sample = self.sample or outcome


class LogTap(logging.Handler):
    """Keeps the gateway's log lines for the phase panels instead of printing them."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: deque[str] = deque(maxlen=200)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.count += 1

    def since(self, count: int) -> list[str]:
        """The lines logged after the first ``count``, most frequent first (at most 3)."""
        new = list(self.lines)[-(self.count - count) :] if self.count > count else []
        return [f"{n}x {line}" if n > 1 else line for line, n in Counter(new).most_common(3)]


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived during the script."""


class Scenario:
    """Runs phases against the gateway at ``root_url``, breaking ``primary``."""

    def __init__(
        self,
        root_url: str,
        primary: SimProvider,
        client: openai.AsyncOpenAI,
        session: aiohttp.ClientSession,
        stop: asyncio.Event,
        tap: LogTap,
        backup: SimProvider | None = None,
    ) -> None:
        self.root_url, self.primary, self.client = root_url, primary, client
        self.backup = backup
        self.session, self.stop, self.tap = session, stop, tap
        self.expected = primary.expected_text()

    async def breaker_state(self) -> str:
        """The primary's breaker state from ``GET /standby/health`` (``?`` if unreadable)."""
        try:
            timeout = aiohttp.ClientTimeout(total=2)
            async with self.session.get(f"{self.root_url}/standby/health", timeout=timeout) as r:
                health: dict[str, Any] = await r.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return "?"
        target = health.get("targets", {}).get(PRIMARY_TARGET)
        return str(target["state"]) if isinstance(target, dict) else "closed"

    async def page_state(self) -> tuple[str, str]:
        """The customers' status page: (indicator, description), from its Statuspage API."""
        try:
            timeout = aiohttp.ClientTimeout(total=2)
            url = f"{self.root_url}/status/api/v2/status.json"
            async with self.session.get(url, timeout=timeout) as r:
                status = (await r.json())["status"]
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
            return "?", "?"
        return str(status["indicator"]), str(status["description"])

    async def request(self) -> Outcome:
        """One streamed chat completion through the official SDK, timed and checked."""
        import openai  # the demo's client; run_demo checks that it is installed

        started, provider = time.monotonic(), ""
        parts: list[tuple[str, str]] = []
        ids: set[str] = set()
        try:
            async with asyncio.timeout(REQUEST_LIMIT):
                raw = await self.client.chat.completions.with_raw_response.create(
                    model=ROUTE,
                    stream=True,
                    messages=[{"role": "user", "content": "Say something reassuring."}],
                )
                provider = raw.headers.get("x-standby-provider", "")
                async for chunk in raw.parse():
                    ids.add(chunk.id)
                    text = chunk.choices[0].delta.content if chunk.choices else None
                    if not text:
                        continue
                    who = (chunk.system_fingerprint or "").removeprefix("fp_sim_") or provider
                    if parts and parts[-1][0] == who:
                        parts[-1] = (who, parts[-1][1] + text)
                    else:
                        parts.append((who, text))
        except (openai.OpenAIError, TimeoutError) as error:
            message = str(error) or type(error).__name__
            return Outcome(provider, parts, False, time.monotonic() - started, message, len(ids))
        complete = "".join(text for _, text in parts) == self.expected and len(ids) == 1
        problem = "" if complete else "not the complete expected answer in one stream"
        return Outcome(provider, parts, complete, time.monotonic() - started, problem, len(ids))

    async def _client(self, result: PhaseResult, until: asyncio.Event) -> None:
        for _ in range(MAX_REQUESTS_PER_WORKER):
            if until.is_set() or self.stop.is_set():
                return
            result.sent += 1
            result.record(await self.request())
            await asyncio.sleep(PAUSE)

    async def _watch(self, result: PhaseResult, until: asyncio.Event, hits: int) -> None:
        limit = time.monotonic() + RECOVERY_LIMIT + 60.0
        while not until.is_set() and time.monotonic() < limit:
            result.note_state(await self.breaker_state())
            result.note_page(await self.page_state())
            result.primary_hits = len(self.primary.requests) - hits
            await asyncio.sleep(POLL_EVERY)

    async def _run(self, result: PhaseResult, seconds: float, back: bool, page: str = "") -> None:
        """Load the gateway for ``seconds`` (with ``back``: once the primary is back; with
        ``page``: once the status page's indicator is that)."""
        until, hits, logged = asyncio.Event(), len(self.primary.requests), self.tap.count
        back_at: float | None = None
        waits = back or bool(page)
        result.started = time.monotonic()
        result.note_state(await self.breaker_state())
        result.note_page(await self.page_state())
        tasks = [asyncio.create_task(self._client(result, until)) for _ in range(WORKERS)]
        tasks.append(asyncio.create_task(self._watch(result, until, hits)))
        deadline = result.started + seconds + (PAGE_LIMIT if page else 0.0)
        deadline += RECOVERY_LIMIT if back else 0.0
        try:
            while (now := time.monotonic()) < deadline and not self.stop.is_set():
                if back and back_at is None and result.state == "closed" and result.by["primary"]:
                    back_at = now  # the breaker closed and the primary answers again
                if page and back_at is None and result.page == page:
                    back_at = now  # the customers' page says what the phase waits for
                since = back_at if waits else result.started
                if since is not None and now - since >= seconds:
                    break
                result.seconds = now - result.started
                await asyncio.sleep(0.05)
        finally:
            until.set()
            ends = await asyncio.gather(*tasks, return_exceptions=True)
        for error in ends:
            if isinstance(error, Exception):
                raise error
        result.note_state(await self.breaker_state())
        result.note_page(await self.page_state())
        result.primary_hits = len(self.primary.requests) - hits
        result.logs = self.tap.since(logged)
        result.seconds = time.monotonic() - result.started
        if self.stop.is_set():
            raise Interrupted

    async def recover(self, result: PhaseResult) -> None:
        """Clear the primary and keep the load on until its breaker is closed again."""
        self.primary.clear()
        await self._run(result, 0.0, back=True)

    async def run(self, phase: Phase, result: PhaseResult) -> None:
        """Set the phase's fault and load the gateway for the phase's duration."""
        if phase.fault is None:
            self.primary.clear()
        else:
            self.primary.set_fault(phase.fault)
        if self.backup is not None:
            if phase.backup_fault is None:
                self.backup.clear()
            else:
                self.backup.set_fault(phase.backup_fault)
        result.total = phase.total
        await self._run(result, phase.seconds, phase.until_back, phase.until_page)
