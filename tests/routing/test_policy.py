from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from standby.plan.model import Plan, RouteConfig
from standby.routing.capabilities import EVERYTHING, Caps, Depth
from standby.routing.policy import RouteTable, Target, aim, candidate_order


def table(**routes: dict[str, object]) -> RouteTable:
    return RouteTable({name: RouteConfig.model_validate(r) for name, r in routes.items()})


def test_first_written_match_wins_and_model_passes_through() -> None:
    t = RouteTable(
        {
            "team-*": RouteConfig.model_validate({"targets": ["a/{model}", "b/fallback"]}),
            "team-x": RouteConfig.model_validate({"targets": ["c/x"]}),
        }
    )
    route = t.resolve("team-x")
    assert route is not None and route.name == "team-*"
    assert [tgt.key for tier in route.tiers for tgt in tier] == ["a/team-x", "b/fallback"]
    assert t.resolve("other") is None


def test_tiers_keep_order_and_weights_share_load() -> None:
    t = RouteTable(
        {
            "m": RouteConfig.model_validate(
                {
                    "tiers": [
                        [{"target": "a/m", "weight": 3}, {"target": "b/m", "weight": 1}],
                        ["c/m"],
                    ]
                }
            )
        }
    )
    route = t.resolve("m")
    assert route is not None
    rng = random.Random(1)
    firsts = Counter(candidate_order(route, rng)[0].provider for _ in range(4000))
    assert set(firsts) == {"a", "b"}
    assert 2.4 < firsts["a"] / firsts["b"] < 3.8
    assert all(candidate_order(route, rng)[-1].provider == "c" for _ in range(50))


def plan_table(plan: dict[str, Any]) -> RouteTable:
    p = Plan.model_validate(plan)
    return RouteTable(p.routes, p.providers, p.models)


PROVIDERS = {name: {"base_url": f"http://{name}.test/v1"} for name in ("oa", "an", "ge")}
MODELS = {
    "gpt-4o": {"an": "claude-sonnet-4-5", "ge": "gemini-2.5-pro"},
    "gpt-4o-mini": {"ge": "gemini-2.5-flash"},
    "team-*": {"an": "claude-haiku-4-5"},
}


# (case, asked model, target keys it resolves to)
EQUIVALENTS = [
    (
        "every vendor has an equivalent",
        "gpt-4o",
        ["oa/gpt-4o", "an/claude-sonnet-4-5", "ge/gemini-2.5-pro"],
    ),
    (
        "a missing equivalent drops the target",
        "gpt-4o-mini",
        ["oa/gpt-4o-mini", "ge/gemini-2.5-flash"],
    ),
    ("a glob route's own row is the fallback", "team-x", ["oa/team-x", "an/claude-haiku-4-5"]),
]


@pytest.mark.parametrize(
    ("asked", "keys"), [c[1:] for c in EQUIVALENTS], ids=[c[0] for c in EQUIVALENTS]
)
def test_equivalence_table(asked: str, keys: list[str]) -> None:
    t = plan_table(
        {
            "providers": PROVIDERS,
            "models": MODELS,
            "routes": {
                "gpt-4o*": {"targets": ["oa/{model}", "an/{equivalent}", "ge/{equivalent}"]},
                "team-*": {"targets": ["oa/{model}", "an/{equivalent}", "ge/{equivalent}"]},
            },
        }
    )
    route = t.resolve(asked)
    assert route is not None
    assert [tgt.key for tier in route.tiers for tgt in tier] == keys


def test_a_route_with_no_equivalent_left_resolves_empty() -> None:
    t = plan_table(
        {
            "providers": PROVIDERS,
            "models": MODELS,
            "routes": {"*": {"targets": ["an/{equivalent}"]}},
        }
    )
    route = t.resolve("o3")
    assert route is not None and route.tiers == ()


