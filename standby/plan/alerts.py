"""What a downtime plan says about noticing an outage and telling people: probes, the
providers' official status pages, the incident detector's thresholds, maintenance
windows, notification channels and the escalation policy.

    probes: {interval: 15s, max_tokens: 1, expect: "(?i)ok"}
    incidents:
      detect: {fast_window: 10s, slow_window: 2m, open_after: 2, resolve_after: 3}
      maintenance: [{start: 2026-12-24T02:00:00Z, end: 2026-12-24T03:00:00Z, providers: [openai]}]
    notify:
      channels:
        ops-chat: {kind: apprise, url: "slack://…"}
        hooks: {kind: webhook, url: "https://example.com/standby", secret: "${HOOK_SECRET}"}
        oncall: {kind: pagerduty, routing_key: "${PD_KEY}"}
      escalation:
        - {after: 0s, notify: [ops-chat, hooks]}
        - {after: 10m, notify: [oncall]}

A provider names its official page with ``status_page: {url: …, components: […]}``;
known vendors have theirs built in (``standby.watch.official``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from standby.plan.record import Record
from standby.plan.values import Duration


class Probes(Record):
    """A tiny synthetic request per target on a jittered schedule."""

    enabled: bool = True
    interval: Duration = 15.0  # between two probes of one target, ±20 % jitter
    prompt: str = "Reply with the single word: ok"
    max_tokens: int = Field(1, ge=1, le=4096)
    expect: str = ""  # a regular expression the answer's text must match ("": any answer)
    timeout: Duration = 10.0  # the whole probe
    busy: int = Field(3, ge=0)  # live answers in the last interval that make a probe redundant

    @field_validator("expect")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class Detect(Record):
    """When the detector opens and resolves an incident (burn rates over two windows,
    with hysteresis)."""

    evaluate_every: Duration = 1.0  # seconds between two evaluations
    fast_window: Duration = 5.0  # catches an outage within seconds
    slow_window: Duration = 120.0  # catches a slow burn that the fast window forgives
    fast_error_rate: float = Field(0.5, gt=0, le=1)  # share failed in the fast window
    slow_error_rate: float = Field(0.1, gt=0, le=1)  # share failed in both windows
    min_events: int = Field(3, ge=1)  # a fast window with fewer outcomes says nothing
    slow_min_events: int = Field(60, ge=1)  # nor a slow window with fewer than this
    open_after: int = Field(5, ge=1)  # bad evaluations in a row to open an incident
    resolve_after: int = Field(5, ge=1)  # good evaluations in a row to resolve it
    latency_p99: Duration | None = None  # a p99 over this in the fast window is degraded

    @model_validator(mode="after")
    def _windows(self) -> Detect:
        if self.slow_window < self.fast_window:
            raise ValueError("slow_window must be at least fast_window")
        return self


class Maintenance(Record):
    """A scheduled window: incidents of what it covers are muted (not notified)."""

    start: datetime
    end: datetime
    providers: list[str] = Field(default_factory=list)  # empty: everything
    note: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Maintenance:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a time zone (…Z or …+02:00)")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Incidents(Record):
    detect: Detect = Detect()
    maintenance: list[Maintenance] = Field(default_factory=list)


class Channel(Record):
    """Where a notification goes."""

    kind: Literal["apprise", "webhook", "pagerduty"]
    # apprise: the Apprise URL; webhook: the receiver; pagerduty: the events API.  Secrets
    # (and an Apprise URL holds some) never show in a repr or a log
    url: str = Field("", repr=False)
    secret: str = Field("", repr=False)  # webhook: HMAC-SHA256 key of the signature header
    routing_key: str = Field("", repr=False)  # pagerduty: the integration's routing key
    min_interval: Duration = 0.0  # at most one message per this long, per incident

    @model_validator(mode="after")
    def _complete(self) -> Channel:
        if self.kind in ("apprise", "webhook") and not self.url:
            raise ValueError(f"a {self.kind} channel needs a url")
        if self.kind == "pagerduty" and not self.routing_key:
            raise ValueError("a pagerduty channel needs a routing_key")
        return self


class Step(Record):
    """One escalation step: ``after`` the incident opened (and is still unacknowledged),
    notify ``notify``, and/or ``publish: status-page`` — put the incident on the public
    status page (a plan whose steps never publish leaves that to a person)."""

    after: Duration = 0.0
    notify: list[str] = Field(default_factory=list)
    publish: Literal["status-page"] | None = None

    @model_validator(mode="after")
    def _does_something(self) -> Step:
        if not self.notify and self.publish is None:
            raise ValueError("an escalation step needs `notify` or `publish`")
        return self


class Notify(Record):
    channels: dict[str, Channel] = Field(default_factory=dict)
    escalation: list[Step] = Field(default_factory=list)

    @property
    def publish_after(self) -> float | None:
        """How long after opening an incident publishes itself on the status page: the
        first ``publish`` step's ``after``; with no escalation at all, at once (nobody is
        there to do it); with steps but none that publishes, never (a person does)."""
        if not self.escalation:
            return 0.0
        return next((step.after for step in self.escalation if step.publish), None)

    @model_validator(mode="after")
    def _known(self) -> Notify:
        for index, step in enumerate(self.escalation):
            unknown = [name for name in step.notify if name not in self.channels]
            if unknown:
                known = ", ".join(sorted(self.channels)) or "none"
                raise ValueError(
                    f"escalation step {index} names unknown channel(s) {', '.join(unknown)} "
                    f"(channels: {known})"
                )
        afters = [step.after for step in self.escalation]
        if afters != sorted(afters):
            raise ValueError("escalation steps must be in order of `after`")
        return self


class StatusPage(Record):
    """A provider's official status page."""

    url: str = ""  # "": the vendor's built-in page, if Standby knows one
    format: Literal["statuspage", "google-cloud", "feed"] = "statuspage"
    components: list[str] = Field(default_factory=list)  # the ones that matter; []: all
    interval: Duration = 60.0  # between two polls (longer after errors)
    demote: bool = True  # a declared major outage / maintenance takes the target out first
    enabled: bool = True

    @field_validator("interval")
    @classmethod
    def _polite(cls, value: float) -> float:
        if value < 10.0:
            raise ValueError("poll a status page at most every 10s (its owner pays for it)")
        return value


