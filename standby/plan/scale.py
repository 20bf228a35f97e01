"""The plan's records for running at scale: replicas sharing state (``state``), the
providers' capacity (``providers.<name>.limits``) and how a short one is shared out by
the clients' priorities (``capacity``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from standby.plan.record import Record
from standby.plan.values import Duration

__all__ = ["DEFAULT_SHARES", "Capacity", "Limits", "Priority", "SharedState"]


class SharedState(Record):
    """Where the replicas of one gateway share their breakers' states (Redis)."""

    url: str = ""  # redis://host:6379/0; "" (the default): each replica on its own
    prefix: str = "standby"  # of the keys and the channel: clusters sharing one Redis differ
    # how long a replica holds the singleton jobs' lease without renewing it: a replica
    # killed outright is replaced within this
    lease: Duration = Field(10.0, ge=1.0, le=300.0)

    @field_validator("url")
    @classmethod
    def _redis(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"state.url must be redis://, rediss:// or unix://, got {value!r}")
        return value


class Limits(Record):
    """A provider account's capacity per minute (all its models together), held across
    replicas; none set: learned per model from the provider's rate-limit headers, if it
    sends them."""

    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)


Priority = Literal["high", "normal", "low"]
DEFAULT_SHARES: dict[Priority, float] = {"high": 1.0, "normal": 0.9, "low": 0.6}


class Capacity(Record):
    """How a target's capacity is shared out by priority when it runs short: each class
    may fill the target's minute up to its share, so low-priority traffic never takes the
    part kept for the others."""

    shares: dict[Priority, float] = Field(default_factory=lambda: dict(DEFAULT_SHARES))

    @field_validator("shares")
    @classmethod
    def _shares(cls, value: dict[Priority, float]) -> dict[Priority, float]:
        for name, share in value.items():
            if not 0.0 < share <= 1.0:
                raise ValueError(f"{name}: a share is more than 0 and at most 1, got {share}")
        return {**DEFAULT_SHARES, **value}
