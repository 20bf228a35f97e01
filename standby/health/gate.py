"""The attempt loop's view of target health: breakers, holds, metrics and key alerts.

Adapts ``HealthRegistry`` to ``routing.attempts.HealthGate`` and turns each verdict's
``Effect`` into the matching registry call, so routing never pokes at breaker state.
Two verdicts are more than an effect: a prefill refusal (``Verdict.no_prefill``) is
remembered on the target's record, and Standby's own limit (``Verdict.local``, a
``LocalLimit``) is recorded nowhere in the target's health: no breaker, no hold, no
outcome count, no last error, no first-byte sample; only its admission is released.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from standby.errors import ProviderError, UpstreamStatus
from standby.health.breaker import Admission
from standby.health.registry import HealthRegistry
from standby.health.silence import SilenceWatch
from standby.metrics import Metrics
from standby.routing.outcomes import Effect, Verdict

log = logging.getLogger("standby.health")


class Observer(Protocol):
    """Who hears of every attempt that reached a provider (``watch.signals.Signals``):
    its outcome and duration, and its time to first byte."""

    def attempt(
        self, key: str, outcome: str, ok: bool, seconds: float, now: float, *, probe: bool = False
    ) -> None: ...

    def first_byte(self, key: str, seconds: float, now: float) -> None: ...


@dataclass(slots=True)
class _Token:
    admission: Admission | None
    ticket: int
    started: float
    probe: bool = False


class RegistryGate:
    """``max_targets`` bounds what is remembered per target, as in ``HealthRegistry``."""

    def __init__(
        self,
        registry: HealthRegistry,
        metrics: Metrics,
        *,
        max_targets: int = 2048,
        observer: Observer | None = None,
        on_transition: Callable[[str, str, float | None], None] | None = None,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.observer = observer
        # told each breaker change (target, state, open until): the replicas' shared view
        self.on_transition = on_transition
        self._max_targets = max_targets
        self._states: dict[str, str] = {}
        self._untils: dict[str, float | None] = {}  # the end of each opening said
        self._watches: dict[str, SilenceWatch] = {}

    def _watch(self, key: str) -> SilenceWatch:
        watch = self._watches.get(key)
        if watch is None:
            if len(self._watches) >= self._max_targets:
                # forget the oldest watches with nothing in flight (a tenth at a time)
                idle = [k for k, w in self._watches.items() if not w.waiting]
                for old in idle[: max(1, self._max_targets // 10)]:
                    del self._watches[old]
            watch = self._watches[key] = SilenceWatch()
        return watch

    def admit(self, key: str, now: float) -> object | None:
        watch = self._watch(key)
        if watch.silent(now):
            return None
        admission = self.registry.get(key).admit(now)
        if admission is None:
            return None
        return _Token(admission, watch.started(now), now)

    def admit_probe(self, key: str, now: float, patience: float | None = None) -> object | None:
        """A probe's admission: a trial even while the breaker's ejection runs (see
        ``Breaker.admit_probe``), and never refused for looking silent (a probe is how
        silence is found out)."""
        admission = self.registry.get(key).admit_probe(now, patience)
        if admission is None:
            return None
        return _Token(admission, self._watch(key).started(now), now, probe=True)

    def responded(self, key: str, token: object, now: float) -> None:
        if isinstance(token, _Token):
            watch = self._watch(key)
            watch.answered(token.ticket, now)
            if token.probe:
                watch.heard()  # the target answers: live requests need not avoid it
            if self.observer is not None:
                self.observer.first_byte(key, now - token.started, now)

    def is_silent(self, key: str, now: float) -> bool:
        """Do live requests skip ``key`` because its first bytes are overdue?"""
        watch = self._watches.get(key)
        return watch is not None and watch.silent(now)

    def silence(self, now: float) -> dict[str, dict[str, Any]]:
        """Per target: attempts waiting for a first byte, and whether it looks silent."""
        return {
            key: {"waiting": w.waiting, "silent": w.silent(now)} for key, w in self._watches.items()
        }

    def trial_deadline(self, key: str, token: object) -> float | None:
        if isinstance(token, _Token) and token.admission is not None and token.admission.trial:
            return self._watch(key).threshold
        return None

    def refuses_prefill(self, key: str) -> bool:
        return self.registry.refuses_prefill(key)

    def abandoned(self, key: str, token: object, now: float) -> None:
        self._end(key, token)
        admission = _admission(token)
        if admission is not None:
            self.registry.get(key).breaker.release(admission)

    def succeeded(self, key: str, token: object, now: float, seconds: float) -> None:
        health = self.registry.get(key)
        self._end(key, token)
        health.succeeded(now, _admission(token))
        self.metrics.attempt_done(key, "ok", seconds)
        if self.observer is not None:
            self.observer.attempt(key, "ok", True, seconds, now, probe=_probe(token))
        self._publish(key, health.breaker.state(now))

    def failed(
        self,
        key: str,
        token: object,
        now: float,
        verdict: Verdict,
        error: ProviderError,
        seconds: float,
    ) -> None:
        if verdict.local:
            # Standby's own limit: the attempt never reached the provider; the metric
            # names it (outcome local_limit), the target's health knows nothing of it
            self.abandoned(key, token, now)
            self.metrics.attempt_done(key, verdict.label, seconds)
            return
        health = self.registry.get(key)
        self._end(key, token)
        admission = _admission(token)
        message = error.message
        if verdict.no_prefill:
            if not health.no_prefill:
                log.info("%s refuses an assistant prefill: continued with an instruction", key)
            health.refused_prefill(now, admission)
        elif verdict.effect is Effect.FAILURE:
            health.failed(verdict.label, now, admission, message)
        elif verdict.effect is Effect.TRIP:
            health.tripped(verdict.label, now, admission, message)
        elif verdict.effect is Effect.RATE_LIMITED:
            retry_after = error.retry_after if isinstance(error, UpstreamStatus) else None
            health.rate_limited(now, retry_after, admission, message)
        elif verdict.effect is Effect.AUTH:
            if health.auth_failed(now, admission, message):
                log.error(
                    "ALERT: provider key for %s was refused (%s); failing over. Check the "
                    "key or the account's quota.",
                    key,
                    message,
                )
        else:
            health.rejected(verdict.label, now, admission)
        self.metrics.attempt_done(key, verdict.label, seconds)
        if self.observer is not None and verdict.effect is not Effect.NEUTRAL:
            # a request the provider refused on its merits (a 400) says it is up: no signal
            self.observer.attempt(key, verdict.label, False, seconds, now, probe=_probe(token))
        self._publish(key, health.breaker.state(now))

    def _end(self, key: str, token: object) -> None:
        if isinstance(token, _Token):
            self._watch(key).ended(token.ticket)

    # -- the other replicas' word (``cluster.health``) ---------------------------------------
    def follow(self, key: str, now: float, until: float, period: float | None = None) -> bool:
        """Another replica opened ``key``'s breaker: follow it (``Breaker.follow``).
        Shown here (log, metrics) but not said again (``on_transition``)."""
        breaker = self.registry.get(key).breaker
        if not breaker.follow(now, until, period):
            return False
        self._publish(key, breaker.state(now), said=True)
        return True

    def lift(self, key: str, now: float) -> bool:
        """Another replica's trial of ``key`` succeeded: close (``Breaker.lift``)."""
        if not self.registry.get(key).breaker.lift(now):
            return False
        self._publish(key, "closed", said=True)
        return True

    def add_peer_failures(self, key: str, failures: int, *, reset: bool = False) -> None:
        """Failures of ``key`` another replica saw count toward opening it here."""
        self.registry.get(key).breaker.add_peer_failures(failures, reset=reset)

    def _publish(self, key: str, state: str, *, said: bool = False) -> None:
        """Show a breaker's state (log, metrics) and tell ``on_transition`` of an opening,
        an opening again (a failed trial: a new end) and a closing — unless another
        replica ``said`` it."""
        until = self.registry.get(key).breaker.open_until
        previous = self._states.get(key)
        if previous != state:
            if previous is not None or state != "closed":
                log.warning(
                    "breaker %s: %s → %s%s",
                    key,
                    previous or "closed",
                    state,
                    " (another replica's word)" if said else "",
                )
            if previous is None and len(self._states) >= self._max_targets:
                # a closed breaker is what an unknown one is presumed to be
                closed = [k for k, s in self._states.items() if s == "closed"]
                for old in closed[: max(1, self._max_targets // 10)]:
                    del self._states[old]
                    self._untils.pop(old, None)
            self._states[key] = state
            self.metrics.breaker_state(key, state)
            if previous is None and state == "closed":
                return  # as an unknown breaker was presumed to be: no news for anyone
        elif state != "open" or self._untils.get(key) == until:
            return
        self._untils[key] = until
        if self.on_transition is not None and not said:
            self.on_transition(key, state, until)


def _probe(token: object) -> bool:
    return isinstance(token, _Token) and token.probe


def _admission(token: object) -> Admission | None:
    return token.admission if isinstance(token, _Token) else None


class OpenGate:
    """A gate that admits every target and remembers nothing: no breakers, no holds.

    For embedding the router where health is tracked elsewhere, and for tests of the
    attempt loop alone.
    """

    def admit(self, key: str, now: float) -> object | None:
        return object()

    def responded(self, key: str, token: object, now: float) -> None:
        return None

    def succeeded(self, key: str, token: object, now: float, seconds: float) -> None:
        return None

    def failed(
        self,
        key: str,
        token: object,
        now: float,
        verdict: Verdict,
        error: ProviderError,
        seconds: float,
    ) -> None:
        return None

    def abandoned(self, key: str, token: object, now: float) -> None:
        return None

    def trial_deadline(self, key: str, token: object) -> float | None:
        return None

    def refuses_prefill(self, key: str) -> bool:
        return False  # the attempt schedule remembers a refusal for the rest of its request