class PublicComponent(Record):
    """One component of the public status page: what customers know it by, and the
    routes (names or ``*`` patterns) that serve it."""

    routes: list[str] = Field(min_length=1)
    description: str = ""


# What customers are told when nobody wrote the words, by incident status; {component},
# {started} and {eta} are filled in ({eta}: the provider's own estimate, when it gave one)
DEFAULT_TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "investigating": "We are investigating problems with {component} since {started}.",
        "identified": "We have identified the cause of the problems with {component}.{eta}",
        "monitoring": "A fix is in place for {component}; we are monitoring the results.",
        "resolved": "This incident has been resolved: {component} is working normally.",
        "eta": " Estimated restoration: {eta}.",
    },
}
TEMPLATE_KEYS = ("investigating", "identified", "monitoring", "resolved", "eta")
_FIELDS = re.compile(r"{(\w*)}")


class Subscriptions(Record):
    """How visitors of the status page subscribe to its incidents."""

    enabled: bool = True
    webhook: bool = True  # by a webhook URL (verified by a challenge, deliveries signed)
    # by email: the name of an apprise channel of ``notify`` whose URL sends mail (mailto:
    # or mailtos://); the visitor's address is added as its recipient.  "": no email
    email_channel: str = ""
    per_minute: int = Field(10, ge=1)  # subscription requests per client address
    # a webhook to a loopback, private or link-local address is refused unless allowed
    # (a public form that makes Standby POST anywhere would reach the inside)
    allow_private_webhooks: bool = False
    max_subscribers: int = Field(10_000, ge=1)


class PublicPage(Record):
    """Standby's own status page for the business's customers (``/status``)."""

    enabled: bool = True
    title: str = "Service status"
    url: str = ""  # where the page is published (for links in feeds and the API)
    # also serve the page alone on this "host:port" (the public never reaches the API)
    listen: str = ""
    # name → component; empty: one component per route, named by the route
    components: dict[str, PublicComponent] = Field(default_factory=dict)
    # a non-streamed answer that took longer than this counts against uptime like a
    # failure (figures are counted as requests end: a change applies from then on)
    objective: Duration = 30.0
    language: str = "en"  # the words of updates nobody wrote (``templates``)
    templates: dict[str, dict[str, str]] = Field(default_factory=dict)  # language → words
    subscriptions: Subscriptions = Subscriptions()

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        if value:
            host, sep, port = value.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"listen must be host:port, got {value!r}")
        return value

    @field_validator("templates")
    @classmethod
    def _words(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for language, words in value.items():
            for key, text in words.items():
                if key not in TEMPLATE_KEYS:
                    raise ValueError(
                        f"templates.{language}: unknown key {key!r} "
                        f"(known: {', '.join(TEMPLATE_KEYS)})"
                    )
                unknown = set(_FIELDS.findall(text)) - {"component", "started", "eta"}
                if unknown:
                    raise ValueError(
                        f"templates.{language}.{key}: unknown field(s) "
                        f"{', '.join(sorted(unknown))} (known: component, started, eta)"
                    )
        return value

    def words(self, language: str | None = None) -> dict[str, str]:
        """The templates of ``language`` (one the plan has no words for: the page's),
        over the built-in English."""
        chosen = language if language in self.languages else self.language
        return {**DEFAULT_TEMPLATES["en"], **self.templates.get(chosen, {})}

    @property
    def languages(self) -> list[str]:
        return sorted({"en", self.language, *self.templates})


class Objectives(Record):
    """What a drill must show for the plan to pass it (unset: not judged)."""

    max_failed_requests: int | None = Field(None, ge=0)
    max_time_to_failover: Duration | None = None  # first failure → a fallback's answer
    max_added_p99: Duration | None = None  # over the same span just before the drill
    max_time_to_notify: Duration | None = None  # first failure → a notification delivered


DRILL_FAULTS = ("outage", "429", "slow", "stall", "cut")


class ScheduledDrill(Record):
    """A drill the gateway runs by itself, on live traffic, when ``cron`` says (UTC)."""

    cron: str  # "minute hour day month weekday", e.g. "0 3 * * 1" (Mondays, 03:00 UTC)
    target: str  # "provider/model", or a whole "provider"
    fault: Literal["outage", "429", "slow", "stall", "cut"]
    duration: Duration = 60.0
    share: float = Field(1.0, gt=0.0, le=1.0)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(
                f"bad cron {value!r}: expected five fields, minute hour day month weekday "
                "(e.g. '0 3 * * 1')"
            )
        return value


class Drills(Record):
    """Rehearsals of the plan: faults injected inside Standby on purpose."""

    objectives: Objectives = Objectives()
    schedule: list[ScheduledDrill] = Field(default_factory=list)
    # the notify channels a drill's incidents are told on, at once (no escalation); empty:
    # the plan's own escalation, every message marked "[DRILL]"
    channels: list[str] = Field(default_factory=list)
    # a drill's incidents are marked "[DRILL]" and never reach the public page, unless
    public: bool = False
    # after the fault ends, how long a drill waits for its incidents to resolve
    settle: Duration = 60.0
    max_duration: Duration = 3600.0  # the longest drill the admin API starts
