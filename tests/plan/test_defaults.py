"""The plan ``standby serve`` builds from provider keys in the environment."""

from __future__ import annotations

import pytest

from standby.errors import PlanError
from standby.plan.defaults import KNOWN_PROVIDERS, OPENAI_ROUTES, default_plan
from standby.plan.model import Plan

ALL_KEYS = {k.env_var: f"key-{k.name}-0123456789" for k in KNOWN_PROVIDERS}


def targets(plan: Plan, name: str) -> list[str]:
    return [t.target for [t] in plan.routes[name].tier_list()]


# (env var names present, providers expected in order, targets of gpt-4o-mini, targets of *)
CASES = [
    (["OPENAI_API_KEY"], ["openai"], ["openai/gpt-4o-mini"], ["openai/{model}"]),
    (
        ["OPENAI_API_KEY", "GROQ_API_KEY"],
        ["openai", "groq"],
        ["openai/gpt-4o-mini", "groq/llama-3.3-70b-versatile"],
        ["openai/{model}", "groq/llama-3.3-70b-versatile"],
    ),
    # Order comes from Standby's list, not from the environment's order.
    (
        ["OPENROUTER_API_KEY", "MISTRAL_API_KEY", "OPENAI_API_KEY"],
        ["openai", "mistral", "openrouter"],
        ["openai/gpt-4o-mini", "mistral/mistral-small-latest", "openrouter/openai/gpt-4o-mini"],
        ["openai/{model}", "mistral/mistral-small-latest", "openrouter/openai/gpt-4o-mini"],
    ),
    # Without OpenAI the OpenAI names still answer, from the backups.
    (
        ["GEMINI_API_KEY", "ANTHROPIC_API_KEY"],
        ["anthropic", "gemini"],
        ["anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash"],
        ["anthropic/{model}", "gemini/gemini-2.5-flash"],
    ),
]


@pytest.mark.parametrize(("present", "providers", "mini", "glob"), CASES)
def test_routes_follow_the_keys_present(
    present: list[str], providers: list[str], mini: list[str], glob: list[str]
) -> None:
    env = {var: ALL_KEYS[var] for var in present}
    plan, _ = default_plan(env)
    assert list(plan.providers) == providers
    assert targets(plan, "gpt-4o-mini") == mini
    assert targets(plan, "*") == glob
    assert list(plan.routes)[-1] == "*"  # first match wins, so the catch-all goes last
    assert set(OPENAI_ROUTES) < set(plan.routes)


def test_all_providers() -> None:
    plan, lines = default_plan(ALL_KEYS)
    assert list(plan.providers) == [k.name for k in KNOWN_PROVIDERS]
    assert plan.providers["openai"].kind == "openai"
    assert plan.providers["anthropic"].kind == "anthropic"  # the native adapter
    assert plan.providers["anthropic"].base_url == "https://api.anthropic.com/v1"
    assert plan.providers["groq"].api_key == ALL_KEYS["GROQ_API_KEY"]
    assert targets(plan, "gpt-4o")[0] == "openai/gpt-4o"
    assert len(targets(plan, "gpt-4o")) == len(KNOWN_PROVIDERS)
    assert any(line.startswith("provider openai (primary)") for line in lines)
    assert any(line.startswith("route * → openai/{model}") for line in lines)


@pytest.mark.parametrize("var", sorted(ALL_KEYS))
def test_description_never_contains_a_key(var: str) -> None:
    plan, lines = default_plan({var: ALL_KEYS[var]})
    assert next(iter(plan.providers.values())).api_key == ALL_KEYS[var]
    assert lines
    assert all(ALL_KEYS[var] not in line for line in lines)
    assert any(var in line for line in lines)  # it does say where the key came from


def test_description_of_all_keys_contains_none() -> None:
    _, lines = default_plan(ALL_KEYS)
    text = "\n".join(lines)
    assert not any(key in text for key in ALL_KEYS.values())


@pytest.mark.parametrize(
    "env", [{}, {"OPENAI_API_KEY": ""}, {"GROQ_API_KEY": "  "}, {"UNRELATED_API_KEY": "x"}]
)
def test_no_keys_is_a_clear_error(env: dict[str, str]) -> None:
    with pytest.raises(PlanError, match="no provider keys") as info:
        default_plan(env)
    assert "--plan" in str(info.value) and "standby demo" in str(info.value)
