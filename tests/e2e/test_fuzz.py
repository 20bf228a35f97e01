"""Fuzzing a real gateway process over HTTP with hypothesis.

``standby sim`` and ``standby serve`` run as subprocesses on loopback, the plan and the
journal (write-ahead log + SQLite) in a temporary directory.  A raw ``httpx`` client —
not an SDK, which would validate what it sends — posts thousands of requests built by
``fuzz_strategies``: valid requests of the three wires with fields broken, bytes that are
not JSON, odd content types, odd query strings and odd completion ids, against

* ``POST /v1/chat/completions`` (JSON and SSE), ``POST /v1/messages``, ``POST /v1/responses``
  (also without ``/v1``), ``POST /v1/embeddings``;
* ``GET /v1/chat/completions?…``, ``GET/POST/DELETE /v1/chat/completions/{id}``,
  ``GET /v1/chat/completions/{id}/messages`` (and other methods, and trailing slashes);
* ``GET /v1/responses/{id}``, ``GET /v1/models/{id}``, ``GET /v1/models``.

The plan's routes reach all three vendor adapters (OpenAI-compatible, Anthropic, Gemini,
all answered by the sim), a target with restricted capabilities (so the request's messages
are read to screen it), ``params`` and ``clamp`` edits, and ``{model}`` glob routes that
send the asked name on.

Every answer must be a 2xx or a 4xx with a JSON body (an error body has an ``error``
object); a 200 event stream must end the way its wire ends a complete answer, every event
JSON.  Never a 5xx (the sim stays healthy, so not even a 503), no hang, no traceback in the
gateway's log, the process alive at the end and its RSS flat.  Anomalies are collected
rather than raised, so one run reports every kind of failure (with the shortest request
that showed it) instead of stopping at the first.

Run alone: ``.venv/bin/pytest tests/e2e/test_fuzz.py -s`` (about 3,000 requests).
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.e2e import fuzz_strategies as fz

# examples per phase: about 3,000 requests together (plus the warm-up)
EXAMPLES = {
    "chat": 600,
    "embeddings": 100,
    "messages": 450,
    "responses": 450,
    "raw": 450,
    "listing": 250,
    "by_id": 400,
    "lookups": 150,
    "models": 60,
}
WALL_BUDGET = 170.0  # seconds for every phase together; later requests are skipped
REQUEST_BUDGET = 25.0  # seconds for one request, its stream read to the end
MAX_READ = 4 * 1024 * 1024  # bytes of one answer read at most
# after the warm-up, for the whole run; measured: about +8 MiB (allocator and SQLite caches
# warming: a second and a third run of every phase add +3 and +1 MiB)
RSS_GROWTH_LIMIT_KIB = 24 * 1024
STREAM_ENDS = {
    "chat": "[DONE]",
    "messages": "message_stop",
    "responses": "response.completed",
}

PLAN = """\
providers:
  sim: {{kind: openai-compatible, base_url: "{sim}/v1", api_key: "sk-sim"}}
  claude: {{kind: anthropic, base_url: "{sim}/v1", api_key: "sk-sim"}}
  gem: {{kind: gemini, base_url: "{sim}/v1beta", api_key: "sk-sim"}}
  small:
    base_url: "{sim}/v1"
    capabilities: {{images: false, tools: false, json_schema: false, max_context: 2k}}
