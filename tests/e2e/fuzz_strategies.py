"""Hypothesis strategies for fuzzing a running gateway over HTTP (``test_fuzz``).

Three families:

* *bodies*: structurally valid requests of each wire (chat completions, embeddings,
  Anthropic Messages, Responses), then ``mutated``: a few fields replaced by junk of the wrong type,
  huge or negative numbers, odd unicode, nested junk, deleted, emptied or wrapped, and
  extra keys added;
* *bytes*: how a body goes on the wire (``encodings``: lone surrogates escaped in JSON,
  raw invalid UTF-8, ``NaN`` tokens, ints past 64 bits) and raw bodies that are not JSON
  at all, with odd content types;
* *URLs*: query strings and completion ids as raw, already percent-encoded bytes (long,
  unicode, path-like, invalid escapes), sent as they are.

Every strategy is bounded in size: a body stays under a few hundred KiB.
"""

from __future__ import annotations

import copy
import gzip
import json
from typing import Any
from urllib.parse import quote

import orjson
from hypothesis import strategies as st

Json = Any

# -- text and scalars ----------------------------------------------------------------------


def mostly(usual: st.SearchStrategy[Any], unusual: st.SearchStrategy[Any], odds: int = 4) -> Any:
    """``usual`` about ``odds`` times in ``odds + 1``, otherwise ``unusual``.

    ``a | b`` would pick each branch of both (flattened) ``one_of``s alike, so a strategy
    of many junk branches would drown the valid one.
    """
    return st.integers(0, odds).flatmap(lambda n: unusual if n == odds else usual)


SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
ODD_PIECES = [
    "",
    " ",
    "\x00",
    "\r\n",
    "\t",
    "\u202e",  # right-to-left override
    "\ufeff",  # byte order mark
    "\u200b",  # zero width space
    "\U0001f600",
    "e\u0301",  # combining accent
    "\uffff",
    "\U0010ffff",
    "\U0001d573\U0001d58a\U0001d591",  # mathematical fraktur letters
    "日本語",
    "../",
    "..",
    "%00",
    "%2F",
    "${HOME}",
    "{model}",
    "\\",
    '"',
    "'; DROP TABLE requests; --",
    "<script>",
    "data: [DONE]\n\n",
    "null",
]

# long strings, without hypothesis building them character by character
long_text = st.tuples(
    st.sampled_from(["x", "é", "日", "\U0001f600", "a b "]), st.integers(1, 20_000)
).map(lambda pair: pair[0] * pair[1])
odd_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=20),
    st.lists(
        st.sampled_from(ODD_PIECES) | st.text(SURROGATES, min_size=1, max_size=2), max_size=5
    ).map("".join),
)
odd_numbers = st.one_of(
    st.integers(-(2**31), 2**31),
    st.sampled_from(
        [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**30)]
    ),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([-0.0, 5e-324, 1e308, -1e308, 0.5, 1.5, -0.5]),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),  # NaN tokens, or null
)
scalars = st.one_of(st.none(), st.booleans(), odd_numbers, odd_text)
junk: st.SearchStrategy[Json] = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
    max_leaves=12,
)
# a few levels deeper than any handler looks
deep_junk = st.integers(1, 300).map(lambda n: json.loads("[" * n + "]" * n))
metadata = mostly(
    st.dictionaries(st.sampled_from(["team", "env"]), st.sampled_from(["alpha", "beta"])),
    st.dictionaries(st.text(max_size=70), st.text(max_size=600) | scalars, max_size=18),
    odds=2,
)

# -- chat completions ----------------------------------------------------------------------

