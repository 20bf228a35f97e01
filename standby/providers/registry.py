"""Provider kinds → adapter classes. A new kind is one adapter file plus one line here."""

from __future__ import annotations

from collections.abc import Callable

from standby.plan.model import ProviderConfig
from standby.providers.anthropic import AnthropicProvider
from standby.providers.base import Provider
from standby.providers.gemini import GeminiProvider
from standby.providers.openai import AzureOpenAIProvider, OpenAIProvider

KINDS: dict[str, Callable[[str, ProviderConfig], Provider]] = {
    "openai": OpenAIProvider,
    "openai-compatible": OpenAIProvider,
    "azure": AzureOpenAIProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
}


def build_provider(name: str, config: ProviderConfig) -> Provider:
    return KINDS[config.kind](name, config)
