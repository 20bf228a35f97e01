"""Standby keeps a business's AI features answering when an LLM provider goes down."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("standby")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