timeouts: {{connect: 2s, first_token: 8s, idle: 8s, total: 20s}}
retry: {{backoff: 10ms, max_backoff: 50ms}}
server: {{max_body: 64KiB}}
journal: {{store: always}}
routes:
  fuzz-openai: {{targets: ["sim/gpt-4o-mini"]}}
  fuzz-claude: {{targets: ["claude/claude-haiku-4-5"]}}
  fuzz-gemini: {{targets: ["gem/gemini-2.5-flash"]}}
  fuzz-small: {{targets: ["small/small-model", "sim/gpt-4o-mini"]}}
  fuzz-clamped:
    targets:
      - target: sim/gpt-4o-mini
        params: {{max_tokens: 64, logprobs: null}}
        clamp: {{temperature: [0, 1], top_p: [0.1, 0.9], max_tokens: [1, 32]}}
  "claude-pass-*": {{targets: ["claude/{{model}}"]}}
  "gemini-pass-*": {{targets: ["gem/{{model}}"]}}
  "pass-*": {{targets: ["sim/{{model}}"]}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    """``VmRSS`` of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@contextlib.contextmanager
def process(args: list[str], log: Path, ready: bytes, timeout: float = 30.0) -> Iterator[int]:
    """Run ``args`` (output to ``log``) until ``ready`` appears in it; yield the pid."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        until = time.monotonic() + timeout
        while ready not in log.read_bytes():
            assert proc.poll() is None, f"{args[1]} exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < until, f"{args[1]} not ready: {log.read_text()[-3000:]}"
            time.sleep(0.05)
        yield proc.pid
        assert proc.poll() is None, f"{args[1]} died: {log.read_text()[-3000:]}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class Gateway:
    url: str
    sim_url: str
    pid: int
    log: Path


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    standby = str(Path(sys.executable).with_name("standby"))
    sim_port, port = free_port(), free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(sim=sim_url))
    sim_args = [standby, "sim", "--port", str(sim_port), "--name", "fuzz"]
    serve_args = [standby, "serve", "--plan", str(plan), "--port", str(port)]
    log = tmp_path / "gateway.log"
    with (
        process(sim_args, tmp_path / "sim.log", sim_url.encode()),
        process(serve_args, log, b"listening") as pid,
    ):
        url = f"http://127.0.0.1:{port}"
        until = time.monotonic() + 20
        while True:  # the socket opens just after the banner
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < until, log.read_text()[-3000:]
            time.sleep(0.05)
        yield Gateway(url, sim_url, pid, log)
    assert (tmp_path / "standby.db").exists()  # the journal lived in the plan's directory


# -- sending and judging -------------------------------------------------------------------


@dataclass
class Anomaly:
    count: int
    example: str  # the shortest request that showed it


@dataclass
class Fuzzer:
    """Sends requests to the gateway, judges every answer, and keeps the tally."""

    client: httpx.Client
    base: httpx.URL
    deadline: float
    statuses: Counter[str] = field(default_factory=Counter)
    by_phase: Counter[tuple[str, str]] = field(default_factory=Counter)
    anomalies: dict[str, Anomaly] = field(default_factory=dict)
    completion_ids: list[str] = field(default_factory=list)
    response_ids: list[str] = field(default_factory=list)

    def send(
        self,
        phase: str,
        method: str,
        raw_path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
        chunked: bool = False,
        wire: str | None = None,
    ) -> Any:
        """One request; the parsed JSON answer (or the stream's events) when it was fine."""
        if time.monotonic() > self.deadline:
            self.statuses["skipped"] += 1
            return None
        sent = dict(headers or {})
        if content_type is not None:
            sent["content-type"] = content_type
        content: Any = body
        if chunked and body:
            third = max(1, len(body) // 3)
            content = iter([body[:third], body[third : 2 * third], body[2 * third :]])
        url = self.base.copy_with(raw_path=raw_path.encode("ascii"))
        raw_headers = {key.encode(): value.encode("latin-1") for key, value in sent.items()}
        request = self.client.build_request(method, url, content=content, headers=raw_headers)
        shown = f"{method} {raw_path[:300]} headers={sent!r} body={(body or b'')[:1500]!r}"
        started = time.monotonic()
        try:
            response = self.client.send(request, stream=True)
            try:
                data = b""
                for piece in response.iter_bytes():
                    data += piece
                    if len(data) > MAX_READ or time.monotonic() - started > REQUEST_BUDGET:
                        raise TimeoutError("the answer did not end in time")
            finally:
                response.close()
        except (httpx.HTTPError, TimeoutError) as error:
            self._tally(phase, "none")
            self._anomaly(f"{phase}: no answer ({type(error).__name__})", shown)
            return None
        self._tally(phase, f"{response.status_code // 100}xx")
        problem, parsed = judge(wire, response.status_code, response.headers, data)
        if problem is not None:
            self._anomaly(
                f"{phase}: {problem}", shown + f"\n  → {response.status_code} {data[:600]!r}"
            )
            return None
        return parsed

    def _tally(self, phase: str, status_class: str) -> None:
        self.statuses[status_class] += 1
        self.by_phase[phase, status_class] += 1

    def _anomaly(self, kind: str, example: str) -> None:
        known = self.anomalies.get(kind)
        if known is None:
            self.anomalies[kind] = Anomaly(1, example)
        else:
            known.count += 1
            if len(example) < len(known.example):
                known.example = example

    def remember(self, pool: list[str], ident: Any) -> None:
        if isinstance(ident, str) and ident and len(pool) < 300:
            pool.append(ident)


def judge(
    wire: str | None, status: int, headers: httpx.Headers, data: bytes
) -> tuple[str | None, Any]:
    """``(problem or None, parsed answer)`` of one answer."""
    content_type = headers.get("content-type", "")
    if status >= 500 or not 200 <= status < 500:
        return f"status {status} {_error_message(data)}", None
    if status == 200 and content_type.startswith("text/event-stream"):
        return judge_stream(wire, data)
    if not content_type.startswith("application/json"):
        return f"{status} with content-type {content_type!r}", None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return f"{status} body is not JSON", None
    if status >= 400 and not (isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)):
        return f"{status} error body without an error object", None
    return None, parsed


