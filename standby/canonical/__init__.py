"""Records shared by the wires, the router and every provider adapter.

* ``transport`` — what moves through the attempt loop: ``Call``, ``Reply``, ``Chunk``,
  ``Deadlines``. The body inside is OpenAI-shaped: Standby's lingua franca on the wire.
* ``chat`` — the typed conversation model every vendor translator maps to and from:
  messages with text and image parts, tool calls and results, tools, response formats,
  sampling parameters, stream deltas, finish reasons and usage.
"""

from standby.canonical.transport import Call, Chunk, Deadlines, Endpoint, Reply, ToolCallDelta

__all__ = ["Call", "Chunk", "Deadlines", "Endpoint", "Reply", "ToolCallDelta"]
