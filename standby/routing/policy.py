"""Route resolution, candidate order and aiming: pure functions of the plan.

Routes are matched in the order the plan writes them; the first match wins.  Exact names
and ``fnmatch`` globs mix freely; ``{model}`` in a target passes the asked name through,
and ``{equivalent}`` looks the asked model up in the plan's ``models`` table (a target
with no equivalent for the asked model is left out).  Within a tier, targets are shuffled
by weight; tiers keep their order.

Each target carries what it can serve (``Caps``) and how a body is aimed at it
(``BodyEdits``: the target's ``params`` and ``clamp``), both compiled once from the plan.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from standby.plan.model import Capabilities, ProviderConfig, RouteConfig, TargetRef
from standby.routing.capabilities import EVERYTHING, Caps, Depth, depth_for

log = logging.getLogger("standby.routing")

_CACHE_LIMIT = 4096
_DEFAULT_CAPS = Capabilities()


@dataclass(frozen=True, slots=True)
class BodyEdits:
    """How a body is changed for one target, besides its model."""

    params: Mapping[str, Any]  # set these keys (``None``: remove the key)
    clamps: tuple[tuple[str, float | None, float | None], ...]  # (key, min, max)


@dataclass(frozen=True, slots=True)
class Target:
    provider: str
    model: str
    weight: float = 1.0
    tier: int = 0
    edits: BodyEdits | None = field(default=None, compare=False)
    caps: Caps = field(default=EVERYTHING, compare=False)

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class ResolvedRoute:
    name: str  # the route's name as written in the plan (a metrics label)
    tiers: tuple[tuple[Target, ...], ...]  # empty: no target has an equivalent of the model
    depth: Depth = Depth.NONE  # how much of a request to read to screen these targets


@dataclass(frozen=True, slots=True)
class _Ref:
    """A target as written, compiled once: its model may still hold a placeholder."""

    provider: str
    model: str
    weight: float
    edits: BodyEdits | None
    caps: Caps


class RouteTable:
    """Compiled routes with a bounded cache of resolutions by asked model name."""

    def __init__(
        self,
        routes: Mapping[str, RouteConfig],
        providers: Mapping[str, ProviderConfig] | None = None,
        models: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        providers = providers or {}
        self._models = models or {}
        self._routes: list[tuple[str, re.Pattern[str] | None, list[list[_Ref]]]] = []
        for name, route in routes.items():
            glob = any(ch in name for ch in "*?[")
            pattern = re.compile(fnmatch.translate(name)) if glob else None
            tiers = [[_compile(ref, providers) for ref in tier] for tier in route.tier_list()]
            self._routes.append((name, pattern, tiers))
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
        for name, pattern, refs in self._routes:
            if pattern.match(model) if pattern else name == model:
                tiers = []
                for index, tier in enumerate(refs):
                    found = [t for ref in tier if (t := self._target(ref, model, name, index))]
                    if found:
                        tiers.append(tuple(found))
                depth = depth_for(t.caps for tier in tiers for t in tier)
                return ResolvedRoute(name=name, tiers=tuple(tiers), depth=depth)
        return None

    def _target(self, ref: _Ref, asked: str, route: str, tier: int) -> Target | None:
        model = ref.model.replace("{model}", asked)
        if "{equivalent}" in model:
            # the asked model's own row first; a glob route may also have a row of its name
            equivalent = self._models.get(asked, {}).get(ref.provider) or self._models.get(
                route, {}
            ).get(ref.provider)
            if equivalent is None:
                log.debug(
                    "route %s: no equivalent of %r at %s; target left out",
                    route,
                    asked,
                    ref.provider,
                )
                return None
            model = model.replace("{equivalent}", equivalent)
        return Target(
            provider=ref.provider,
            model=model,
            weight=ref.weight,
            tier=tier,
            edits=ref.edits,
            caps=ref.caps,
        )


# provider kinds whose wire has no embeddings endpoint: an embeddings request skips them
# (a 400 when nothing else is left) instead of failing at them and counting against them
_NO_EMBEDDINGS = frozenset({"anthropic", "gemini"})


def _compile(ref: TargetRef, providers: Mapping[str, ProviderConfig]) -> _Ref:
    provider, _, model = ref.target.partition("/")
    config = providers.get(provider)
    declared = ref.capabilities.apply(config.capabilities if config else _DEFAULT_CAPS)
    embeddings = config is None or config.kind not in _NO_EMBEDDINGS
    caps = (
        EVERYTHING
        if declared == _DEFAULT_CAPS and embeddings
        else Caps(
            tools=declared.tools,
            images=declared.images,
            json_schema=declared.json_schema,
            max_context=declared.max_context,
            embeddings=embeddings,
        )
    )
    edits = None
    if ref.params or ref.clamp:
        edits = BodyEdits(
            params=dict(ref.params),
            clamps=tuple((key, low, high) for key, (low, high) in ref.clamp.items()),
        )
    return _Ref(provider=provider, model=model, weight=ref.weight, edits=edits, caps=caps)


def candidate_order(route: ResolvedRoute, rng: random.Random) -> list[Target]:
    """Tiers in order; inside a tier a weighted random order (Efraimidis-Spirakis keys)."""
    ordered: list[Target] = []
    for tier in route.tiers:
        if len(tier) == 1:
            ordered.append(tier[0])
        else:
            ordered.extend(sorted(tier, key=lambda t: -(rng.random() ** (1.0 / t.weight))))
    return ordered


def aim(body: dict[str, Any], target: Target) -> dict[str, Any]:
    """The body as ``target`` receives it: its model, then its params, then its clamps.

    A shallow copy, made only when something changes: with no params or clamps and the
    model already right, ``body`` itself is returned.
    """
    edits = target.edits
    if edits is None:
        if body.get("model") == target.model:
            return body
        return {**body, "model": target.model}
    aimed = {**body, "model": target.model}
    for key, value in edits.params.items():
        if value is None:
            aimed.pop(key, None)
        else:
            aimed[key] = value
    for key, low, high in edits.clamps:
        value = aimed.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            aimed[key] = _clamp(value, low, high)
    return aimed


def _clamp(value: float, low: float | None, high: float | None) -> float:
    """``value`` within ``[low, high]``; an integer stays an integer (``max_tokens``)."""
    if low is not None and value < low:
        return math.ceil(low) if isinstance(value, int) else low
    if high is not None and value > high:
        return math.floor(high) if isinstance(value, int) else high
    return value
