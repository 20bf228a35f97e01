"""Gemini ``generateContent`` request JSON ↔ the canonical conversation.

Shapes follow Google's public Gemini API reference (``models.generateContent``,
``Content``, ``Part``, ``Tool``, ``ToolConfig``, ``GenerationConfig``).  Answers — whole
or streamed, both a ``GenerateContentResponse`` — live in ``gemini_stream``.

Mapping decisions, canonical → Gemini:

* system and developer messages → one ``systemInstruction``; user → ``user``; assistant →
  ``model``; tool results → ``functionResponse`` parts of a ``user`` turn.  Consecutive
  turns of one role are merged (parallel tool results must share one turn).
* A tool result must name its function, which OpenAI's does not: the name is found by
  scanning the earlier assistant tool calls for its ``tool_call_id`` (the latest wins).
  Its text becomes ``response``: the JSON object itself when the text is one, otherwise
  ``{"output": text}`` (the key Google's reference suggests for a function's output).
* Images: base64 → ``inlineData``; a URL → ``fileData.fileUri``.  Gemini reads only its
  Files API, Cloud Storage and a few public hosts: it cannot fetch arbitrary http(s)
  URLs, so such an image fails upstream with a 400 (a final, not retried, error).
* Tool schemas and JSON-schema response formats keep only ``SCHEMA_KEYS``, the OpenAPI
  subset of Gemini's ``Schema``: ``$ref`` into ``$defs``/``definitions`` is inlined,
  ``["T", "null"]`` and ``anyOf`` with ``null`` become ``nullable``, a string ``const`` a
  one-value ``enum``.  Dropped, because Gemini answers 400 to them: ``$schema``, ``$id``,
  ``additionalProperties``, ``patternProperties``, ``oneOf``/``allOf``/``not``,
  ``exclusiveMinimum``/``Maximum``, ``multipleOf``, ``uniqueItems``, ``examples``,
  ``default``, ``strict`` and any other key.
* Calls carried over from another vendor have no ``thoughtSignature``; Gemini 3 rejects
  such a function-call history, so the first call of each model turn carries the
  placeholder Google documents for histories Gemini did not produce.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import orjson

from standby.canonical.chat import (
    ChatRequest,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
)

SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "items",
        "minItems",
        "maxItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "anyOf",
        "propertyOrdering",
    }
)
_SHAPES: dict[str, type] = {
    "properties": dict,
    "items": dict,
    "anyOf": list,
    "required": list,
    "enum": list,
    "propertyOrdering": list,
}
SKIP_SIGNATURE = "skip_thought_signature_validator"
_CHOICE = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_PASSED = {
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}  # vendor-neutral leftovers Gemini takes


# -- schemas -------------------------------------------------------------------------------


def gemini_schema(
    schema: Any, defs: dict[str, Any] | None = None, depth: int = 0
) -> dict[str, Any]:
    """A JSON schema reduced to what Gemini's ``Schema`` accepts (see the module doc)."""
    if not isinstance(schema, dict):
        return {}
    if defs is None:
        defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        if not isinstance(target, dict) or depth >= 8:
            return {"type": "OBJECT"}  # unresolvable or recursive: an opaque object
        return gemini_schema(
            {**target, **{k: v for k, v in schema.items() if k != "$ref"}}, defs, depth + 1
        )
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in SCHEMA_KEYS or not issubclass(type(value), _SHAPES.get(key, object)):
            continue  # unknown to Gemini, or not the shape the key needs
        if key == "type":
            types = [
                t for t in (value if isinstance(value, list) else [value]) if isinstance(t, str)
            ]
            if "null" in types and len(types) > 1:
                out["nullable"] = True
            named = [t for t in types if t != "null"] or types
            if named:
                out["type"] = named[0].upper()
        elif key == "properties":
            if value:
                out[key] = {name: gemini_schema(sub, defs, depth) for name, sub in value.items()}
        elif key == "items":
            out[key] = gemini_schema(value, defs, depth)
        elif key == "anyOf":
            options = [v for v in value if not (isinstance(v, dict) and v.get("type") == "null")]
            if len(options) < len(value):
                out["nullable"] = True
            cleaned = [gemini_schema(v, defs, depth) for v in options]
            if len(cleaned) == 1:
                out.update(cleaned[0])
            elif cleaned:
                out[key] = cleaned
        elif key != "enum" or (value and all(isinstance(v, str) for v in value)):
            out[key] = value  # Gemini enums are strings only
    if isinstance(schema.get("const"), str):
        out.setdefault("enum", [schema["const"]])
    names = out.get("properties", {})
    required = [n for n in out.pop("required", []) if isinstance(n, str) and n in names]
    if required:  # Gemini rejects a required name that is not a property
        out["required"] = required
    return out


