"""Route resolution and candidate order: pure functions of the plan and a random source.

Routes are matched in the order the plan writes them; the first match wins.  Exact names
and ``fnmatch`` globs mix freely; ``{model}`` in a target passes the asked name through.
Within a tier, targets are shuffled by weight; tiers keep their order.
"""

from __future__ import annotations

import fnmatch
import random
import re
from dataclasses import dataclass

from standby.plan.model import Route, TargetRef

_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Target:
    provider: str
    model: str
    weight: float = 1.0
    tier: int = 0

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class ResolvedRoute:
    name: str  # the route's name as written in the plan (a metrics label)
    tiers: tuple[tuple[Target, ...], ...]


class RouteTable:
    """Compiled routes with a bounded cache of resolutions by asked model name."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self._routes: list[tuple[str, re.Pattern[str] | None, Route]] = []
        for name, route in routes.items():
            glob = any(ch in name for ch in "*?[")
            pattern = re.compile(fnmatch.translate(name)) if glob else None
            self._routes.append((name, pattern, route))
        self._cache: dict[str, ResolvedRoute | None] = {}

    def names(self) -> list[str]:
        return [name for name, _, _ in self._routes]

    def resolve(self, model: str) -> ResolvedRoute | None:
        try:
            return self._cache[model]
        except KeyError:
            pass
        resolved = self._match(model)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[model] = resolved
        return resolved

    def _match(self, model: str) -> ResolvedRoute | None:
        for name, pattern, route in self._routes:
            if (pattern.match(model) if pattern else name == model):
                tiers = tuple(
                    tuple(_target(ref, model, index) for ref in tier)
                    for index, tier in enumerate(route.tier_list())
                )
                return ResolvedRoute(name=name, tiers=tiers)
        return None


def _target(ref: TargetRef, asked: str, tier: int) -> Target:
    provider, _, model = ref.target.partition("/")
    return Target(provider=provider, model=model.replace("{model}", asked), weight=ref.weight,
                  tier=tier)


def candidate_order(route: ResolvedRoute, rng: random.Random) -> list[Target]:
    """Tiers in order; inside a tier a weighted random order (Efraimidis-Spirakis keys)."""
    ordered: list[Target] = []
    for tier in route.tiers:
        if len(tier) == 1:
            ordered.append(tier[0])
        else:
            ordered.extend(sorted(tier, key=lambda t: -(rng.random() ** (1.0 / t.weight))))
    return ordered