ROUTES = ["fuzz-openai", "fuzz-claude", "fuzz-gemini", "fuzz-small", "fuzz-clamped"]
GLOBS = ["pass-", "claude-pass-", "gemini-pass-"]  # routes sending the asked name on
models = st.one_of(
    st.tuples(st.sampled_from(GLOBS), odd_text).map("".join),
    odd_text,
    scalars,
)
short_text = st.text(max_size=30)
image_urls = st.sampled_from(
    [
        "https://img.example/cat.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "data:;base64,",
        "data:image/png;base64",
        "file:///etc/passwd",
        "",
    ]
)
chat_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": short_text}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.fixed_dictionaries(
                {"url": image_urls}, optional={"detail": st.sampled_from(["low", "high", "x"])}
            )
            | image_urls,
        }
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["input_audio", "file", "refusal", "input_text"])},
        optional={"text": short_text, "input_audio": junk},
    ),
)
chat_content = st.one_of(short_text, st.lists(chat_part, max_size=3), st.none())
tool_call = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"call_[a-z0-9]{1,8}", fullmatch=True),
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {
                "name": st.sampled_from(["get_weather", "f", ""]),
                "arguments": st.sampled_from(['{"city": "Paris"}', "", "{", "[]", "null"]),
            }
        ),
    }
)
chat_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "system", "developer", "assistant", "tool", "function"]),
        "content": chat_content,
    },
    optional={
        "name": short_text,
        "tool_calls": st.lists(tool_call, max_size=2),
        "tool_call_id": st.from_regex(r"call_[a-z0-9]{1,8}", fullmatch=True),
        "function_call": st.fixed_dictionaries({"name": short_text, "arguments": short_text}),
    },
)
function_tool = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": st.sampled_from(["get_weather", "search"])},
            optional={
                "description": short_text,
                "parameters": st.just({"type": "object", "properties": {}}) | junk,
                "strict": st.booleans(),
            },
        ),
    }
)
response_format = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object"])}),
    st.fixed_dictionaries(
        {
            "type": st.just("json_schema"),
            "json_schema": st.fixed_dictionaries(
                {"name": st.just("answer"), "schema": st.just({"type": "object"}) | junk},
                optional={"strict": st.booleans()},
            ),
        }
    ),
)
chat_bodies = st.fixed_dictionaries(
    {
        "model": mostly(st.sampled_from(ROUTES), models),
        "messages": st.lists(chat_message, min_size=1, max_size=4),
    },
    optional={
        "stream": st.booleans(),
        "store": st.just(True) | st.booleans(),
        "metadata": metadata,
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "temperature": st.floats(0, 2) | odd_numbers,
        "top_p": st.floats(0, 1),
        "max_tokens": st.integers(1, 4096) | odd_numbers,
        "max_completion_tokens": st.integers(1, 4096),
        "n": st.integers(1, 3),
        "stop": short_text | st.lists(short_text, max_size=4),
        "tools": st.lists(function_tool, max_size=2),
        "functions": st.lists(junk, max_size=2),
        "tool_choice": st.sampled_from(["auto", "none", "required"])
        | st.just({"type": "function", "function": {"name": "get_weather"}}),
        "parallel_tool_calls": st.booleans(),
        "response_format": response_format,
        "user": short_text,
        "seed": odd_numbers,
        "logprobs": st.booleans(),
        "reasoning_effort": st.sampled_from(["low", "high", "x"]),
    },
)

embedding_bodies = st.fixed_dictionaries(
    {
        "model": mostly(st.sampled_from(ROUTES), models),
        "input": short_text
        | st.lists(short_text, min_size=1, max_size=3)
        | st.lists(st.integers(0, 50_000), min_size=1, max_size=5),
    },
    optional={
        "encoding_format": st.sampled_from(["float", "base64", "x"]),
        "dimensions": st.integers(1, 3072) | odd_numbers,
        "user": short_text,
    },
)

# -- Anthropic Messages ----------------------------------------------------------------------

