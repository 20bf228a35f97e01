"""Shared fixtures: real simulated providers and a real gateway on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from standby.sim import SimProvider


@pytest.fixture
async def primary() -> AsyncIterator[SimProvider]:
    async with SimProvider("primary") as sim:
        yield sim


@pytest.fixture
async def backup() -> AsyncIterator[SimProvider]:
    async with SimProvider("backup") as sim:
        yield sim


def two_target_plan(primary: SimProvider, backup: SimProvider, **overrides: Any) -> dict[str, Any]:
    """primary → backup for ``gpt-4o-mini``, short deadlines so faults resolve fast."""
    plan: dict[str, Any] = {
        "providers": {
            "primary": {
                "kind": "openai-compatible",
                "base_url": primary.base_url,
                "api_key": "sk-primary-secret",
            },
            "backup": {
                "kind": "openai-compatible",
                "base_url": backup.base_url,
                "api_key": "sk-backup-secret",
            },
        },
        "timeouts": {"connect": "1s", "first_token": "1s", "idle": "1s", "total": "20s"},
        "retry": {"backoff": "10ms", "max_backoff": "50ms"},
        "routes": {"gpt-4o-mini": {"targets": ["primary/gpt-4o-mini", "backup/gpt-4o-mini"]}},
        # probes send requests of their own to the sims, which these tests count; they are
        # tested in tests/watch and tests/e2e/test_incidents.py (which turn them on)
        "probes": {"enabled": False},
    }
    for key, value in overrides.items():
        plan[key] = value
    return plan
