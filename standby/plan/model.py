"""Typed records of a downtime plan.

The YAML file is validated into these frozen pydantic models by ``standby.plan.load``;
everything downstream receives them as plain, immutable configuration.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from standby.plan.alerts import Drills, Incidents, Notify, Probes, PublicPage, StatusPage
from standby.plan.record import Record
from standby.plan.scale import Capacity, Limits, Priority, SharedState
from standby.plan.values import Clamp, Duration, Loc, Size, Tokens, dotted

# body keys the gateway itself decides; a target's params or clamps may not touch them
_RESERVED = frozenset({"model", "messages", "stream", "n"})


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the gateway on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


MAX_TIMEOUT = 86400.0  # a deadline longer than a day is a typo, not a plan


def _check_deadline(value: float | None) -> float | None:
    if value is None:
        return None
    if value <= 0:
        raise ValueError("must be more than 0s: every attempt would time out at once")
    if value > MAX_TIMEOUT:
        raise ValueError(f"{value:g}s is more than a day; a deadline that long is never reached")
    return value


class Timeouts(Record):
    """Per-attempt deadlines plus the request's total budget across attempts.

    ``first_token`` bounds the wait for the first content token of a stream, and for a
    non-streaming reply the wait for the response to start.
    """

    connect: Duration = 3.0
    first_token: Duration = 30.0
    idle: Duration = 20.0
    total: Duration = 120.0

    _deadline = field_validator("connect", "first_token", "idle", "total")(_check_deadline)

    @model_validator(mode="after")
    def _within_total(self) -> Timeouts:
        # only deadlines written in the plan: a default longer than a short total is
        # simply clipped by the budget, which is what writing only `total` means
        for name in ("connect", "first_token"):
            value = getattr(self, name)
            if name in self.model_fields_set and value > self.total:
                raise ValueError(
                    f"{name} ({value:g}s) is longer than total ({self.total:g}s): the "
                    "total budget would always cut it first"
                )
        return self


class TimeoutOverrides(Record):
    connect: Duration | None = None
    first_token: Duration | None = None
    idle: Duration | None = None
    total: Duration | None = None

    _deadline = field_validator("connect", "first_token", "idle", "total")(_check_deadline)

    def apply(self, base: Timeouts) -> Timeouts:
        changes = {k: v for k, v in self.model_dump().items() if v is not None}
        return base.model_copy(update=changes) if changes else base


class Retry(Record):
    """How often and how patiently to try again."""

    same_target: int = Field(1, ge=0, le=5)  # retries of one target on a transient error
    backoff: Duration = 0.05  # first backoff; doubles, with full jitter
    max_backoff: Duration = 2.0
    max_attempts: int = Field(6, ge=1, le=20)  # attempts per request, all targets together
    max_retry_after: Duration = 5.0  # longest Retry-After we wait out
    # a 429 whose Retry-After fits max_retry_after and the budget is waited out on the same
    # target before failing over (false: fail over at once; wait only if nothing else can)
    prefer_same_target: bool = False


class RetryOverrides(Record):
    """Per-route changes to the plan's ``retry``; a key left out keeps the plan's."""

    same_target: int | None = Field(None, ge=0, le=5)
    backoff: Duration | None = None
    max_backoff: Duration | None = None
    max_attempts: int | None = Field(None, ge=1, le=20)
    max_retry_after: Duration | None = None
    prefer_same_target: bool | None = None

    def apply(self, base: Retry) -> Retry:
        changes = {k: v for k, v in self.model_dump().items() if v is not None}
        return base.model_copy(update=changes) if changes else base


class BreakerConfig(Record):
    """Per-target circuit breaker settings."""

    failures: int = Field(5, ge=1)  # consecutive failures that open it
    ejection: Duration = 1.0  # first open period
    growth: float = Field(1.5, ge=1.0)  # each re-open multiplies the period by this
    max_ejection: Duration = 4.0  # short: a recovered target is used again within seconds
    forget_after: Duration = 5.0  # healthy (closed) this long: the next ejection starts small
    auth_ejection: Duration = 300.0  # a 401/402/403 key problem keeps the target out this long


class Capabilities(Record):
    """What a provider (or one target) can serve; the router skips targets that cannot."""

    tools: bool = True  # tools / functions, and tool calls in the conversation
    images: bool = True  # image parts in messages
    json_schema: bool = True  # response_format {type: json_schema}
    max_context: Tokens | None = None  # prompt + requested output, in tokens; None: unlimited


class CapabilityOverrides(Record):
    """Per-target changes to its provider's capabilities; a key left out keeps the provider's."""

    tools: bool | None = None
    images: bool | None = None
    json_schema: bool | None = None
    max_context: Tokens | None = None

    def apply(self, base: Capabilities) -> Capabilities:
        changes = {k: v for k, v in self.model_dump().items() if v is not None}
        return base.model_copy(update=changes) if changes else base


class ProviderConfig(Record):
    """One upstream API account: its wire, address, key, and what its models can serve."""

    kind: Literal["openai", "openai-compatible", "azure", "anthropic", "gemini"] = (
        "openai-compatible"
    )
    base_url: str
    api_key: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    prefill: bool | None = None  # continues a trailing assistant message; default by kind
    api_version: str = ""  # azure: api-version; anthropic: anthropic-version header
    default_max_tokens: int = Field(4096, ge=1)  # anthropic requires one; used if none given
    timeouts: TimeoutOverrides = TimeoutOverrides()
    max_connections: int = Field(10_000, ge=1)  # attempts using its connections at once
    capabilities: Capabilities = Capabilities()
    status_page: StatusPage = StatusPage()  # its official page (built in for known vendors)
    probe: bool = True  # probe its targets (the plan's ``probes`` say how)
    limits: Limits = Limits()  # what the account may be sent per minute, all models together

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")


class TargetRef(Record):
    """One target of a route: ``provider/model`` and how requests are shaped for it.

    ``{model}`` in the model passes the asked name through; ``{equivalent}`` is replaced
    by the plan's ``models`` table entry for the asked model at this provider.
    """

    target: str
    weight: float = Field(1.0, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)  # set body keys; null removes one
    clamp: dict[str, Clamp] = Field(default_factory=dict)  # numeric body keys into [min, max]
    capabilities: CapabilityOverrides = CapabilityOverrides()

    @field_validator("params", "clamp")
    @classmethod
    def _not_reserved(cls, value: dict[str, Any]) -> dict[str, Any]:
        taken = sorted(_RESERVED.intersection(value))
        if taken:
            raise ValueError(
                f"{', '.join(taken)} cannot be set per target (the gateway sets "
                f"{', '.join(sorted(_RESERVED))})"
            )
        return value


def _target_ref(value: Any) -> Any:
    return {"target": value} if isinstance(value, str) else value


TargetItem = Annotated[TargetRef, BeforeValidator(_target_ref)]


class Defer(Record):
    """Whether a request nothing can serve now may be completed later (202 Accepted)."""

    allowed: bool = False
    max_age: Duration = 86400.0  # give up on a deferred request after this long


class RouteConfig(Record):
    """A public model name → ordered tiers of targets (weights share load within a tier)."""

    targets: list[TargetItem] | None = None  # shorthand: each target is its own tier
    tiers: list[list[TargetItem]] | None = None
    timeouts: TimeoutOverrides = TimeoutOverrides()
    retry: RetryOverrides = RetryOverrides()
    defer: Defer = Defer()
    store: Store | None = None  # overrides the journal's store policy for this route

    @model_validator(mode="after")
    def _one_form(self) -> RouteConfig:
        if (self.targets is None) == (self.tiers is None):
            raise ValueError("give exactly one of 'targets' or 'tiers'")
        if not (self.targets or self.tiers):
            raise ValueError("a route needs at least one target")
        return self

    def tier_list(self) -> list[list[TargetRef]]:
        if self.tiers is not None:
            return [list(t) for t in self.tiers]
        return [[t] for t in self.targets or []]

    def located(self) -> Iterator[tuple[Loc, TargetRef]]:
        """Each target with its place as written: ``("targets", 1)``, ``("tiers", 0, 2)``."""
        for i, ref in enumerate(self.targets or ()):
            yield ("targets", i), ref
        for i, tier in enumerate(self.tiers or ()):
            for j, ref in enumerate(tier):
                yield ("tiers", i, j), ref


StorePolicy = Literal["always", "on_request", "never"]


def _store_policy(value: Any) -> Any:
    """``true``/``false`` (the plan format before store policies) read as policies."""
    if value is True:
        return "on_request"
    if value is False:
        return "never"
    return value


Store = Annotated[StorePolicy, BeforeValidator(_store_policy)]


class ClientKey(Record):
    """One client of the gateway: its hashed key and what the plan decides for it."""

    key: str  # "sha256:<hex>" of the client's key; the key itself is never in the plan
    store: Store | None = None  # overrides the route's and the journal's store policy
    priority: Priority = "normal"  # who keeps a short backup's capacity (``capacity``)
    requests_per_minute: int | None = Field(None, ge=1)  # this client's own limits
    tokens_per_minute: int | None = Field(None, ge=1)
    tokens_per_day: int | None = Field(None, ge=1)  # a budget: 429 once spent

    @field_validator("key")
    @classmethod
    def _hashed(cls, key: str) -> str:
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", key):
            raise ValueError(
                "client keys are stored hashed: 'sha256:<64 hex digits>' "
                "(make one with `standby key hash`)"
            )
        return key


def _client_keys(value: Any) -> Any:
    """The list form (hashes only) gets a stable name per key: ``key-<first 8 hex>``."""
    if isinstance(value, list):
        named: dict[Any, Any] = {}
        for item in value:
            digest = item.get("key") if isinstance(item, dict) else item
            name = f"key-{digest.removeprefix('sha256:')[:8]}" if isinstance(digest, str) else item
            named[name] = item
        value = named
    if isinstance(value, dict):
        return {name: {"key": v} if isinstance(v, str) else v for name, v in value.items()}
    return value


ClientKeyTable = Annotated[dict[str, ClientKey], BeforeValidator(_client_keys)]


class Server(Record):
    """How the gateway listens, who may call it, and the bounds on every connection."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body: Size = 8 * 1024 * 1024
    client_keys: ClientKeyTable = Field(default_factory=dict)  # name → hashed key
    admin_token: str = ""  # /standby/* and /metrics; required on a public bind
    metrics_token: str = ""  # a scrape-only token for /metrics (the admin token works too)
    max_header: Size = Field(64 * 1024, ge=1024)  # request line + headers, in bytes → 431
    header_timeout: Duration = 10.0  # a connection must send its whole head within this
    body_timeout: Duration = 30.0  # and then its whole body within this
    max_connections: int = Field(20_000, ge=1)  # open client connections; beyond: 503
    on_disconnect: Literal["cancel", "finish"] = "cancel"  # a client leaving mid-stream
    # asked to stop (SIGTERM, SIGINT), the gateway takes no new connection and gives the
    # requests in flight this long to finish; then they are cancelled
    drain: Duration = 30.0

    @field_validator("header_timeout", "body_timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0s: a connection would be closed at once")
        return value