anthropic_block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": short_text}),
    st.fixed_dictionaries(
        {
            "type": st.just("image"),
            "source": st.one_of(
                st.fixed_dictionaries(
                    {
                        "type": st.just("base64"),
                        "media_type": st.sampled_from(["image/png", "x", ""]),
                        "data": st.sampled_from(["iVBORw0KGgo=", "", "!!"]),
                    }
                ),
                st.fixed_dictionaries({"type": st.just("url"), "url": image_urls}),
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("tool_use"),
            "id": st.from_regex(r"toolu_[a-z0-9]{1,8}", fullmatch=True),
            "name": st.sampled_from(["get_weather", ""]),
            "input": st.just({"city": "Paris"}) | junk,
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("tool_result"),
            "tool_use_id": st.from_regex(r"toolu_[a-z0-9]{1,8}", fullmatch=True),
        },
        optional={
            "content": short_text
            | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": short_text})),
            "is_error": st.booleans(),
        },
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["thinking", "document", "redacted_thinking", "server_tool_use"])},
        optional={"thinking": short_text, "signature": short_text, "source": junk},
    ),
)
anthropic_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant"]),
        "content": short_text | st.lists(anthropic_block, max_size=3),
    }
)
anthropic_tool = st.fixed_dictionaries(
    {"name": st.sampled_from(["get_weather", "search"])},
    optional={
        "description": short_text,
        "input_schema": st.just({"type": "object"}) | junk,
        "type": st.sampled_from(["custom", "bash_20250124"]),
    },
)
anthropic_bodies = st.fixed_dictionaries(
    {
        "model": mostly(st.sampled_from(ROUTES), models),
        "max_tokens": st.integers(1, 4096),
        "messages": st.lists(anthropic_message, min_size=1, max_size=4),
    },
    optional={
        "stream": st.booleans(),
        "system": short_text
        | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": short_text})),
        "tools": st.lists(anthropic_tool, max_size=2),
        "tool_choice": st.fixed_dictionaries(
            {"type": st.sampled_from(["auto", "any", "tool", "none"])},
            optional={"name": short_text, "disable_parallel_tool_use": st.booleans()},
        ),
        "temperature": st.floats(0, 1) | odd_numbers,
        "top_p": st.floats(0, 1),
        "top_k": st.integers(0, 500),
        "stop_sequences": st.lists(short_text, max_size=3),
        "metadata": st.fixed_dictionaries({"user_id": short_text}) | metadata,
        "thinking": st.fixed_dictionaries(
            {"type": st.just("enabled"), "budget_tokens": st.integers(0, 5000)}
        ),
    },
)

# -- Responses -----------------------------------------------------------------------------

responses_part = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["input_text", "output_text", "text"]), "text": short_text}
    ),
    st.fixed_dictionaries(
        {"type": st.just("input_image"), "image_url": image_urls},
        optional={"detail": st.sampled_from(["low", "auto"])},
    ),
    st.fixed_dictionaries({"type": st.just("refusal"), "refusal": short_text}),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["input_file", "input_audio"])}, optional={"file_id": short_text}
    ),
)
responses_item = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "system", "developer"]),
            "content": short_text | st.lists(responses_part, max_size=3),
        },
        optional={"type": st.just("message")},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("function_call"),
            "call_id": st.from_regex(r"call_[a-z0-9]{1,8}", fullmatch=True),
            "name": st.sampled_from(["get_weather", ""]),
            "arguments": st.sampled_from(['{"city": "Paris"}', "", "{"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("function_call_output"),
            "call_id": st.from_regex(r"call_[a-z0-9]{1,8}", fullmatch=True),
            "output": short_text | st.lists(responses_part, max_size=2),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["reasoning", "web_search_call", "item_reference"])},
        optional={"id": short_text, "summary": junk},
    ),
)
responses_tool = st.fixed_dictionaries(
    {"type": st.sampled_from(["function", "function", "web_search", "file_search"])},
    optional={
        "name": st.sampled_from(["get_weather", "search"]),
        "parameters": st.just({"type": "object"}) | junk,
        "strict": st.booleans(),
        "description": short_text,
    },
)
responses_bodies = st.fixed_dictionaries(
    {
        "model": mostly(st.sampled_from(ROUTES), models),
        "input": short_text.filter(bool) | st.lists(responses_item, min_size=1, max_size=4),
    },
    optional={
        "stream": st.booleans(),
        "store": st.booleans(),
        "instructions": short_text,
        "tools": st.lists(responses_tool, max_size=2),
        "tool_choice": st.sampled_from(["auto", "none", "required"])
        | st.fixed_dictionaries({"type": st.just("function"), "name": short_text})
        | st.fixed_dictionaries({"type": st.just("allowed_tools"), "mode": short_text}),
        "text": st.fixed_dictionaries(
            {
                "format": st.fixed_dictionaries(
                    {"type": st.sampled_from(["text", "json_object", "json_schema"])},
                    optional={"name": short_text, "schema": junk, "strict": st.booleans()},
                )
            }
        ),
        "max_output_tokens": st.integers(1, 4096) | odd_numbers,
        "temperature": st.floats(0, 2),
        "metadata": metadata,
        "parallel_tool_calls": st.booleans(),
        "reasoning": st.fixed_dictionaries({"effort": st.sampled_from(["low", "high", ""])}),
        "previous_response_id": st.sampled_from(["resp_missing", "", "resp_"]) | odd_text,
        "truncation": st.sampled_from(["auto", "disabled"]),
    },
)

