"""Which page a provider gets: built-in by vendor host, overridden by the plan."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from standby.plan.alerts import StatusPage
from standby.plan.model import ProviderConfig
from standby.watch.official import builtin, resolve


@pytest.mark.parametrize(
    ("kind", "base_url", "vendor", "url"),
    [
        (
            "openai",
            "https://api.openai.com/v1",
            "OpenAI",
            "https://status.openai.com/api/v2/summary.json",
        ),
        (
            "anthropic",
            "https://api.anthropic.com",
            "Anthropic",
            "https://status.claude.com/api/v2/summary.json",
        ),
        (
            "openai-compatible",
            "https://api.groq.com/openai/v1",
            "Groq",
            "https://groqstatus.com/api/v2/summary.json",
        ),
        (
            "openai-compatible",
            "https://API.GROQ.COM./openai/v1",
            "Groq",
            "https://groqstatus.com/api/v2/summary.json",
        ),
        (
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta",
            "Google Cloud",
            "https://status.cloud.google.com/incidents.json",
        ),
        (
            "openai-compatible",
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/endpoints/openapi",
            "Google Cloud",
            "https://status.cloud.google.com/incidents.json",
        ),
        (
            "azure",
            "https://myres.openai.azure.com",
            "Microsoft Azure",
            "https://rssfeed.azure.status.microsoft/en-us/status/feed/",
        ),
        (
            "openai",
            "https://myres.openai.azure.com/openai/v1",
            "Microsoft Azure",
            "https://rssfeed.azure.status.microsoft/en-us/status/feed/",
        ),
        (
            "azure",
            "https://myres.cognitiveservices.azure.com",
            "Microsoft Azure",
            "https://rssfeed.azure.status.microsoft/en-us/status/feed/",
        ),
    ],
)
def test_known_vendors(kind: str, base_url: str, vendor: str, url: str) -> None:
    spec = builtin(kind, base_url)
    assert spec is not None and spec.vendor == vendor and spec.url == url


@pytest.mark.parametrize(
    ("kind", "base_url"),
    [
        ("openai", "http://127.0.0.1:8000/v1"),  # the kind alone is not the vendor
        ("anthropic", "https://llm-proxy.example.com"),
        ("openai-compatible", "https://api.mistral.ai/v1"),  # no documented status API
        ("openai-compatible", "https://openrouter.ai/api/v1"),  # no keyless status API
        ("openai", "https://evil.com/api.openai.com"),
        ("openai-compatible", "https://api.openai.com.example.net/v1"),
    ],
)
def test_unknown_hosts_have_no_builtin_page(kind: str, base_url: str) -> None:
    assert builtin(kind, base_url) is None


def test_openai_watches_its_api_components() -> None:
    spec = builtin("openai", "https://api.openai.com/v1")
    assert spec is not None and spec.format == "statuspage"
    assert {"Chat Completions", "Responses", "Embeddings"} <= set(spec.components)


def test_the_plan_turns_a_page_off() -> None:
    assert resolve("openai", "https://api.openai.com/v1", StatusPage(enabled=False)) is None


def test_the_plan_names_its_own_page() -> None:
    page = StatusPage(
        url="https://status.mistral.ai/feed.rss",
        format="feed",
        components=["API"],
        interval=120.0,
    )
    spec = resolve("openai-compatible", "https://api.mistral.ai/v1", page)
    assert spec is not None
    assert (spec.url, spec.format, spec.components, spec.interval) == (
        "https://status.mistral.ai/feed.rss",
        "feed",
        ("API",),
        120.0,
    )


def test_the_plan_narrows_a_builtin_page() -> None:
    provider = ProviderConfig(
        kind="anthropic",
        base_url="https://api.anthropic.com",
        status_page=StatusPage(components=["Claude Code"], interval="5m"),
    )
    spec = resolve(provider.kind, provider.base_url, provider.status_page)
    assert spec is not None and spec.vendor == "Anthropic"
    assert spec.components == ("Claude Code",) and spec.interval == 300.0


def test_the_builtin_components_stay_when_the_plan_names_none() -> None:
    spec = resolve("openai", "https://api.openai.com/v1", StatusPage())
    assert spec is not None and "Chat Completions" in spec.components and spec.interval == 60.0


def test_no_page_for_an_unknown_host_without_a_url() -> None:
    assert resolve("openai", "http://localhost:9000/v1", StatusPage()) is None


def test_an_interval_shorter_than_ten_seconds_is_refused_by_the_plan() -> None:
    with pytest.raises(ValidationError, match="at most every 10s"):
        StatusPage(interval=0.0)
    spec = resolve("openai", "https://api.openai.com/v1", StatusPage(interval=10.0))
    assert spec is not None and spec.interval == 10.0
