"""What a vendor wire of the sim needs from the sim that serves it.

The Anthropic and Gemini wires (``anthropic_wire``, ``gemini_wire``) share one sim's
faults, records and settings; they see it through this protocol, so they never import
the server that mounts them.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from standby.sim.faults import Fault, Holds, Shape


class SimHost(Protocol):
    """The sim a wire answers for (``standby.sim.server.SimProvider``)."""

    words: int  # words per canned answer
    overlap: int  # characters of the prefix a continuation repeats
    chunk_delay: float  # seconds between streamed pieces
    accepts_prefill: bool  # whether a trailing assistant message is continued
    holds: Holds  # connections held by the silent and stall faults

    def select(self, request: web.Request, body: dict[str, Any], shape: Shape) -> Fault:
        """This request's fault, recorded like every request the sim sees."""
        ...

    def next_id(self) -> str:
        """A fresh id for an answer."""
        ...
