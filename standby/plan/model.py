"""Typed records of a downtime plan.

The YAML file is validated into these frozen pydantic models by ``standby.plan.load``;
everything downstream receives them as plain, immutable configuration.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNIT = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3,
              "gib": 1024**3, None: 1}


def parse_duration(value: Any) -> float:
    """``"3s"``, ``"250ms"``, ``"2m"``, ``"24h"``, ``"1d"`` or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 3s, 250ms or 2m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT[m.group(2)]
    else:
        raise ValueError(
            f"bad duration {value!r}: expected a number with ms, s, m, h or d (e.g. 3s)")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_size(value: Any) -> int:
    """``"8MiB"``, ``"512kb"`` or a number of bytes → bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (m := _SIZE.match(value)):
        unit = m.group(2).lower() if m.group(2) else None
        return int(m.group(1)) * _SIZE_UNIT[unit]
    raise ValueError(f"bad size {value!r}: expected bytes or a number with kb, KiB, MB, MiB…")


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(Record):
    """Per-attempt deadlines plus the request's total budget across attempts.

    ``first_token`` bounds the wait for the first content token of a stream, and for a
    non-streaming reply the wait for the response to start.
    """

    connect: Duration = 3.0
    first_token: Duration = 30.0
    idle: Duration = 20.0
    total: Duration = 120.0


class TimeoutOverrides(Record):
    connect: Duration | None = None
    first_token: Duration | None = None
    idle: Duration | None = None
    total: Duration | None = None

    def apply(self, base: Timeouts) -> Timeouts:
        changes = {k: v for k, v in self.model_dump().items() if v is not None}
        return base.model_copy(update=changes) if changes else base


class Retry(Record):
    """How often and how patiently to try again."""

    same_target: int = Field(1, ge=0, le=5)  # retries of one target on a transient error
    backoff: Duration = 0.05  # first backoff; doubles, with full jitter
    max_backoff: Duration = 2.0
    max_attempts: int = Field(6, ge=1, le=20)  # attempts per request, all targets together
    max_retry_after: Duration = 5.0  # longest Retry-After we wait out when nothing else can serve


class Breaker(Record):
    """Per-target circuit breaker settings."""

    failures: int = Field(5, ge=1)  # consecutive failures that open it
    ejection: Duration = 1.0  # first open period
    growth: float = Field(1.5, ge=1.0)  # each re-open multiplies the period by this
    max_ejection: Duration = 30.0
    forget_after: Duration = 5.0  # healthy (closed) this long: the next ejection starts small
    auth_ejection: Duration = 300.0  # a 401/402/403 key problem keeps the target out this long


class Provider(Record):
    kind: Literal["openai", "openai-compatible"] = "openai-compatible"
    base_url: str
    api_key: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    prefill: bool = False  # accepts a trailing assistant message and continues it
    timeouts: TimeoutOverrides = TimeoutOverrides()
    max_connections: int = Field(1000, ge=1)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")


class TargetRef(Record):
    target: str  # "provider/model"; "{model}" in the model passes the asked name through
    weight: float = Field(1.0, gt=0)


def _target_ref(value: Any) -> Any:
    return {"target": value} if isinstance(value, str) else value


TargetItem = Annotated[TargetRef, BeforeValidator(_target_ref)]


class Defer(Record):
    """Whether a request nothing can serve now may be completed later (202 Accepted)."""

    allowed: bool = False
    max_age: Duration = 86400.0  # give up on a deferred request after this long


class Route(Record):
    """A public model name → ordered tiers of targets (weights share load within a tier)."""

    targets: list[TargetItem] | None = None  # shorthand: each target is its own tier
    tiers: list[list[TargetItem]] | None = None
    timeouts: TimeoutOverrides = TimeoutOverrides()
    defer: Defer = Defer()

    @model_validator(mode="after")
    def _one_form(self) -> Route:
        if (self.targets is None) == (self.tiers is None):
            raise ValueError("give exactly one of 'targets' or 'tiers'")
        if not (self.targets or self.tiers):
            raise ValueError("a route needs at least one target")
        return self

    def tier_list(self) -> list[list[TargetRef]]:
        if self.tiers is not None:
            return [list(t) for t in self.tiers]
        return [[t] for t in self.targets or []]


class Server(Record):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body: Size = 8 * 1024 * 1024
    client_keys: list[str] = Field(default_factory=list)  # "sha256:<hex>" of each client key
    admin_token: str = ""

    @field_validator("client_keys")
    @classmethod
    def _hashed(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", key):
                raise ValueError("client keys are stored hashed: 'sha256:<64 hex digits>' "
                                 "(make one with `standby key hash`)")
        return keys


class Journal(Record):
    """The durable record of every request, attempt and answer."""

    enabled: bool = True
    url: str = ""  # SQLAlchemy URL; default: sqlite:///standby.db in the data directory
    wal_dir: str = ""  # write-ahead log directory; default: standby-wal/ in the data directory
    store: bool = True  # serve stored completions (GET /v1/chat/completions/{id} …)
    redact: bool = False  # keep only hashes and sizes of bodies and answers
    retain: Duration = 90 * 86400.0  # prune journal rows older than this
    batch: int = Field(1000, ge=1)  # events per database transaction at most
    fsync: bool = False  # fsync the write-ahead log on every append (survives power loss)
    callback_secret: str = ""  # HMAC key for deferred-completion callbacks


class Plan(Record):
    providers: dict[str, Provider]
    routes: dict[str, Route]
    timeouts: Timeouts = Timeouts()
    retry: Retry = Retry()
    breaker: Breaker = Breaker()
    server: Server = Server()
    journal: Journal = Journal()

    @model_validator(mode="after")
    def _targets_exist(self) -> Plan:
        for name, route in self.routes.items():
            for tier in route.tier_list():
                for ref in tier:
                    provider, sep, model = ref.target.partition("/")
                    if not sep or not model:
                        raise ValueError(
                            f"routes.{name}: target {ref.target!r} must be 'provider/model'")
                    if provider not in self.providers:
                        known = ", ".join(sorted(self.providers)) or "none"
                        raise ValueError(f"routes.{name}: target {ref.target!r} names unknown "
                                         f"provider {provider!r} (known: {known})")
        return self
