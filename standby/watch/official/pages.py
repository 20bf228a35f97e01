"""Which official page to read for a provider: the built-in pages of known vendors, and
the plan's ``status_page`` over them.

The vendor is recognised by the host of the provider's ``base_url`` (an
``openai-compatible`` provider at ``api.groq.com`` is Groq), and for Azure and Google by
the kind together with the host's domain (an Azure OpenAI resource has a host of its
own). A provider at any other host — a proxy, a local model, the simulator — has no
built-in page, whatever its kind: the vendor's page would not speak for it.

Each built-in page was checked against public material (see the table); only pages with
a machine-readable public endpoint are here:

    OpenAI      status.openai.com/api/v2/summary.json      incident.io, Statuspage v2 shape
    Anthropic   status.claude.com/api/v2/summary.json      Statuspage (status.anthropic.com
                                                           redirects there)
    Groq        groqstatus.com/api/v2/summary.json         Statuspage (status.groq.com
                                                           redirects there)
    Gemini      status.cloud.google.com/incidents.json     Google Cloud, product
                                                           "Vertex Gemini API"
    Azure       rssfeed.azure.status.microsoft/…/feed/     RSS, broad-impact issues only

Not built in: Mistral (status.mistral.ai is a Checkly page with no documented API),
OpenRouter (an OnlineOrNot page with no keyless API), Google AI Studio's own status page
(no documented feed). A plan can still name any page with ``status_page.url``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from standby.plan.alerts import StatusPage

Format = Literal["statuspage", "google-cloud", "feed"]
MIN_INTERVAL = 10.0  # seconds: a plan's shorter interval would hammer the vendor's page


@dataclass(frozen=True, slots=True)
class StatusPageSpec:
    """What to read for one provider: where, in which format, which components matter."""

    url: str
    format: Format
    components: tuple[str, ...] = ()  # the ones that matter; (): all
    vendor: str = ""  # who publishes it, for people ("OpenAI"); "" for a plan's own page
    page_url: str = ""  # the human page, for links
    interval: float = 60.0  # seconds between two polls


# OpenAI: the API components of the incident.io page (the 2026-07 summary lists Embeddings,
# Batch, Files, Fine-tuning, Realtime, Audio, Images, Moderations at top level; Chat
# Completions and Responses are listed on the page and in earlier summaries).
_OPENAI = StatusPageSpec(
    url="https://status.openai.com/api/v2/summary.json",
    format="statuspage",
    components=(
        "Chat Completions",
        "Responses",
        "Embeddings",
        "Batch",
        "Files",
        "Fine-tuning",
        "Realtime",
        "Audio",
        "Images",
        "Moderations",
    ),
    vendor="OpenAI",
    page_url="https://status.openai.com",
)
_ANTHROPIC = StatusPageSpec(
    url="https://status.claude.com/api/v2/summary.json",
    format="statuspage",
    components=("Claude API",),  # listed as "Claude API (api.anthropic.com)"
    vendor="Anthropic",
    page_url="https://status.claude.com",
)
_GROQ = StatusPageSpec(  # component names not confirmed: every component is watched
    url="https://groqstatus.com/api/v2/summary.json",
    format="statuspage",
    vendor="Groq",
    page_url="https://groqstatus.com",
)
_GOOGLE_CLOUD = StatusPageSpec(
    url="https://status.cloud.google.com/incidents.json",
    format="google-cloud",
    components=("Vertex Gemini API",),
    vendor="Google Cloud",
    page_url="https://status.cloud.google.com",
)
_AZURE = StatusPageSpec(  # the feed's categories are not stable names: read every entry
    url="https://rssfeed.azure.status.microsoft/en-us/status/feed/",
    format="feed",
    vendor="Microsoft Azure",
    page_url="https://azure.status.microsoft/en-us/status",
)

_BY_HOST = {
    "api.openai.com": _OPENAI,
    "api.anthropic.com": _ANTHROPIC,
    "api.groq.com": _GROQ,
    "generativelanguage.googleapis.com": _GOOGLE_CLOUD,  # the Gemini API
    "aiplatform.googleapis.com": _GOOGLE_CLOUD,  # Vertex AI, global endpoint
}


def builtin(kind: str, base_url: str) -> StatusPageSpec | None:
    """The known vendor's page for a provider of ``kind`` at ``base_url``, if any."""
    host = (urlsplit(base_url).hostname or "").lower().rstrip(".")
    spec = _BY_HOST.get(host)
    if spec is not None:
        return spec
    if host.endswith("-aiplatform.googleapis.com"):
        return _GOOGLE_CLOUD  # Vertex AI, regional endpoints
    if host.endswith((".openai.azure.com", ".services.ai.azure.com")) or (
        kind == "azure" and host.endswith(".azure.com")
    ):
        return _AZURE
    return None


def resolve(kind: str, base_url: str, page: StatusPage) -> StatusPageSpec | None:
    """The page to read for a provider, from its plan entry: ``enabled: false`` → none;
    ``url`` → that page; else the built-in one. The plan's ``components`` (when given)
    and ``interval`` (at least ``MIN_INTERVAL``) win over the built-in ones."""
    interval = max(page.interval, MIN_INTERVAL)
    if not page.enabled:
        return None
    if page.url:
        return StatusPageSpec(
            url=page.url,
            format=page.format,
            components=tuple(page.components),
            interval=interval,
        )
    spec = builtin(kind, base_url)
    if spec is None:
        return None
    return StatusPageSpec(
        url=spec.url,
        format=spec.format,
        components=tuple(page.components) or spec.components,
        vendor=spec.vendor,
        page_url=spec.page_url,
        interval=interval,
    )
