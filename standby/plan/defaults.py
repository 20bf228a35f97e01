"""A plan built from the provider keys found in the environment.

``standby serve`` without ``--plan`` uses this, so a first run needs nothing but the
keys a developer already has exported.  OpenAI is the primary when its key is present;
every other provider with a key becomes a backup through its OpenAI-compatible
endpoint, one sensible model each.  The common OpenAI model names are routes of their
own, and a final ``*`` route passes any other name to the primary, then the backups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from standby.errors import PlanError
from standby.plan.model import Plan, ProviderConfig, RouteConfig, TargetRef

__all__ = ["KNOWN_PROVIDERS", "OPENAI_ROUTES", "default_plan"]


@dataclass(frozen=True, slots=True)
class _Known:
    """A provider Standby can set up from one environment variable."""

    name: str
    env_var: str
    kind: Literal["openai", "openai-compatible", "anthropic", "gemini"]
    base_url: str
    backup_model: str  # what this provider answers with when it stands in for another


# Order matters: the first one present is the primary, the rest are backups in this order.
KNOWN_PROVIDERS: tuple[_Known, ...] = (
    _Known("openai", "OPENAI_API_KEY", "openai", "https://api.openai.com/v1", "gpt-4o-mini"),
    _Known(
        "anthropic",
        "ANTHROPIC_API_KEY",
        "anthropic",
        "https://api.anthropic.com/v1",
        "claude-haiku-4-5",
    ),
    _Known(
        "gemini",
        "GEMINI_API_KEY",
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta",
        "gemini-2.5-flash",
    ),
    _Known(
        "groq",
        "GROQ_API_KEY",
        "openai-compatible",
        "https://api.groq.com/openai/v1",
        "llama-3.3-70b-versatile",
    ),
    _Known(
        "mistral",
        "MISTRAL_API_KEY",
        "openai-compatible",
        "https://api.mistral.ai/v1",
        "mistral-small-latest",
    ),
    _Known(
        "openrouter",
        "OPENROUTER_API_KEY",
        "openai-compatible",
        "https://openrouter.ai/api/v1",
        "openai/gpt-4o-mini",
    ),
)

# The names existing OpenAI client code most often asks for; each gets an explicit route
# so it keeps answering (from a backup) even when OpenAI itself is not configured.
OPENAI_ROUTES: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "gpt-4.1",
    "gpt-4.1-nano",
)


def default_plan(env: Mapping[str, str]) -> tuple[Plan, list[str]]:
    """Build a plan from the provider keys in ``env``.

    Returns the plan and human-readable lines saying what was built.  The plan holds the
    real keys (in memory only); the lines never do.  Raises ``PlanError`` when no known
    provider key is set.
    """
    present = [k for k in KNOWN_PROVIDERS if env.get(k.env_var, "").strip()]
    if not present:
        names = ", ".join(k.env_var for k in KNOWN_PROVIDERS[1:])
        raise PlanError(
            f"no provider keys in the environment; set OPENAI_API_KEY (or {names}), "
            "or pass --plan, or run `standby demo`"
        )

    providers = {
        k.name: ProviderConfig(kind=k.kind, base_url=k.base_url, api_key=env[k.env_var].strip())
        for k in present
    }
    openai = next((k for k in present if k.name == "openai"), None)
    others = [k for k in present if k.name != "openai"]
    primary, backups = present[0], present[1:]

    routes: dict[str, list[str]] = {}
    for model in OPENAI_ROUTES:
        first = [f"openai/{model}"] if openai else []
        routes[model] = first + [f"{k.name}/{k.backup_model}" for k in others]
    # Any other name goes to the primary unchanged, then to each backup's own model.
    routes["*"] = [f"{primary.name}/{{model}}"] + [f"{k.name}/{k.backup_model}" for k in backups]

    plan = Plan(
        providers=providers,
        routes={
            name: RouteConfig(targets=[TargetRef(target=t) for t in targets])
            for name, targets in routes.items()
        },
    )
    return plan, _describe(present, routes)


def _describe(present: list[_Known], routes: dict[str, list[str]]) -> list[str]:
    # Built only from names and URLs: a key value must never reach this text, which is
    # printed to the console and may end up in a log.
    lines = []
    for i, k in enumerate(present):
        role = "primary" if i == 0 else "backup"
        lines.append(
            f"provider {k.name} ({role}): {k.base_url.rstrip('/')} with the key from ${k.env_var}"
        )
    lines.extend(f"route {name} → {', '.join(targets)}" for name, targets in routes.items())
    return lines