# -- mutation ------------------------------------------------------------------------------

EMPTIES: list[Json] = [[], {}, "", None, 0, -1, False, [[]], [{}], {"": None}]


def _slots(value: Json, out: list[tuple[Any, Any]]) -> None:
    """Every ``(container, key)`` inside ``value``, depth first."""
    if isinstance(value, dict):
        for key in list(value):
            out.append((value, key))
            _slots(value[key], out)
    elif isinstance(value, list):
        for index in range(len(value)):
            out.append((value, index))
            _slots(value[index], out)


def _dicts(value: Json) -> list[dict[str, Any]]:
    found = [value] if isinstance(value, dict) else []
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    )
    for child in children:
        found.extend(_dicts(child))
    return found


@st.composite
def mutated(draw: st.DrawFn, bodies: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A body of ``bodies`` with zero to three of its fields broken."""
    # copies: a strategy like st.just({...}) hands out the same object every time
    body = copy.deepcopy(draw(bodies))
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2, 3]))):
        slots: list[tuple[Any, Any]] = []
        _slots(body, slots)
        op = draw(
            st.sampled_from(["junk", "delete", "extra", "empty", "wrap", "retype", "deep", "long"])
        )
        if op == "extra" or not slots:
            target = draw(st.sampled_from(_dicts(body)))
            key = draw(odd_text | st.sampled_from(["model", "messages", "stream", "id"]))
            target[key] = draw(junk)
            continue
        container, key = draw(st.sampled_from(slots))
        value = container[key]
        if op == "delete":
            del container[key]
        elif op == "junk":
            container[key] = draw(junk)
        elif op == "empty":
            container[key] = copy.deepcopy(draw(st.sampled_from(EMPTIES)))
        elif op == "wrap":
            container[key] = draw(st.sampled_from([[value], {"value": value}, [value, value]]))
        elif op == "deep":
            container[key] = draw(deep_junk)
        elif op == "long":
            container[key] = draw(long_text)
        else:  # the same value as another JSON type
            container[key] = draw(
                st.sampled_from(
                    [str(value), value is not None, [str(value)], 1 if value else 0, 1.5]
                )
            )
    return body


# -- encodings -----------------------------------------------------------------------------


def _json_ascii(body: Json) -> bytes:
    """Standard JSON, every non-ASCII character escaped: lone surrogates as ``\\udXXX``."""
    return json.dumps(body, ensure_ascii=True, allow_nan=True).encode()


def _json_raw(body: Json) -> bytes:
    """Non-ASCII characters as their UTF-8 bytes; a lone surrogate becomes invalid UTF-8."""
    return json.dumps(body, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


def _orjson(body: Json) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:  # a surrogate or an int past 64 bits: standard JSON
        return _json_ascii(body)


ENCODERS = {"orjson": _orjson, "ascii": _json_ascii, "raw": _json_raw}
encodings = st.sampled_from(["orjson", "orjson", "ascii", "raw"])


def encode(body: Json, encoding: str) -> bytes:
    """``body`` as bytes, the way ``encoding`` (a key of ``ENCODERS``) writes it."""
    return ENCODERS[encoding](body)


# -- raw bodies, content types, headers ----------------------------------------------------

_FIXED_RAW = [
    b"",
    b"null",
    b"[]",
    b"1",
    b'"model"',
    b"{}",
    b"\xef\xbb\xbf{}",  # a byte order mark
    b"{" * 2000,
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000 + b"1" + b"}" * 3000,
    b"NaN",
    b'{"model": NaN, "messages": Infinity}',
    b'{"model": "fuzz-openai", "model": 1}',
    b'{"model": "fuzz-openai", "messages": [{"role": "user", "content": "\\ud800"}]}',
    b'{"model": "fuzz-openai", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
    b'{"model": "fuzz-openai", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
    b"\x00" * 16,
    b'{"model": "fuzz-openai"',
    b"model=fuzz-openai&messages=hi",
    b"--x\r\nContent-Disposition: form-data; name=model\r\n\r\nfuzz-openai\r\n--x--\r\n",
    '{"model": "fuzz-openai", "messages": []}'.encode("utf-16"),
    gzip.compress(b'{"model": "fuzz-openai", "messages": [{"role": "user", "content": "hi"}]}'),
    b" " * 70_000,  # past the plan's max_body
]


@st.composite
def raw_bodies(draw: st.DrawFn) -> bytes:
    """Bytes that are not (quite) a JSON object."""
    kind = draw(st.sampled_from(["fixed", "binary", "truncated", "trailing"]))
    if kind == "fixed":
        return draw(st.sampled_from(_FIXED_RAW))
    if kind == "binary":
        return draw(st.binary(max_size=300))
    valid = encode(draw(chat_bodies), "orjson")
    if kind == "truncated":
        return valid[: draw(st.integers(0, max(0, len(valid) - 1)))]
    return valid + draw(st.sampled_from([b"x", b",", b"}", b"\x00", b"\n{}", b" " * 10]))


content_types = st.sampled_from(
    [
        None,
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/event-stream",
        "",
        "*/*",
        "application/json\u00e9",
    ]
)
_header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60
).map(str.strip)  # the client refuses to send a value with surrounding whitespace
extra_headers = st.dictionaries(
    st.sampled_from(
        [
            "authorization",
            "x-api-key",
            "anthropic-version",
            "anthropic-beta",
            "openai-organization",
            "standby-defer",
            "standby-callback-url",
            "x-request-id",
            "accept",
            "accept-encoding",
            "content-encoding",
        ]
    ),
    _header_text,
    max_size=3,
)

# -- URLs ----------------------------------------------------------------------------------

_RAW_ESCAPES = ["%", "%Z", "%ZZ", "%00", "%ED%A0%80", "%FF", "%C0%AF", "%2e%2e%2f", "%25", "+"]


def pct(text: str, safe: str = "") -> str:
    """``text`` percent-encoded as UTF-8, lone surrogates written as their raw bytes."""
    return quote(text.encode("utf-8", "surrogatepass"), safe=safe)


query_values = st.one_of(
    odd_text.map(pct),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(
        ["", "1", "20", "100", "101", "0", "-1", "1e3", "%205", "5%20", "%D9%A3", "1_0", "0x10"]
    ),
    st.sampled_from(["asc", "desc", "ASC", "random"]),
    st.sampled_from(_RAW_ESCAPES),
)
query_keys = st.one_of(
    st.sampled_from(["limit", "order", "after", "model", "metadata", "metadata[]"]),
    st.sampled_from(["metadata[team]", "metadata[env]", "metadata[[x]]", "metadata[a][b]"]),
    odd_text.map(lambda key: "metadata[" + pct(key) + "]"),
    odd_text.map(pct),
    st.sampled_from(_RAW_ESCAPES),
)


@st.composite
def query_strings(draw: st.DrawFn) -> str:
    """A raw query string (without ``?``), percent-encoded or deliberately not."""
    pairs = draw(st.lists(st.tuples(query_keys, query_values), max_size=20))
    joiner = draw(st.sampled_from(["&", "&", ";", "&&"]))
    parts = [key if draw(st.integers(0, 9)) == 0 else f"{key}={value}" for key, value in pairs]
    return joiner.join(parts)


odd_ids = st.one_of(
    st.from_regex(r"chatcmpl-[A-Za-z0-9_-]{0,40}", fullmatch=True),
    odd_text,
    st.sampled_from(
        [".", "..", "../..", "a/b", "messages", "x/messages", "%2F", "..%2F..%2Fetc%2Fpasswd"]
    ),
    st.integers(1, 9_000).map(lambda n: "a" * n),
)


@st.composite
def id_segments(draw: st.DrawFn, ids: st.SearchStrategy[str] = odd_ids) -> str:
    """An id as it goes into a URL path: encoded, path-like (``/`` kept) or raw escapes."""
    ident = draw(ids)
    safe = draw(st.sampled_from(["", "/", "/%", "/.~"]))
    segment = pct(ident, safe=safe)
    if draw(st.integers(0, 7)) == 0:
        segment += draw(st.sampled_from(_RAW_ESCAPES))
    return segment


metadata_updates = st.one_of(
    st.fixed_dictionaries({"metadata": metadata | st.none() | junk}),
    st.fixed_dictionaries({}, optional={"metadata": junk, "extra": junk}),
    junk,
)
