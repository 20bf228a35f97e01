"""Probes: a tiny synthetic request per target, so that Standby knows a target's health
without waiting for a customer to find out.

Each target of the plan (``provider/model``; a ``{model}`` target is no one target and is
not probed) is probed every ``probes.interval`` seconds (±20 % jitter), with the plan's
prompt and ``max_tokens`` (1 by default: the cheapest answer there is), unless live
traffic already answered ``probes.busy`` times during the last interval.  A probe:

* goes through the gateway's health gate like a live attempt, admitted as a probe
  (``admit_probe``): its outcome counts for the breaker — so a probe, not a customer's
  request, is what finds a recovered target and closes its breaker — and reaches the
  signals marked as a probe; its first byte also ends a silence (``SilenceWatch.heard``);
* fails when the answer does not match ``probes.expect``.

Three rhythms: the regular one; a failed probe is confirmed ``CONFIRM`` seconds later
(the detector wants two failures in a row); a target whose breaker is open is probed
every ``OPEN_EVERY`` seconds, each probe a trial out of turn (``Breaker.admit_probe``),
so a recovered target is back in use within a fraction of a second, not at the end of
its ejection.  ``Prober.due(now)`` (pure) says which targets to probe; ``run()`` is the loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from standby.canonical import Call, Deadlines
from standby.errors import DeadlineExceeded, ProviderError
from standby.health.gate import RegistryGate
from standby.plan.alerts import Probes
from standby.plan.model import Timeouts
from standby.providers.base import Provider
from standby.routing.outcomes import judge
from standby.watch.signals import Signals

log = logging.getLogger("standby.watch")

CONFIRM = 2.0  # seconds after a failed probe before the probe that confirms it
OPEN_EVERY = 0.25  # seconds between two probes of a target whose breaker is open…
# …during its outage's first 30 s; then every second, and after 5 minutes every 5 s, so
# that a long outage is not met with four requests a second
LONG_OUTAGE = ((30.0, 1.0), (300.0, 5.0))
PATIENCE = 0.5  # seconds after which a probe still waiting no longer holds the trial
TICK = 0.1  # seconds between two looks at what is due


@dataclass(slots=True)
class _Schedule:
    next_at: float
    failing: bool = False  # the last probe failed
    last_at: float = float("-inf")  # when the last probe started
    shunned_since: float | None = None  # since when the target is ejected or silent


class Prober:
    """Probes the ``targets`` (key → (provider name, model)) of a plan."""

    def __init__(
        self,
        config: Probes,
        targets: Mapping[str, tuple[str, str]],
        providers: Mapping[str, Provider],
        gate: RegistryGate,
        signals: Signals,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        timeouts: Mapping[str, Timeouts] | None = None,
    ) -> None:
        self.config = config
        self.targets = dict(targets)
        self.providers = providers
        self.gate = gate
        self.signals = signals
        self.clock = clock
        self.rng = rng or random.Random()
        self.timeouts = dict(timeouts or {})  # provider → its deadlines in the plan
        self._expect = re.compile(config.expect) if config.expect else None
        now = clock()
        # the first round is spread over half an interval, starting one interval after
        # start-up (a fresh gateway's first requests tell as much), so no burst either
        self._schedule = {
            key: _Schedule(now + config.interval * self.rng.uniform(1.0, 1.5))
            for key in self.targets
        }
        self._running: dict[str, int] = {}  # key → probes in flight
        self.sent = 0  # probes sent, for the status view and tests
        # whether this replica probes now (``cluster.lease``: one replica does)
        self.leading: Callable[[], bool] = lambda: True

    def _jittered(self) -> float:
        return self.config.interval * self.rng.uniform(0.8, 1.2)

    def due(self, now: float) -> list[str]:
        """The targets to probe now (pure but for advancing skipped schedules)."""
        found = []
        for key, schedule in self._schedule.items():
            health = self.gate.registry.get(key)
            shunned = health.breaker.state(now) != "closed" or self.gate.is_silent(key, now)
            if not shunned:
                schedule.shunned_since = None
            elif schedule.shunned_since is None:
                schedule.shunned_since = now
            # (a provider that answered 429 asked for less traffic: no fast probing of it)
            if shunned and health.last_outcome != "rate_limited":
                # ejected or silent: a probe every OPEN_EVERY seconds is what finds the
                # recovery (failed ones cost the provider nothing); one still waiting on a
                # slow provider makes way after PATIENCE
                since = now - schedule.last_at
                waiting = bool(self._running.get(key)) and since < PATIENCE
                if since >= self._every(now, schedule) and not waiting and not health.is_held(now):
                    found.append(key)
                continue
            if self._running.get(key):
                continue
            if now < schedule.next_at:
                continue
            live = self.signals.live_events(key, self.config.interval, now)
            if not schedule.failing and self.config.busy and live >= self.config.busy:
                schedule.next_at = now + self._jittered()  # live traffic says enough
                continue
            found.append(key)
        return found

    @staticmethod
    def _every(now: float, schedule: _Schedule) -> float:
        """Seconds between two probes of a shunned target, by how long it has been."""
        lasted = now - (schedule.shunned_since if schedule.shunned_since is not None else now)
        every = OPEN_EVERY
        for after, slower in LONG_OUTAGE:
            if lasted >= after:
                every = slower
        return every

    async def probe(self, key: str) -> bool:
        """Probe ``key`` once; whether it answered as expected."""
        provider_name, model = self.targets[key]
        provider = self.providers[provider_name]
        schedule = self._schedule[key]
        started = self.clock()
        schedule.last_at = started
        token = self.gate.admit_probe(key, started, PATIENCE)
        if token is None:  # the breaker refuses for now: look again soon
            schedule.next_at = started + TICK
            return False
        self._running[key] = self._running.get(key, 0) + 1
        self.sent += 1
        call = Call(
            endpoint="chat",
            body={
                "model": model,
                "messages": [{"role": "user", "content": self.config.prompt}],
                "max_tokens": self.config.max_tokens,
                "stream": False,
            },
        )
        # the provider's own deadlines, within the probe's: a probe stuck on a slow
        # provider would hold the breaker's one trial and hide a recovery behind it
        limit = self.config.timeout
        own = self.timeouts.get(provider_name)
        deadlines = Deadlines(
            connect=min(own.connect, limit) if own else limit,
            first_token=min(own.first_token, limit) if own else limit,
            idle=min(own.idle, limit) if own else limit,
        )
        ok = False
        try:
            try:
                async with asyncio.timeout(limit):
                    reply = await provider.send(call, deadlines)
                seconds = self.clock() - started
                self.gate.responded(key, token, started + seconds)
                text = _text(reply.data)
                if self._expect is not None and not self._expect.search(text):
                    raise _Unexpected(f"{key}: the probe's answer {text[:80]!r} did not match")
                self.gate.succeeded(key, token, self.clock(), seconds)  # the gate tells signals
                ok = True
            except TimeoutError:
                self._failed(
                    key,
                    token,
                    DeadlineExceeded(
                        f"{key}: the probe got no answer in {limit:g}s", phase="first_token"
                    ),
                    started,
                )
            except _Unexpected as exc:
                log.warning("%s", exc)
                self.gate.abandoned(key, token, self.clock())
                self.signals.attempt(
                    key,
                    "unexpected_answer",
                    False,
                    self.clock() - started,
                    self.clock(),
                    probe=True,
                )
            except ProviderError as error:
                self._failed(key, token, error, started)
        finally:
            left = self._running.get(key, 1) - 1
            if left:
                self._running[key] = left
            else:
                self._running.pop(key, None)
            schedule.failing = not ok
            schedule.next_at = self.clock() + (self._jittered() if ok else CONFIRM)
        return ok

    def _failed(self, key: str, token: object, error: ProviderError, started: float) -> None:
        verdict = judge(error, same_target_tries=0, max_same_target=0)
        now = self.clock()
        self.gate.failed(key, token, now, verdict, error, now - started)  # and signals

    async def run(self) -> None:
        """Probe what is due, every ``TICK`` seconds, until cancelled."""
        if not self.config.enabled or not self.targets:
            return
        tasks: set[asyncio.Task[bool]] = set()
        try:
            while True:
                for key in self.due(self.clock()) if self.leading() else ():
                    task = asyncio.create_task(self.probe(key), name=f"probe {key}")
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                await asyncio.sleep(TICK)
        finally:
            for task in tasks:
                task.cancel()


class _Unexpected(Exception):
    """The probe's answer did not match ``probes.expect`` (never leaves this module)."""


def _text(data: Mapping[str, object]) -> str:
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict):
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


def probe_targets(
    routes: Mapping[str, list[str]], providers: Mapping[str, object], probed: Callable[[str], bool]
) -> dict[str, tuple[str, str]]:
    """Target key → (provider, model) for every target of the routes whose provider
    exists and is probed (``probed(provider)``)."""
    found: dict[str, tuple[str, str]] = {}
    for keys in routes.values():
        for key in keys:
            provider, _, model = key.partition("/")
            if provider in providers and probed(provider):
                found[key] = (provider, model)
    return found
