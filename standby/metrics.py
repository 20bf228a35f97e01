"""Prometheus metrics of the gateway, in a registry of their own.

:class:`Metrics` owns its ``CollectorRegistry`` (never the process-global one), so
several gateways, or several tests, can live in one process. Its methods are named by
what happened and sit on the request hot path: each keeps the labelled children it has
already made in a dict, so a call is one dict lookup and one increment. Label values
come from the plan (routes, targets) and from a fixed outcome vocabulary, so the
number of series stays bounded.
"""

from __future__ import annotations

from typing import TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# LLM latencies: a gateway overhead of milliseconds up to long generations of minutes.
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
)

BREAKER_STATES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}

Labels = tuple[str, ...]
M = TypeVar("M", Counter, Gauge, Histogram)


# Series per metric at most.  Routes and outcomes are few, but a route that passes the
# asked model through (``openai/{model}``) makes a target per name a client sends: past
# the bound, new targets share one series whose first label is OVERFLOW.
MAX_SERIES = 1000
OVERFLOW = "(other)"


def _child(cache: dict[Labels, M], metric: M, *labels: str) -> M:
    """The labelled child of ``metric``, made once and then served from ``cache``."""
    child = cache.get(labels)
    if child is None:
        if len(cache) >= MAX_SERIES:
            labels = (OVERFLOW, *labels[1:])
            child = cache.get(labels)
            if child is not None:
                return child
        child = cache[labels] = metric.labels(*labels)
    return child


class Metrics:
    """Counters, gauges and histograms of one gateway."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._requests = Counter(
            "standby_requests",
            "Client requests, by final outcome.",
            ["route", "outcome"],
            registry=r,
        )
        self._attempts = Counter(
            "standby_attempts",
            "Attempts at a target, by outcome.",
            ["target", "outcome"],
            registry=r,
        )
        self._failovers = Counter(
            "standby_failovers", "Moves of a request to another target.", ["route"], registry=r
        )
        self._continuations = Counter(
            "standby_stream_continuations",
            "Broken streams continued on another target, by outcome.",
            ["route", "outcome"],
            registry=r,
        )
        self._breaker = Gauge(
            "standby_breaker_state",
            "Breaker state of a target: 0 closed, 1 half-open, 2 open.",
            ["target"],
            registry=r,
        )
        self._request_seconds = Histogram(
            "standby_request_seconds",
            "Whole request time, as the client saw it.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._ttft_seconds = Histogram(
            "standby_time_to_first_token_seconds",
            "Time to the first content token sent.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._upstream_seconds = Histogram(
            "standby_upstream_seconds",
            "Time of one attempt at a target.",
            ["target"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._client_requests = Counter(
            "standby_client_requests",
            "Requests of each named client (a client key of the plan), by HTTP status.",
            ["client", "status"],
            registry=r,
        )
        self._client_requests_by: dict[Labels, Counter] = {}
        self._requests_by: dict[Labels, Counter] = {}
        self._attempts_by: dict[Labels, Counter] = {}
        self._failovers_by: dict[Labels, Counter] = {}
        self._continuations_by: dict[Labels, Counter] = {}
        self._breaker_by: dict[Labels, Gauge] = {}
        self._request_seconds_by: dict[Labels, Histogram] = {}
        self._ttft_seconds_by: dict[Labels, Histogram] = {}
        self._upstream_seconds_by: dict[Labels, Histogram] = {}

    def client_request(self, client: str, status: int) -> None:
        """A request of the named ``client`` was answered with ``status``."""
        _child(self._client_requests_by, self._client_requests, client, str(status)).inc()

    def request_done(self, route: str, outcome: str, seconds: float) -> None:
        """A client request finished with ``outcome`` after ``seconds``."""
        _child(self._requests_by, self._requests, route, outcome).inc()
        _child(self._request_seconds_by, self._request_seconds, route).observe(seconds)

    def attempt_done(self, target: str, outcome: str, seconds: float) -> None:
        """One attempt at ``target`` ended with ``outcome`` after ``seconds``."""
        _child(self._attempts_by, self._attempts, target, outcome).inc()
        _child(self._upstream_seconds_by, self._upstream_seconds, target).observe(seconds)

    def failover(self, route: str) -> None:
        """A request of ``route`` moved on to another target."""
        _child(self._failovers_by, self._failovers, route).inc()

    def continuation(self, route: str, outcome: str) -> None:
        """A broken stream of ``route`` was continued (or not: ``outcome`` says)."""
        _child(self._continuations_by, self._continuations, route, outcome).inc()

    def first_token(self, route: str, seconds: float) -> None:
        """The first content token of a ``route`` request reached the client."""
        _child(self._ttft_seconds_by, self._ttft_seconds, route).observe(seconds)

    def breaker_state(self, target: str, state: str) -> None:
        """``target``'s breaker is now ``closed``, ``half_open`` or ``open``."""
        _child(self._breaker_by, self._breaker, target).set(BREAKER_STATES[state])

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type, for ``GET /metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def __repr__(self) -> str:
        return f"<Metrics requests={len(self._requests_by)} attempts={len(self._attempts_by)}>"