def test_capabilities_merge_provider_and_target() -> None:
    providers = {
        **PROVIDERS,
        "an": {
            "base_url": "http://an.test/v1",
            "capabilities": {"images": False, "max_context": "200k"},
        },
    }
    t = plan_table(
        {
            "providers": providers,
            "routes": {
                "m": {
                    "targets": [
                        "oa/m",
                        "an/small",
                        {"target": "an/big", "capabilities": {"images": True}},
                    ]
                }
            },
        }
    )
    route = t.resolve("m")
    assert route is not None
    caps = [tgt.caps for tier in route.tiers for tgt in tier]
    assert caps == [
        EVERYTHING,
        Caps(images=False, max_context=200_000),
        Caps(images=True, max_context=200_000),
    ]
    assert caps[0] is EVERYTHING  # the unrestricted fast path
    assert route.depth is Depth.MESSAGES
    plain = plan_table({"providers": PROVIDERS, "routes": {"m": {"targets": ["oa/m"]}}})
    resolved = plain.resolve("m")
    assert resolved is not None and resolved.depth is Depth.NONE


def aimed(body: dict[str, Any], **ref: Any) -> dict[str, Any]:
    t = plan_table(
        {"providers": PROVIDERS, "routes": {"m": {"targets": [{"target": "an/claude", **ref}]}}}
    )
    route = t.resolve("m")
    assert route is not None
    return aim(body, route.tiers[0][0])


# (case, caller's body, target's params and clamp, body the target receives)
AIMS = [
    (
        "params set and override",
        {"max_tokens": 9000, "top_p": 0.5},
        {"params": {"max_tokens": 1024, "seed": 7}},
        {"max_tokens": 1024, "top_p": 0.5, "seed": 7},
    ),
    (
        "null removes a key",
        {"logprobs": True, "top_p": 1},
        {"params": {"logprobs": None}},
        {"top_p": 1},
    ),
    ("clamp above", {"temperature": 1.7}, {"clamp": {"temperature": [0, 1]}}, {"temperature": 1.0}),
    ("clamp below", {"temperature": -1}, {"clamp": {"temperature": [0, 1]}}, {"temperature": 0}),
    (
        "within the clamp",
        {"temperature": 0.3},
        {"clamp": {"temperature": [0, 1]}},
        {"temperature": 0.3},
    ),
    (
        "an integer stays an integer",
        {"max_tokens": 100_000},
        {"clamp": {"max_tokens": [1, 8192]}},
        {"max_tokens": 8192},
    ),
    (
        "open bound",
        {"max_tokens": 100_000, "temperature": 5},
        {"clamp": {"max_tokens": [None, 4096.5], "temperature": [0, None]}},
        {"max_tokens": 4096, "temperature": 5},
    ),
    ("a clamp never adds a key", {}, {"clamp": {"temperature": [0, 1]}}, {}),
    (
        "a clamp leaves non-numbers alone",
        {"temperature": "hot", "top_p": True},
        {"clamp": {"temperature": [0, 1], "top_p": [0, 0.5]}},
        {"temperature": "hot", "top_p": True},
    ),
    (
        "params are clamped too",
        {},
        {"params": {"temperature": 2}, "clamp": {"temperature": [0, 1]}},
        {"temperature": 1.0},
    ),
]


@pytest.mark.parametrize(("body", "ref", "sent"), [c[1:] for c in AIMS], ids=[c[0] for c in AIMS])
def test_aim_applies_params_then_clamps(
    body: dict[str, Any], ref: dict[str, Any], sent: dict[str, Any]
) -> None:
    caller = {"model": "m", **body}
    before = dict(caller)
    out = aimed(caller, **ref)
    assert out == {"model": "claude", **sent}
    assert type(out.get("max_tokens", 0)) is type(sent.get("max_tokens", 0))
    assert caller == before  # the caller's body is never changed


def test_aim_without_edits_is_free() -> None:
    target = Target("oa", "m")
    body = {"model": "m", "messages": []}
    assert aim(body, target) is body
    assert aim({"model": "x"}, target) == {"model": "m"}
