"""The attempt loop's view of target health: breakers, holds, metrics and key alerts.

Adapts ``HealthRegistry`` to ``routing.attempts.HealthGate`` and turns each verdict's
``Effect`` into the matching registry call, so routing never pokes at breaker state.
"""

from __future__ import annotations

import logging

from standby.errors import ProviderError, UpstreamStatus
from standby.health.breaker import Admission
from standby.health.registry import HealthRegistry
from standby.metrics import Metrics
from standby.routing.outcomes import Effect, Verdict

log = logging.getLogger("standby.health")


class RegistryGate:
    def __init__(self, registry: HealthRegistry, metrics: Metrics) -> None:
        self.registry = registry
        self.metrics = metrics
        self._states: dict[str, str] = {}

    def admit(self, key: str, now: float) -> object | None:
        return self.registry.get(key).admit(now)

    def succeeded(self, key: str, token: object, now: float, seconds: float) -> None:
        health = self.registry.get(key)
        health.succeeded(now, _admission(token))
        self.metrics.attempt_done(key, "ok", seconds)
        self._publish(key, health.breaker.state(now))

    def failed(self, key: str, token: object, now: float, verdict: Verdict, error: ProviderError,
               seconds: float) -> None:
        health = self.registry.get(key)
        admission = _admission(token)
        message = error.message
        if verdict.effect is Effect.FAILURE:
            health.failed(verdict.label, now, admission, message)
        elif verdict.effect is Effect.TRIP:
            health.tripped(verdict.label, now, admission, message)
        elif verdict.effect is Effect.RATE_LIMITED:
            retry_after = error.retry_after if isinstance(error, UpstreamStatus) else None
            health.rate_limited(now, retry_after, admission, message)
        elif verdict.effect is Effect.AUTH:
            if health.auth_failed(now, admission, message):
                log.error("ALERT: provider key for %s was refused (%s); failing over. Check the "
                          "key or the account's quota.", key, message)
        else:
            health.rejected(verdict.label, now, admission)
        self.metrics.attempt_done(key, verdict.label, seconds)
        self._publish(key, health.breaker.state(now))

    def _publish(self, key: str, state: str) -> None:
        if self._states.get(key) != state:
            if key in self._states or state != "closed":
                log.warning("breaker %s: %s → %s", key, self._states.get(key, "closed"), state)
            self._states[key] = state
            self.metrics.breaker_state(key, state)


def _admission(token: object) -> Admission | None:
    return token if isinstance(token, Admission) else None