# -- canonical → Gemini ----------------------------------------------------------------------


def _part(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    if part.data is not None:
        return {"inlineData": {"mimeType": part.media_type or "image/png", "data": part.data}}
    data: dict[str, Any] = {"fileUri": part.url or ""}
    mime = part.media_type or mimetypes.guess_type(part.url or "")[0]
    if mime:
        data["mimeType"] = mime
    return {"fileData": data}


def arguments_object(text: str) -> dict[str, Any]:
    """A call's JSON arguments as the object Gemini's ``args`` must be."""
    try:
        value = orjson.loads(text) if text.strip() else {}
    except orjson.JSONDecodeError:
        return {"_raw": text}  # a malformed call still round-trips as something visible
    return value if isinstance(value, dict) else {"_raw": text}


def _result(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"output": text}


def _turn(message: Message, names: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "tool":
        call_id = message.tool_call_id or ""
        name = message.name or names.get(call_id) or call_id or "tool"
        return "user", [{"functionResponse": {"name": name, "response": _result(message.text)}}]
    parts = [_part(p) for p in message.parts if not (isinstance(p, TextPart) and not p.text)]
    for number, call in enumerate(message.tool_calls):
        names[call.id] = call.name
        part: dict[str, Any] = {
            "functionCall": {"name": call.name, "args": arguments_object(call.arguments)}
        }
        if number == 0:
            part["thoughtSignature"] = SKIP_SIGNATURE
        parts.append(part)
    return ("model" if message.role == "assistant" else "user"), parts


def _generation(request: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, value in (
        ("maxOutputTokens", request.max_tokens),
        ("temperature", request.temperature),
        ("topP", request.top_p),
    ):
        if value is not None:
            config[name] = value
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if request.n != 1:  # each candidate is a choice (streamed too: events carry its index)
        config["candidateCount"] = request.n
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.schema:
            config["responseSchema"] = gemini_schema(fmt.schema)
    config.update(
        {
            name: request.extra[key]
            for key, name in _PASSED.items()
            if request.extra.get(key) is not None
        }
    )
    return config


def _declaration(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description:
        out["description"] = tool.description
    parameters = gemini_schema(tool.parameters)
    if parameters.get("properties"):  # Gemini rejects an OBJECT without properties
        out["parameters"] = parameters
    return out


def request_to_gemini(request: ChatRequest) -> dict[str, Any]:
    """A ``generateContent`` body (the model goes in the URL, not the body)."""
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool-call id → function name, from earlier calls
    for message in request.messages:
        if message.role in ("system", "developer"):
            continue
        role, parts = _turn(message, names)
        if not parts:
            continue  # Gemini rejects a turn without parts
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    body: dict[str, Any] = {"contents": contents}
    if request.system_text:
        body["systemInstruction"] = {"parts": [{"text": request.system_text}]}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t) for t in request.tools]}]
        choice = request.tool_choice
        if choice:
            calling: dict[str, Any] = {"mode": _CHOICE.get(choice, "ANY")}
            if choice not in _CHOICE:
                calling["allowedFunctionNames"] = [choice]
            body["toolConfig"] = {"functionCallingConfig": calling}
    config = _generation(request)
    if config:
        body["generationConfig"] = config
    return body


# -- Gemini → canonical (a Gemini-speaking wire, the sim, round-trip tests) ----------------