class JournalConfig(Record):
    """The durable record of every request, attempt and answer."""

    enabled: bool = True
    url: str = ""  # SQLAlchemy URL; default: sqlite:///standby.db in the data directory
    wal_dir: str = ""  # write-ahead log directory; default: standby-wal/ in the data directory
    # which answers are served back as stored completions (the journal records every
    # request either way): on_request follows OpenAI (only when the request says
    # store: true), always, or never; a route or a client may override it
    store: Store = "on_request"
    redact: bool = False  # keep only hashes and sizes of bodies and answers
    retain: Duration = 90 * 86400.0  # prune journal rows older than this
    batch: int = Field(1000, ge=1)  # events per database transaction at most
    fsync: bool = False  # fsync the write-ahead log on every append (survives power loss)
    callback_secret: str = ""  # HMAC key for callbacks; default: generated beside the journal
    # hosts a deferred request's callback may name (exact names or "*.example.com");
    # loopback, private and link-local addresses are refused unless listed here
    callback_hosts: list[str] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _database(cls, url: str) -> str:
        problem = journal_url_problem(url)
        if problem:
            raise ValueError(problem)
        return url


_JOURNAL_URLS = (
    "sqlite:///standby.db (relative to the plan's directory), "
    "sqlite:////var/lib/standby/journal.db (absolute), or "
    "postgresql://user:password@host/database"
)