def judge_stream(wire: str | None, data: bytes) -> tuple[str | None, Any]:
    """A 200 event stream ends with its wire's last event; every event is JSON."""
    if wire is None:
        return "an event stream where JSON was expected", None
    if not data.endswith(b"\n\n"):
        return "the stream ends mid-event", None
    events: list[Any] = []
    for block in data.split(b"\n\n"):
        lines = [line for line in block.split(b"\n") if line.startswith(b"data:")]
        if not lines:
            continue
        payload = b"\n".join(line[5:].strip() for line in lines)
        if payload == b"[DONE]":
            events.append("[DONE]")
            continue
        try:
            events.append(orjson.loads(payload))
        except orjson.JSONDecodeError:
            return "a stream event is not JSON", None
    if not events:
        return "an empty stream", None
    errors = [
        e for e in events if isinstance(e, dict) and ("error" in e or e.get("type") == "error")
    ]
    if errors:
        return f"the stream carries an error event {str(errors[0])[:120]}", None
    last = events[-1]
    end = last if isinstance(last, str) else last.get("type")
    if end != STREAM_ENDS[wire] and not (wire == "responses" and end == "response.incomplete"):
        return f"the stream ends with {str(end)[:60]!r}", None
    return None, events


def _error_message(data: bytes) -> str:
    try:
        error = orjson.loads(data).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (orjson.JSONDecodeError, AttributeError):
        return f"(not JSON: {data[:80]!r})"
    return str(message)[:100]


def stream_id(events: list[Any]) -> str | None:
    for event in events:
        if isinstance(event, dict):
            if isinstance(event.get("id"), str):
                return str(event["id"])
            response = event.get("response")
            if isinstance(response, dict) and isinstance(response.get("id"), str):
                return str(response["id"])
    return None


# -- the test ------------------------------------------------------------------------------