def parts_from_gemini(parts: Any) -> tuple[list[Part], list[ToolCall], list[dict[str, Any]]]:
    """A turn's parts → its answer parts, its calls (ids ``call_<n>``) and its function
    responses.  Thought parts (``"thought": true``) are reasoning, not answer text."""
    out: list[Part] = []
    calls: list[ToolCall] = []
    results: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            out.append(TextPart(part["text"]))
        elif isinstance(inline := part.get("inlineData"), dict):
            out.append(ImagePart(data=inline.get("data"), media_type=inline.get("mimeType")))
        elif isinstance(file := part.get("fileData"), dict):
            out.append(ImagePart(url=file.get("fileUri"), media_type=file.get("mimeType")))
        elif isinstance(call := part.get("functionCall"), dict):
            calls.append(
                ToolCall(
                    f"call_{len(calls)}",
                    str(call.get("name") or ""),
                    orjson.dumps(call.get("args") or {}).decode(),
                )
            )
        elif isinstance(part.get("functionResponse"), dict):
            results.append(part["functionResponse"])
    return out, calls, results


def _result_text(response: Any) -> str:
    output = response.get("output") if isinstance(response, dict) and len(response) == 1 else None
    return output if isinstance(output, str) else orjson.dumps(response).decode()


def request_from_gemini(body: dict[str, Any], *, model: str = "") -> ChatRequest:
    """A ``generateContent`` body → canonical; tool calls get ids ``call_<turn>_<n>``."""
    messages: list[Message] = []
    system = body.get("systemInstruction")
    if isinstance(system, dict):
        text = "".join(
            str(p.get("text") or "") for p in system.get("parts") or [] if isinstance(p, dict)
        )
        messages.append(Message("system", (TextPart(text),)))
    pending: dict[str, list[str]] = {}  # function name → ids of calls not yet answered
    for turn, content in enumerate(body.get("contents") or []):
        if not isinstance(content, dict):
            continue
        parts, calls, results = parts_from_gemini(content.get("parts"))
        for result in results:
            name = str(result.get("name") or "")
            ids = pending.get(name) or [""]
            messages.append(
                Message(
                    "tool",
                    (TextPart(_result_text(result.get("response"))),),
                    tool_call_id=ids.pop(0),
                    name=name,
                )
            )
        calls = [ToolCall(f"call_{turn}_{n}", c.name, c.arguments) for n, c in enumerate(calls)]
        for call in calls:
            pending.setdefault(call.name, []).append(call.id)
        if content.get("role") == "model":
            messages.append(Message("assistant", tuple(parts), tuple(calls)))
        elif parts:
            messages.append(Message("user", tuple(parts)))
    config = body.get("generationConfig") or {}
    schema = config.get("responseSchema")
    fmt = (
        None
        if config.get("responseMimeType") != "application/json"
        else (
            ResponseFormat("json_schema", schema=schema)
            if schema
            else ResponseFormat("json_object")
        )
    )
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        tools=tuple(
            Tool(
                str(d.get("name") or ""), str(d.get("description") or ""), d.get("parameters") or {}
            )
            for t in body.get("tools") or []
            if isinstance(t, dict)
            for d in t.get("functionDeclarations") or []
            if isinstance(d, dict)
        ),
        tool_choice=_choice_from_gemini(body.get("toolConfig")),
        response_format=fmt,
        temperature=config.get("temperature"),
        top_p=config.get("topP"),
        max_tokens=config.get("maxOutputTokens"),
        stop=tuple(config.get("stopSequences") or ()),
        n=int(config.get("candidateCount") or 1),
    )


def _choice_from_gemini(raw: Any) -> str | None:
    calling = raw.get("functionCallingConfig") if isinstance(raw, dict) else None
    if not isinstance(calling, dict):
        return None
    allowed = calling.get("allowedFunctionNames") or []
    if calling.get("mode") == "ANY" and len(allowed) == 1:
        return str(allowed[0])
    return {"AUTO": "auto", "NONE": "none", "ANY": "required"}.get(str(calling.get("mode")))
