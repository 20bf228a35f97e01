"""The plan's provider kinds and the registry's adapters are the same set: a kind the
plan accepts always has an adapter, and an adapter is never unreachable from a plan."""

from __future__ import annotations

from typing import Literal, get_args, get_origin

import pytest

from standby.plan.defaults import KNOWN_PROVIDERS
from standby.plan.model import ProviderConfig
from standby.providers.http import HTTPProvider
from standby.providers.registry import KINDS, build_provider


def plan_kinds() -> set[str]:
    annotation = ProviderConfig.model_fields["kind"].annotation
    assert get_origin(annotation) is Literal, annotation
    return set(get_args(annotation))


def test_every_plan_kind_has_an_adapter_and_every_adapter_a_plan_kind() -> None:
    assert plan_kinds() == set(KINDS)


def test_the_default_kind_is_one_of_them() -> None:
    assert ProviderConfig.model_fields["kind"].default in KINDS


def test_the_environment_defaults_use_known_kinds() -> None:
    assert {known.kind for known in KNOWN_PROVIDERS} <= set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_each_kind_builds_its_adapter(kind: str) -> None:
    config = ProviderConfig.model_validate(
        {"kind": kind, "base_url": "http://127.0.0.1:9/v1", "max_connections": 3}
    )
    provider = build_provider("p", config)
    try:
        assert type(provider) is KINDS[kind]
        assert isinstance(provider, HTTPProvider)
        assert provider.name == "p"
        assert provider.slots.size == 3  # the plan's pool size reaches the adapter
    finally:
        await provider.aclose()
