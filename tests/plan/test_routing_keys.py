"""Plan keys for cross-vendor routes: capabilities, per-target params and clamps, and the
model equivalence table — good plans load, bad ones name file, line and key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from standby.errors import PlanError
from standby.plan.load import parse_plan
from standby.plan.model import Capabilities, Plan

CROSS_VENDOR = """\
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1"}
  anthropic:
    kind: anthropic
    base_url: https://api.anthropic.com/v1
    capabilities: {max_context: 200k}
  local:
    base_url: http://127.0.0.1:8000/v1
    capabilities: {images: false, tools: false, json_schema: false, max_context: 8192}
models:
  gpt-4o: {anthropic: claude-sonnet-4-5}
routes:
  gpt-4o:
    targets:
      - openai/gpt-4o
      - target: "anthropic/{equivalent}"
        params: {max_tokens: 1024, logprobs: null}
        clamp: {temperature: [0, 1], top_p: [null, 0.9]}
      - target: local/llama
        capabilities: {max_context: 32k}
"""


def parse(text: str) -> Plan:
    return parse_plan(text, file="plan.yaml", env={})


def test_cross_vendor_plan_loads() -> None:
    plan = parse(CROSS_VENDOR)
    assert plan.providers["openai"].capabilities == Capabilities()
    assert plan.providers["anthropic"].capabilities.max_context == 200_000
    local = plan.providers["local"].capabilities
    assert (local.images, local.tools, local.json_schema, local.max_context) == (
        False,
        False,
        False,
        8192,
    )
    assert plan.models == {"gpt-4o": {"anthropic": "claude-sonnet-4-5"}}
    _, claude, llama = (ref for [ref] in plan.routes["gpt-4o"].tier_list())
    assert claude.params == {"max_tokens": 1024, "logprobs": None}
    assert claude.clamp == {"temperature": (0, 1), "top_p": (None, 0.9)}
    assert llama.capabilities.apply(local).max_context == 32_000
    assert llama.capabilities.apply(local).images is False


PROVIDERS = """\
providers:
  main:
    base_url: "http://127.0.0.1:9000/v1"
"""
ROUTES = "routes:\n  chat: {targets: [main/m]}\n"

# (case, plan text, line, key, words the message must contain)
BAD = [
    (
        "unknown capability",
        PROVIDERS + "    capabilities: {image: false}\n" + ROUTES,
        4,
        "providers.main.capabilities.image",
        ["did you mean 'images'", "known: tools, images, json_schema, max_context"],
    ),
    (
        "bad context size",
        PROVIDERS + "    capabilities:\n      max_context: lots\n" + ROUTES,
        5,
        "providers.main.capabilities.max_context",
        ["bad token count 'lots'", "128k"],
    ),
    (
        "capability not a boolean",
        PROVIDERS + "    capabilities: {tools: sometimes}\n" + ROUTES,
        4,
        "providers.main.capabilities.tools",
        ["valid boolean", "got 'sometimes'"],
    ),
    (
        "unknown capability of a target",
        PROVIDERS + "routes:\n  chat:\n    targets:\n"
        "      - target: main/m\n        capabilities: {tool: false}\n",
        8,
        "routes.chat.targets[0].capabilities.tool",
        ["did you mean 'tools'"],
    ),
    (
        "clamp not a pair",
        PROVIDERS + "routes:\n  chat:\n    targets:\n"
        "      - target: main/m\n        clamp:\n          temperature: 1\n",
        9,
        "routes.chat.targets[0].clamp.temperature",
        ["a clamp is [min, max]"],
    ),
    (
        "clamp upside down",
        PROVIDERS + "routes:\n  chat:\n    targets:\n"
        "      - target: main/m\n        clamp: {temperature: [1, 0]}\n",
        8,
        "routes.chat.targets[0].clamp.temperature",
        ["min 1 is above max 0"],
    ),
    (
        "params may not set the model",
        PROVIDERS + "routes:\n  chat:\n    targets:\n"
        "      - target: main/m\n        params: {model: other, stream: false}\n",
        8,
        "routes.chat.targets[0].params",
        ["model, stream cannot be set per target"],
    ),
    (
        "params not a mapping",
        PROVIDERS + "routes:\n  chat:\n    targets:\n"
        "      - target: main/m\n        params: [max_tokens]\n",
        8,
        "routes.chat.targets[0].params",
        ["should be a mapping"],
    ),
    (
        "equivalent at an unknown provider",
        PROVIDERS
        + ROUTES
        + "models:\n  gpt-4o:\n    main: gpt-4o\n    antropic: claude-sonnet-4-5\n",
        9,
        "models.gpt-4o.antropic",
        ["unknown provider 'antropic'", "known: main"],
    ),
    (
        "empty equivalent",
        PROVIDERS + ROUTES + "models:\n  gpt-4o: {main: ''}\n",
        7,
        "models.gpt-4o.main",
        ["empty"],
    ),
    (
        "equivalent without a table",
        PROVIDERS + "routes:\n  chat:\n    targets:\n      - main/m\n      - 'main/{equivalent}'\n",
        8,
        "routes.chat.targets[1]",
        ["needs the plan's 'models' table"],
    ),
    (
        "no equivalent for an exact route",
        PROVIDERS + "models: {gpt-4o: {main: x}}\n"
        "routes:\n  chat:\n    tiers:\n      - ['main/{equivalent}']\n",
        8,
        "routes.chat.tiers[0][0]",
        ["'models' has no equivalent of 'chat' at provider 'main'"],
    ),
    (
        "no equivalent at a provider for a glob",
        PROVIDERS
        + "  other: {base_url: 'http://127.0.0.1:9001/v1'}\n"
        + "models: {gpt-4o: {main: x}}\nroutes:\n  '*': {targets: ['other/{equivalent}']}\n",
        7,
        "routes.*.targets[0]",
        ["no entry of 'models' names provider 'other'"],
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "key", "words"), [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
def test_bad_routing_keys_name_file_line_and_key(
    text: str, line: int, key: str, words: list[str]
) -> None:
    with pytest.raises(PlanError) as info:
        parse(text)
    error = info.value
    assert (error.file, error.line, error.key) == ("plan.yaml", line, key), str(error)
    for word in words:
        assert word in str(error)


def test_cross_section_problems_are_each_located() -> None:
    text = (
        PROVIDERS + "models: {gpt-4o: {nope: x}}\nroutes:\n  chat:\n    targets:\n"
        "      - mian/m\n      - 'main/{equivalent}'\n"
    )
    with pytest.raises(PlanError) as info:
        parse(text)
    assert str(info.value).splitlines() == [
        "plan.yaml:4: models.gpt-4o.nope: unknown provider 'nope' (known: main)",
        "plan.yaml:8: routes.chat.targets[0]: target 'mian/m' names unknown provider 'mian' "
        "(known: main)",
        "plan.yaml:9: routes.chat.targets[1]: target 'main/{equivalent}': 'models' has no "
        "equivalent of 'chat' at provider 'main'",
    ]


def test_a_plan_built_in_code_gets_the_same_checks() -> None:
    with pytest.raises(
        ValidationError,
        match=r"routes\.chat\.targets\[0\]: target 'x/m' "
        r"names unknown provider 'x'",
    ):
        Plan.model_validate(
            {
                "providers": {"main": {"base_url": "http://h/v1"}},
                "routes": {"chat": {"targets": ["x/m"]}},
            }
        )
