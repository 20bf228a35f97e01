from __future__ import annotations

import random
from collections import Counter

from standby.plan.model import Route
from standby.routing.policy import RouteTable, candidate_order


def table(**routes: dict[str, object]) -> RouteTable:
    return RouteTable({name: Route.model_validate(r) for name, r in routes.items()})


def test_first_written_match_wins_and_model_passes_through() -> None:
    t = RouteTable({
        "team-*": Route.model_validate({"targets": ["a/{model}", "b/fallback"]}),
        "team-x": Route.model_validate({"targets": ["c/x"]}),
    })
    route = t.resolve("team-x")
    assert route is not None and route.name == "team-*"
    assert [tgt.key for tier in route.tiers for tgt in tier] == ["a/team-x", "b/fallback"]
    assert t.resolve("other") is None


def test_tiers_keep_order_and_weights_share_load() -> None:
    t = RouteTable({"m": Route.model_validate(
        {"tiers": [[{"target": "a/m", "weight": 3}, {"target": "b/m", "weight": 1}], ["c/m"]]})})
    route = t.resolve("m")
    assert route is not None
    rng = random.Random(1)
    firsts = Counter(candidate_order(route, rng)[0].provider for _ in range(4000))
    assert set(firsts) == {"a", "b"}
    assert 2.4 < firsts["a"] / firsts["b"] < 3.8
    assert all(candidate_order(route, rng)[-1].provider == "c" for _ in range(50))