def journal_url_problem(url: str) -> str | None:
    """Why the journal cannot open ``url`` (None: it can try; ``""`` is the default file).

    Only the URL's shape is checked, not whether the database answers.  The message
    never quotes the URL, whose password may have come from the environment.
    """
    if not url:
        return None
    # SQLAlchemy is imported only when a plan names a database: `standby serve` with the
    # default journal, and every plan without one, start without it.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return f"not a database URL; write {_JOURNAL_URLS}"
    backend, driver = parsed.get_backend_name(), parsed.drivername
    if backend == "sqlite":
        if parsed.host:  # sqlite://journal.db: the file name was read as a host name
            written = "sqlite:///" + url.split("://", 1)[1]
            return (
                "a SQLite URL has three slashes before a relative path and four before an "
                f"absolute one: write {written!r}"
            )
        if not parsed.database or parsed.database == ":memory:":
            return (
                "names no database file (an in-memory journal is lost when the gateway "
                "stops); write sqlite:///standby.db"
            )
        if driver not in ("sqlite", "sqlite+aiosqlite"):
            return f"write sqlite:///… without a driver (Standby uses aiosqlite), not {driver!r}"
        return None
    if backend in ("postgresql", "postgres"):
        if driver not in ("postgresql", "postgres", "postgresql+asyncpg"):
            return (
                "write postgresql://… without a driver (Standby uses asyncpg), "
                f"not {driver + '://'!r}"
            )
        return None
    return (
        f"unsupported database {backend!r}: the journal runs on SQLite or PostgreSQL; "
        f"write {_JOURNAL_URLS}"
    )