def fuzz_settings(phase: str) -> settings:
    return settings(
        max_examples=EXAMPLES[phase],
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # anomalies are collected, nothing to shrink
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


prefixes = st.sampled_from(["/v1", "/v1", ""])
chunking = st.integers(0, 9).map(lambda n: n == 0)  # now and then Transfer-Encoding: chunked
headers = fz.extra_headers
WIRE_PATHS = {"chat": "/chat/completions", "messages": "/messages", "responses": "/responses"}


def warm_up(fuzz: Fuzzer) -> None:
    """Valid requests of every wire and route (stored ones seed the id pools)."""
    chat = {"messages": [{"role": "user", "content": "hello"}], "metadata": {"team": "alpha"}}
    for model in [*fz.ROUTES, "pass-x", "claude-pass-x", "gemini-pass-x"]:
        for stream in (False, True):
            for wire, body in (
                ("chat", {**chat, "model": model, "stream": stream}),
                ("messages", {**chat, "model": model, "stream": stream, "max_tokens": 50}),
                ("responses", {"model": model, "input": "hello", "stream": stream}),
            ):
                answer = fuzz.send(
                    "warm-up", "POST", "/v1" + WIRE_PATHS[wire], body=orjson.dumps(body), wire=wire
                )
                if wire == "chat" and answer is not None:
                    fuzz.remember(
                        fuzz.completion_ids,
                        stream_id(answer) if stream else answer.get("id"),
                    )
                if wire == "responses" and answer is not None:
                    fuzz.remember(
                        fuzz.response_ids, stream_id(answer) if stream else answer.get("id")
                    )
    for path in ("/v1/chat/completions?limit=5", "/v1/models"):
        fuzz.send("warm-up", "GET", path)


HI = [{"role": "user", "content": "hi"}]
# requests that showed a failure once, always sent first (explicit examples)
CHAT_EXAMPLES: list[dict[str, Any]] = [
    {"model": "fuzz-small", "messages": [{"role": "user", "content": [{"type": ["image_url"]}]}]},
    {"model": "pass-a\nb", "messages": HI},
    {"model": "pass-a\u001ab", "messages": HI, "stream": True},
    {"model": "fuzz-claude", "messages": HI, "stream": True, "n": 2},
    {"model": "fuzz-gemini", "messages": HI, "stream": True, "n": 2},
]
MESSAGES_EXAMPLES: list[dict[str, Any]] = [
    {"model": "gemini-pass-a\nb", "max_tokens": 5, "messages": HI},
    {"model": "claude-pass-\u0000", "max_tokens": 5, "messages": HI, "stream": True},
]
RESPONSES_EXAMPLES: list[dict[str, Any]] = [{"model": "pass-\r\n", "input": "hi"}]


def with_examples(test: Any, bodies: list[dict[str, Any]], *rest: Any) -> Any:
    """``test`` with an explicit example per body (the other arguments: ``rest``)."""
    for body in bodies:
        test = example(body, "orjson", *rest)(test)
    return test


def phases(fuzz: Fuzzer) -> dict[str, Callable[[], None]]:
    """The phases of the run, by name, in order: each a hypothesis test over ``fuzz``."""

    @fuzz_settings("chat")
    @given(fz.mutated(fz.chat_bodies), fz.encodings, headers, prefixes, chunking)
    def chat(body: Any, encoding: str, extra: dict[str, str], prefix: str, chunk: bool) -> None:
        answer = fuzz.send(
            "chat",
            "POST",
            prefix + "/chat/completions",
            body=fz.encode(body, encoding),
            headers=extra,
            chunked=chunk,
            wire="chat",
        )
        if isinstance(answer, dict):
            fuzz.remember(fuzz.completion_ids, answer.get("id"))
        elif isinstance(answer, list):
            fuzz.remember(fuzz.completion_ids, stream_id(answer))

    chat = with_examples(chat, CHAT_EXAMPLES, {}, "/v1", False)

    @fuzz_settings("embeddings")
    @given(fz.mutated(fz.embedding_bodies), fz.encodings, prefixes)
    def embeddings(body: Any, encoding: str, prefix: str) -> None:
        path = prefix + "/embeddings"
        fuzz.send("embeddings", "POST", path, body=fz.encode(body, encoding))

    @fuzz_settings("messages")
    @given(fz.mutated(fz.anthropic_bodies), fz.encodings, headers, prefixes, chunking)
    def messages(body: Any, encoding: str, extra: dict[str, str], prefix: str, chunk: bool) -> None:
        fuzz.send(
            "messages",
            "POST",
            prefix + "/messages",
            body=fz.encode(body, encoding),
            headers=extra,
            chunked=chunk,
            wire="messages",
        )

    messages = with_examples(messages, MESSAGES_EXAMPLES, {}, "/v1", False)

    @fuzz_settings("responses")
    @given(fz.mutated(fz.responses_bodies), fz.encodings, st.integers(-3, 30), prefixes)
    def responses(body: Any, encoding: str, chain: int, prefix: str) -> None:
        if chain >= 0 and fuzz.response_ids and isinstance(body, dict):
            body["previous_response_id"] = fuzz.response_ids[chain % len(fuzz.response_ids)]
        answer = fuzz.send(
            "responses",
            "POST",
            prefix + "/responses",
            body=fz.encode(body, encoding),
            wire="responses",
        )
        if isinstance(answer, dict):
            fuzz.remember(fuzz.response_ids, answer.get("id"))
        elif isinstance(answer, list):
            fuzz.remember(fuzz.response_ids, stream_id(answer))

    responses = with_examples(responses, RESPONSES_EXAMPLES, -1, "/v1")

    @fuzz_settings("raw")
    @given(
        st.sampled_from([*WIRE_PATHS.values(), "/embeddings"]),
        fz.raw_bodies(),
        fz.content_types,
        headers,
        prefixes,
        chunking,
    )
    def raw(
        path: str, body: bytes, ctype: str | None, extra: dict[str, str], prefix: str, chunk: bool
    ) -> None:
        fuzz.send(
            "raw",
            "POST",
            prefix + path,
            body=body,
            content_type=ctype,
            headers=extra,
            chunked=chunk,
        )

    known = st.integers(0, 10_000).map(lambda i: fuzz.completion_ids[i % len(fuzz.completion_ids)])
    # a page after a stored (or deleted) completion, or none
    after = fz.mostly(st.just(""), known.map(lambda ident: "&after=" + fz.pct(ident)), odds=2)

    @fuzz_settings("listing")
    @given(fz.query_strings(), after, prefixes, headers)
    def listing(query: str, page: str, prefix: str, extra: dict[str, str]) -> None:
        path = f"{prefix}/chat/completions?{query}{page}"
        fuzz.send("listing", "GET", path, headers=extra)

    @fuzz_settings("by_id")
    @given(
        st.sampled_from(["GET", "GET", "POST", "POST", "DELETE", "PUT", "PATCH"]),
        fz.id_segments(fz.mostly(known, fz.odd_ids, odds=2)),
        fz.mostly(
            st.sampled_from(["", "", "/messages"]), st.sampled_from(["/", "/messages/", "//"])
        ),
        fz.query_strings() | st.just(""),
        st.integers(-3, 4),
        fz.metadata_updates,
        fz.encodings,
        fz.content_types,
    )
    def by_id(
        method: str,
        segment: str,
        suffix: str,
        query: str,
        message: int,
        update: Any,
        encoding: str,
        ctype: str | None,
    ) -> None:
        if message >= 0:  # a page of messages after message ``<id>-<message>``
            query += f"&after={segment}-{message}"
        path = f"/v1/chat/completions/{segment}{suffix}" + (f"?{query}" if query else "")
        body = fz.encode(update, encoding) if method == "POST" else None
        fuzz.send("by_id", method, path, body=body, content_type=ctype)

    answers = st.integers(0, 10_000).map(lambda i: fuzz.response_ids[i % len(fuzz.response_ids)])

    @fuzz_settings("lookups")
    @given(
        st.sampled_from(["/v1/responses/", "/responses/", "/v1/models/", "/models/"]),
        fz.id_segments(fz.mostly(answers | st.sampled_from(fz.ROUTES), fz.odd_ids, odds=2)),
        fz.query_strings() | st.just(""),
    )
    def lookups(path: str, segment: str, query: str) -> None:
        fuzz.send("lookups", "GET", path + segment + (f"?{query}" if query else ""))

    @fuzz_settings("models")
    @given(
        st.sampled_from(["GET", "GET", "GET", "POST", "DELETE"]),
        prefixes,
        fz.query_strings() | st.just(""),
        headers,
    )
    def models(method: str, prefix: str, query: str, extra: dict[str, str]) -> None:
        fuzz.send("models", method, f"{prefix}/models?{query}", headers=extra)

    return {
        "chat": chat,
        "embeddings": embeddings,
        "messages": messages,
        "responses": responses,
        "raw": raw,
        "listing": listing,
        "by_id": by_id,
        "lookups": lookups,
        "models": models,
    }


@pytest.mark.timeout(400)
def test_fuzz_every_wire(gateway: Gateway) -> None:
    started = time.monotonic()
    with httpx.Client(timeout=httpx.Timeout(REQUEST_BUDGET, connect=5.0)) as client:
        fuzz = Fuzzer(client, httpx.URL(gateway.url), deadline=time.monotonic() + WALL_BUDGET)
        warm_up(fuzz)
        assert fuzz.completion_ids and fuzz.response_ids, fuzz.anomalies
        rss = {"warm-up": rss_kib(gateway.pid)}
        fuzz.deadline = time.monotonic() + WALL_BUDGET
        for name, phase in phases(fuzz).items():
            phase()
            rss[name] = rss_kib(gateway.pid)
        alive = client.get(f"{gateway.url}/healthz").status_code == 200
        targets = len(client.get(f"{gateway.url}/standby/health").json()["targets"])
        metrics = len(client.get(f"{gateway.url}/metrics").content)
        sim = httpx.get(f"{gateway.sim_url}/_sim/stats", timeout=5).json()
    elapsed = time.monotonic() - started
    log = gateway.log.read_text(errors="replace")
    tracebacks = log.count("Traceback (most recent call last)")
    raised = Counter(re.findall(r"^(\w[\w.]*(?:Error|Exception)\b.{0,120})", log, re.MULTILINE))

    sent = sum(v for k, v in fuzz.statuses.items() if k != "skipped")
    print(f"\nfuzz: {sent} requests in {elapsed:.0f}s; status classes {dict(fuzz.statuses)}")
    for name in ("warm-up", *EXAMPLES):
        row = {c: n for (p, c), n in sorted(fuzz.by_phase.items()) if p == name}
        print(f"  {name:10} {row!s:48} gateway RSS after: {rss[name]} KiB")
    growth = rss["models"] - rss["warm-up"]
    print(f"  gateway RSS {rss['warm-up']} KiB after the warm-up, {growth:+} KiB after the run")
    print(f"  targets with health state: {targets}; /metrics: {metrics} bytes")
    print(f"  sim: {sim['count']} requests, outcomes {sim['faults']}; log tracebacks: {tracebacks}")
    for line, count in raised.most_common():
        print(f"  gateway log x{count}: {line}")
    for kind, anomaly in sorted(fuzz.anomalies.items()):
        print(f"ANOMALY x{anomaly.count}: {kind}\n  {anomaly.example}")

    assert alive
    assert set(sim["faults"]) <= {"ok"}, sim["faults"]  # the sim stayed healthy throughout
    assert fuzz.statuses["skipped"] == 0, f"the run outlasted its {WALL_BUDGET}s budget"
    assert not fuzz.anomalies, sorted(fuzz.anomalies)
    assert fuzz.statuses["5xx"] == 0 and fuzz.statuses["none"] == 0
    assert tracebacks == 0, log[-5000:]
    assert growth < RSS_GROWTH_LIMIT_KIB
