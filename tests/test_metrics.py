"""Metrics: each event shows up in the exposition, in a registry of its own."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from standby.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_render_contains_each_series_after_calls() -> None:
    metrics = Metrics()
    metrics.request_done("chat", "ok", 1.2)
    metrics.request_done("chat", "ok", 0.3)
    metrics.attempt_done("openai/gpt-4o", "server_error", 0.02)
    metrics.failover("chat")
    metrics.continuation("chat", "ok")
    metrics.first_token("chat", 0.4)
    metrics.breaker_state("openai/gpt-4o", "open")
    got = samples(metrics)
    assert got[("standby_requests_total", (("outcome", "ok"), ("route", "chat")))] == 2
    assert (
        got[("standby_attempts_total", (("outcome", "server_error"), ("target", "openai/gpt-4o")))]
        == 1
    )
    assert got[("standby_failovers_total", (("route", "chat"),))] == 1
    assert got[("standby_stream_continuations_total", (("outcome", "ok"), ("route", "chat")))] == 1
    assert got[("standby_breaker_state", (("target", "openai/gpt-4o"),))] == 2
    assert got[("standby_request_seconds_count", (("route", "chat"),))] == 2
    assert got[("standby_request_seconds_bucket", (("le", "0.5"), ("route", "chat")))] == 1
    assert got[("standby_time_to_first_token_seconds_sum", (("route", "chat"),))] == 0.4
    assert (
        got[("standby_upstream_seconds_bucket", (("le", "0.025"), ("target", "openai/gpt-4o")))]
        == 1
    )
    top = ("standby_upstream_seconds_bucket", (("le", "120.0"), ("target", "openai/gpt-4o")))
    assert top in got


def test_breaker_state_moves_and_instances_are_independent() -> None:
    first, second = Metrics(), Metrics()
    first.breaker_state("a/m", "half_open")
    first.breaker_state("a/m", "closed")
    assert samples(first)[("standby_breaker_state", (("target", "a/m"),))] == 0
    assert not any(name == "standby_breaker_state" for name, _ in samples(second))


def test_series_per_metric_are_bounded() -> None:
    """Targets made from asked names (``openai/{model}``) cannot grow the metrics forever."""
    from standby.metrics import MAX_SERIES, OVERFLOW, Metrics

    metrics = Metrics()
    for n in range(MAX_SERIES + 500):
        metrics.attempt_done(f"sim/model-{n}", "ok", 0.01)
    text = metrics.render()[0].decode()
    series = [line for line in text.splitlines() if line.startswith("standby_attempts_total{")]
    assert len(series) == MAX_SERIES + 1
    assert f'standby_attempts_total{{outcome="ok",target="{OVERFLOW}"}} 500.0' in text