class ChatConfig(Record):
    """The chat page for people (``/chat``): conversations kept in the journal's database."""

    enabled: bool = False  # ``standby chat`` turns it on
    model: str = ""  # what a question asks by default; "": the plan's first named route


class Price(Record):
    """What a target's tokens cost, per million (the currency is the reader's own)."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class Plan(Record):
    providers: dict[str, ProviderConfig]
    routes: dict[str, RouteConfig]
    timeouts: Timeouts = Timeouts()
    retry: Retry = Retry()
    breaker: BreakerConfig = BreakerConfig()
    server: Server = Server()
    journal: JournalConfig = JournalConfig()
    probes: Probes = Probes()
    incidents: Incidents = Incidents()
    notify: Notify = Notify()
    status_page: PublicPage = PublicPage()  # the public page for customers (/status)

    # asked model → {provider name: that provider's equivalent model}, for "{equivalent}"
    models: dict[str, dict[str, str]] = Field(default_factory=dict)
    # target "provider/model" → its price per million tokens (reports' costs)
    prices: dict[str, Price] = Field(default_factory=dict)
    drills: Drills = Drills()  # rehearsals: objectives a drill is judged by
    state: SharedState = SharedState()  # breakers shared between replicas
    capacity: Capacity = Capacity()  # targets' limits shared out by client priority
    chat: ChatConfig = ChatConfig()  # the chat page (/chat)

    @model_validator(mode="after")
    def _cross_check(self, info: ValidationInfo) -> Plan:
        # The loader passes context {"cross_check": False} and reports ``problems()``
        # itself, each with its line; everyone else gets them all in one error here.
        if info.context and info.context.get("cross_check") is False:
            return self
        found = self.problems()
        if found:
            raise ValueError("; ".join(f"{dotted(loc)}: {message}" for loc, message in found))
        return self

    def problems(self) -> list[tuple[Loc, str]]:
        """Mistakes across sections (a target naming an unknown provider, …), located."""
        known = ", ".join(sorted(self.providers)) or "none"
        found: list[tuple[Loc, str]] = []
        if not self.routes:
            found.append((("routes",), "the plan has no routes: every request would be a 404"))
        if not is_loopback(self.server.host):
            exposed = f"server.host {self.server.host!r} is not a loopback address"
            if not self.server.client_keys:
                found.append(
                    (
                        ("server", "client_keys"),
                        f"{exposed}: set client keys (`standby key hash`), or anyone "
                        "could spend your provider credit",
                    )
                )
            if not self.server.admin_token:
                found.append(
                    (
                        ("server", "admin_token"),
                        f"{exposed}: set an admin token, or the journal, health and metrics "
                        "would be locked to everyone",
                    )
                )
        for asked, row in self.models.items():
            for provider, model in row.items():
                loc: Loc = ("models", asked, provider)
                if provider not in self.providers:
                    found.append((loc, f"unknown provider {provider!r} (known: {known})"))
                elif not model.strip():
                    found.append((loc, "the equivalent model name is empty"))
        for index, told in enumerate(self.drills.channels):
            if told not in self.notify.channels:
                names = ", ".join(sorted(self.notify.channels)) or "none"
                found.append(
                    (
                        ("drills", "channels", index),
                        f"unknown notify channel {told!r} (channels: {names})",
                    )
                )
        for index, drill in enumerate(self.drills.schedule):
            if drill.target.partition("/")[0] not in self.providers:
                found.append(
                    (
                        ("drills", "schedule", index, "target"),
                        f"unknown provider in {drill.target!r} (known: {known})",
                    )
                )
        if self.chat.enabled and not self.journal.enabled:
            found.append(
                (("chat", "enabled"), "the chat keeps conversations in the journal: enable it")
            )
        for target in self.prices:
            provider, sep, model = target.partition("/")
            if not sep or not model:
                found.append((("prices", target), f"{target!r} must be 'provider/model'"))
            elif provider not in self.providers:
                found.append(
                    (("prices", target), f"unknown provider {provider!r} (known: {known})")
                )
        for name, route in self.routes.items():
            for where, ref in route.located():
                loc = ("routes", name, *where)
                provider, sep, model = ref.target.partition("/")
                if not sep or not model:
                    found.append((loc, f"target {ref.target!r} must be 'provider/model'"))
                elif provider not in self.providers:
                    found.append(
                        (
                            loc,
                            f"target {ref.target!r} names unknown provider "
                            f"{provider!r} (known: {known})",
                        )
                    )
                elif "{equivalent}" in model and (why := self._no_equivalent(name, provider)):
                    found.append((loc, f"target {ref.target!r}: {why}"))
        if self.status_page.listen and not self.journal.enabled:
            found.append(
                (
                    ("status_page", "listen"),
                    "the page on its own address reads the journal's database: enable "
                    "the journal, or serve the page at /status on the gateway",
                )
            )
        email = self.status_page.subscriptions.email_channel
        if email:
            channel = self.notify.channels.get(email)
            loc = ("status_page", "subscriptions", "email_channel")
            if channel is None:
                names = ", ".join(sorted(self.notify.channels)) or "none"
                found.append((loc, f"unknown notify channel {email!r} (channels: {names})"))
            elif channel.kind != "apprise":
                found.append((loc, f"channel {email!r} must be an apprise (mail) channel"))
            elif not self.status_page.url:
                found.append(
                    (
                        ("status_page", "url"),
                        "email subscriptions need the page's public address (the links "
                        "in the mails): set status_page.url",
                    )
                )
        for index, window in enumerate(self.incidents.maintenance):
            for provider in window.providers:
                if provider not in self.providers:
                    found.append(
                        (
                            ("incidents", "maintenance", index, "providers"),
                            f"unknown provider {provider!r} (known: {known})",
                        )
                    )
        return found

    def _no_equivalent(self, route: str, provider: str) -> str | None:
        """Why ``{equivalent}`` at ``provider`` can never resolve on ``route``, if so."""
        if not self.models:
            return "'{equivalent}' needs the plan's 'models' table, and there is none"
        if any(ch in route for ch in "*?["):  # a glob: the asked names are not known here
            if not any(provider in row for row in self.models.values()):
                return f"no entry of 'models' names provider {provider!r}"
            return None
        if provider not in self.models.get(route, {}):
            return f"'models' has no equivalent of {route!r} at provider {provider!r}"
        return None
