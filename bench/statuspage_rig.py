"""The status-page benchmark's test bed: a busy gateway's plan, its 90-day journal, and a
crowd of visitors.

* **The plan** (``plan_text``): six routes behind four public components (the shape of
  ``docs/plan.md``'s example), every route served by ``primary`` then ``backup``.
* **The journal** (``seed``): a SQLite database made by the project's own migration,
  holding what the follower would have written for ``total`` requests over the page's
  90 days: ``traffic_hours`` (one row per route and hour: a daily and weekly rhythm,
  growth, a route launched late, a little background failure, the failures and slowness
  of past incidents), the incidents themselves with their timelines (written with
  ``IncidentStore``), one incident still open (the page is in a major outage), and a bulk
  of ``requests`` rows (plain ``sqlite3.executemany``) for the newest hours, at the
  figures' own density.
* **The visitors** (``FLOOD_LUA``): a ``wrk`` script that asks for ``/status`` and
  ``/status/api/v2/summary.json`` in turn, paced to a fixed rate from a monotonic clock
  (LuaJIT's ffi), a share of them revalidating with the last ETag seen for that page,
  and counts the answers by page and status.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from standby.incidents.manager import new_incident_id
from standby.journal.incident_store import IncidentEvent, IncidentRow
from standby.plan.load import parse_plan
from standby.plan.model import Plan

HOUR = 3_600
DAY = 86_400
DAYS = 90

# route → its share of the traffic; o3-mini came later (its days before have no rows)
ROUTES: dict[str, float] = {
    "gpt-4o-mini": 0.40,
    "gpt-4o": 0.14,
    "o3-mini": 0.06,
    "support-bot": 0.20,
    "summarize": 0.10,
    "text-embedding-3-small": 0.10,
}
LAUNCHED_DAYS_AGO = {"o3-mini": 24}
EMBEDDINGS = "text-embedding-3-small"
# public component → (route patterns, description)
COMPONENTS: dict[str, tuple[list[str], str]] = {
    "Chat assistant": (["gpt-*", "o3-mini"], "Answers in the app"),
    "Support bot": (["support-bot"], "The help centre's assistant"),
    "Summaries": (["summarize"], ""),
    "Search": (["text-embedding-*"], "Semantic search of your documents"),
}
OUTAGE_COMPONENT = "Chat assistant"  # the incident open now is about this one
SEED_WAL_ID = "bench-seed"  # the requests rows' log: not the gateway's own

PLAN = """\
# written by bench/statuspage_rig.py for one benchmark run
providers:
  primary: {{kind: openai-compatible, base_url: "{primary}", api_key: "sk-bench",
             max_connections: 1000}}
  backup:  {{kind: openai-compatible, base_url: "{backup}", api_key: "sk-bench",
             max_connections: 1000}}
server: {{max_connections: 10000}}
timeouts: {{connect: 5s, first_token: 5s, idle: 5s, total: 60s}}
routes:
{routes}
status_page:
  title: "Acme AI status"
  url: "https://status.acme.example"
  components:
{components}
"""


def plan_text(
    primary: str, backup: str, *, subscriptions: bool = True, page_listen: str = ""
) -> str:
    """The plan of the benchmark's gateway (upstreams' base URLs ``…/v1``); the page's
    subscriptions are on by default, as in any plan; ``page_listen``: the page on that
    address, served by a process of its own."""
    routes = "\n".join(
        f'  {name}: {{targets: ["primary/{name}", "backup/{name}"]}}' for name in ROUTES
    )
    components = "\n".join(
        f'    "{name}": {{routes: {orjson.dumps(patterns).decode()}, description: "{description}"}}'
        for name, (patterns, description) in COMPONENTS.items()
    )
    text = PLAN.format(primary=primary, backup=backup, routes=routes, components=components)
    if page_listen:
        text += f'  listen: "{page_listen}"\n'
    return text if subscriptions else text + "  subscriptions: {enabled: false}\n"


def bench_plan(
    primary: str = "http://127.0.0.1:9/v1", backup: str = "http://127.0.0.1:9/v1"
) -> Plan:
    """The plan parsed (the rendering measurement needs no upstream: nothing is sent)."""
    return parse_plan(plan_text(primary, backup), file="statuspage-bench", env={})


# -- what happened over the 90 days -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Episode:
    """Something that touched one route's figures; an incident unless ``component`` is "".

    ``component`` is what the incident is stored under: ``route:<name>`` (the detector,
    every target failing), ``target:<provider/model>`` (absorbed by failing over: never
    public), or a public component's name (opened by a person)."""

    component: str
    route: str
    start: float
    end: float
    severity: str  # major | minor
    failing: float  # share of the route's requests that failed meanwhile
    slowing: float = 0.0  # share answered later than the objective
    source: str = "detector"
    open: bool = False  # still open now (the page's outage)


def episodes(first_day: float, now: float, rng: random.Random) -> list[Episode]:
    """The 90 days' incidents (and one bad day nobody opened an incident for)."""
    found: list[Episode] = []
    last = now - 2 * DAY

    def when(minutes: tuple[float, float], route: str) -> tuple[float, float]:
        launched = now - LAUNCHED_DAYS_AGO.get(route, DAYS) * DAY
        start = rng.uniform(max(first_day, launched), last)
        return start, start + rng.uniform(*minutes) * 60

    routes = list(ROUTES)
    weights = list(ROUTES.values())
    for severity, failing in (("major", (0.6, 0.95)),) * 3 + (("minor", (0.04, 0.12)),) * 2:
        route = rng.choices(routes, weights)[0]
        start, end = when((8, 70), route)
        found.append(Episode(f"route:{route}", route, start, end, severity, rng.uniform(*failing)))
    for _ in range(24):  # one provider down, the route failed over: a few failures at first
        route = rng.choices(routes, weights)[0]
        start, end = when((2, 25), route)
        provider = rng.choice(("primary", "backup"))
        found.append(
            Episode(
                f"target:{provider}/{route}", route, start, end, "major", rng.uniform(0.002, 0.01)
            )
        )
    start, end = when((150, 200), "support-bot")
    found.append(Episode("Support bot", "support-bot", start, end, "minor", 0.03, 0.0, "manual"))
    start, end = when((30, 50), EMBEDDINGS)
    found.append(Episode("Search", EMBEDDINGS, start, end, "major", 0.5, 0.0, "manual"))
    start = day_start(rng.uniform(first_day, last)) + 9 * HOUR  # slow summaries, no incident
    found.append(Episode("", "summarize", start, start + 6 * HOUR, "minor", 0.0, 0.04))
    opened = now - 20 * 60  # the outage the page shows now (the flood's)
    found.append(
        Episode(OUTAGE_COMPONENT, "gpt-4o-mini", opened, now, "major", 0.0, 0.0, "manual", True)
    )
    return found


def day_start(at: float) -> float:
    return float(int(at // DAY) * DAY)


def first_day_of(now: float) -> float:
    """The first of the page's 90 day cells (UTC), where the figures begin."""
    return day_start(now) - (DAYS - 1) * DAY


def _draw(rng: random.Random, n: int, p: float) -> int:
    """How many of ``n`` requests a chance ``p`` hits (Poisson, or normal when large)."""
    mean = n * p
    if mean <= 0:
        return 0
    if mean < 30:
        limit, k, product = math.exp(-mean), 0, rng.random()
        while product > limit:
            k += 1
            product *= rng.random()
        return min(k, n)
    return max(0, min(n, round(rng.gauss(mean, math.sqrt(mean * (1 - p))))))


Figures = tuple[str, int, int, int, int]  # route, hour, requests, failed, slow


def hourly_figures(
    now: float, total: int, found: list[Episode], rng: random.Random
) -> list[Figures]:
    """``traffic_hours`` as the follower would have left it after ``total`` requests."""
    first = int(first_day_of(now))
    current = int(now // HOUR) * HOUR
    cells: list[tuple[str, int, float]] = []
    for hour in range(first, current + HOUR, HOUR):
        age_days = (now - hour) / DAY
        growth = 0.75 + 0.5 * (1 - age_days / DAYS)  # the business grew by 2/3
        weekday = 0.55 if time.gmtime(hour).tm_wday >= 5 else 1.0
        clock = (hour % DAY) / HOUR
        rhythm = 0.25 + 0.75 * math.exp(-(((clock - 15) / 4.5) ** 2))  # busiest 15:00 UTC
        elapsed = min(HOUR, now - hour) / HOUR  # the hour under way so far
        for route, share in ROUTES.items():
            if age_days > LAUNCHED_DAYS_AGO.get(route, DAYS + 1):
                continue
            noise = math.exp(rng.gauss(0, 0.08))
            cells.append((route, hour, share * growth * weekday * rhythm * elapsed * noise))
    weight = sum(w for _, _, w in cells)
    exact = [w * total / weight for _, _, w in cells]
    counts = [int(x) for x in exact]
    short = total - sum(counts)
    for index in sorted(range(len(cells)), key=lambda i: exact[i] - counts[i])[-short:]:
        counts[index] += 1
    rows: list[Figures] = []
    for (route, hour, _), n in zip(cells, counts, strict=True):
        if n == 0:
            continue
        p_fail = 0.0005 if route != EMBEDDINGS else 0.0002
        p_slow = {"summarize": 0.0008, EMBEDDINGS: 0.0}.get(route, 0.00015)
        failed, slow = _draw(rng, n, p_fail), _draw(rng, n, p_slow)
        for episode in found:
            if episode.route != route:
                continue
            overlap = min(episode.end, hour + HOUR, now) - max(episode.start, hour)
            if overlap <= 0:
                continue
            during = round(n * overlap / (min(hour + HOUR, now) - hour))
            failed += _draw(rng, during, episode.failing)
            slow += _draw(rng, during, episode.slowing)
        failed = min(failed, n)
        rows.append((route, hour, n, failed, min(slow, n - failed)))
    return rows


# -- the incidents as the manager would have stored them ---------------------------------------


def incident_rows(found: list[Episode], rng: random.Random) -> list[IncidentRow]:
    """The stored incidents of ``found``, with the timelines their sources write."""
    rows = []
    for e in found:
        if not e.component:
            continue
        events: list[IncidentEvent]
        status = "resolved"
        if e.component.startswith("route:"):
            what = "failing" if e.severity == "major" else "degraded"
            title = f"{e.route} is {what}"
            share = round(e.failing * 100)
            events = [
                IncidentEvent(
                    e.start,
                    "opened",
                    f"detected: every target of the route failing ({share} % of requests)",
                ),
                IncidentEvent(e.start + 1, "notified", "told on-call (slack)"),
                IncidentEvent(e.start + 120, "published", "escalation: publish after 2m"),
                IncidentEvent(e.start + 180, "acknowledged", "acknowledged by alex"),
                IncidentEvent(
                    e.start + 600,
                    "update",
                    "We have found the cause and are moving these requests elsewhere.",
                    {"status": "identified"},
                ),
                IncidentEvent(
                    e.end - 300,
                    "monitoring",
                    "signals look healthy again",
                    {"status": "monitoring"},
                ),
                IncidentEvent(e.end, "resolved", "recovered: healthy for long enough"),
            ]
        elif e.component.startswith("target:"):
            key = e.component.removeprefix("target:")
            other = ("backup" if key.startswith("primary/") else "primary") + f"/{e.route}"
            title = f"{key} is failing"
            events = [
                IncidentEvent(e.start - rng.uniform(5, 40), "first_failure", "first failure seen"),
                IncidentEvent(
                    e.start, "opened", f"detected: {rng.randint(40, 95)} % of requests failed"
                ),
                IncidentEvent(e.start, "failover", f"traffic is served by {other}"),
                IncidentEvent(e.start + 1, "notified", "told on-call (slack)"),
                IncidentEvent(e.end, "resolved", "recovered: healthy for long enough"),
            ]
        else:
            title = f"{e.component}: some answers fail"
            events = [
                IncidentEvent(
                    e.start,
                    "opened",
                    f"Some {e.component.lower()} requests fail or answer late; we are on it.",
                ),
                IncidentEvent(
                    e.start + 900,
                    "update",
                    "We know the cause and are deploying a fix.",
                    {"status": "identified"},
                ),
            ]
            if e.open:
                status = "identified"
            else:
                events.append(IncidentEvent(e.end, "resolved", "Fixed: everything works again."))
        last = max(event.at for event in events)
        rows.append(
            IncidentRow(
                id=new_incident_id(e.start),
                component=e.component,
                title=title,
                status=status,
                severity=e.severity,
                source=e.source,
                opened_at=e.start,
                updated_at=last,
                first_failure_at=events[0].at if events[0].kind == "first_failure" else None,
                acknowledged_at=e.start + 180 if e.component.startswith("route:") else None,
                resolved_at=None if e.open else e.end,
                events=tuple(events),
            )
        )
    return rows


# -- requests rows: the newest hours at the figures' density -----------------------------------

REQUEST_COLUMNS = (
    "rid",
    "wal_id",
    "received_at",
    "client",
    "endpoint",
    "route",
    "model_asked",
    "stream",
    "store",
    "state",
    "status",
    "completion_id",
    "provider",
    "model",
    "finished_at",
    "request_json",
    "request_hash",
    "request_size",
    "response_json",
    "content_sent",
    "usage_json",
    "attempts_json",
    "deferred_tries",
    "deleted",
)
INSERT = (
    f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in REQUEST_COLUMNS)})"
)
PROMPTS = (
    "Summarise this support ticket in two sentences.",
    "Where is my order 4471? It was due on Monday.",
    "Rewrite this paragraph in a friendlier tone for a customer email.",
    "What is your refund policy for annual plans?",
    "Translate the following product description into German.",
    "Suggest three subject lines for our spring newsletter.",
    "Explain the difference between the Basic and the Pro plan.",
    "Draft a polite reply declining the meeting on Thursday.",
)
ANSWERS = (
    "Your order left our warehouse yesterday and should arrive within two working days; "
    "you will get a tracking link by email shortly.",
    "Here is a friendlier version: thank you for reaching out, we are glad to help and have "
    "already started looking into it for you.",
    "The Pro plan adds shared workspaces, priority support and a higher monthly limit; the "
    "Basic plan covers one user and the core features.",
)
SYSTEM = "You are Acme's helpful assistant. Answer briefly and politely."
CLIENTS = ("web-app", "mobile-app", "help-centre", "nightly-batch")


class _Bodies:
    """Request bodies per (route, prompt, stream), with their hash and size, made once."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, int, bool], tuple[str, str, int]] = {}

    def get(self, route: str, prompt: int, stream: bool) -> tuple[str, str, int]:
        key = (route, prompt, stream)
        found = self._made.get(key)
        if found is None:
            if route == EMBEDDINGS:
                body: dict[str, Any] = {"model": route, "input": PROMPTS[prompt]}
            else:
                body = {
                    "model": route,
                    "messages": [
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": PROMPTS[prompt]},
                    ],
                    "stream": stream,
                }
            raw = orjson.dumps(body)
            found = (raw.decode(), hashlib.sha256(raw).hexdigest(), len(raw))
            self._made[key] = found
        return found


def request_rows(
    figures: list[Figures], limit: int, now: float, rng: random.Random
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``requests`` for the newest hours of ``figures``, oldest first, as many as
    those hours counted (plus the client errors the figures leave out), until ``limit``."""
    newest = sorted(figures, key=lambda f: f[1], reverse=True)
    chosen: list[Figures] = []
    count = 0
    for f in newest:
        if count >= limit:
            break
        chosen.append(f)
        count += f[2]
    bodies = _Bodies()
    made = 0
    for route, hour, n, failed, slow in sorted(chosen, key=lambda f: (f[1], f[0])):
        end = min(hour + HOUR, now)
        times = sorted(rng.uniform(hour, end) for _ in range(n))
        picked = rng.sample(range(n), failed + slow)
        fails, slows = set(picked[:failed]), set(picked[failed:])
        for index, received in enumerate(times):
            if made >= limit:
                return
            yield _row(route, received, index in fails, index in slows, bodies, rng)
            made += 1
            if rng.random() < 0.002 and made < limit:  # a client error: never counted
                yield _client_error(route, received, bodies, rng)
                made += 1


def _rid(at: float, rng: random.Random) -> str:
    return f"req_{int(at * 1e9):x}{rng.getrandbits(32):08x}"


def _row(
    route: str, received: float, failed: bool, slow: bool, bodies: _Bodies, rng: random.Random
) -> tuple[Any, ...]:
    embeddings = route == EMBEDDINGS
    stream = not embeddings and rng.random() < 0.6
    request_json, request_hash, size = bodies.get(route, rng.randrange(len(PROMPTS)), stream)
    rid = _rid(received, rng)
    if embeddings:
        took = rng.lognormvariate(math.log(0.08), 0.4)
    else:
        took = rng.lognormvariate(math.log(2.5 if stream else 1.4), 0.5)
    if slow:
        took = rng.uniform(31.0, 75.0)
    client = rng.choice(CLIENTS)
    endpoint = "embeddings" if embeddings else "chat"
    if failed:
        attempts = orjson.dumps(
            [
                [f"primary/{route}", "http_503", round(took / 4, 6)],
                [f"backup/{route}", "timeout", 5.0],
            ]
        ).decode()
        return (
            rid, SEED_WAL_ID, received, client, endpoint, route, route, stream, False,
            "failed", 503, None, None, None, received + took + 5.0,
            request_json, request_hash, size, None, None, None, attempts, 0, False,
        )  # fmt: skip
    provider = "backup" if rng.random() < 0.01 else "primary"
    completion_id = f"chatcmpl-{rid[4:]}"
    prompt_tokens, completion_tokens = rng.randint(30, 400), rng.randint(20, 300)
    usage = (
        f'{{"prompt_tokens":{prompt_tokens},"completion_tokens":{completion_tokens},'
        f'"total_tokens":{prompt_tokens + completion_tokens}}}'
    )
    answer = rng.choice(ANSWERS)
    if embeddings:
        response = f'{{"object":"list","model":"{route}","data":[{{"index":0}}],"usage":{usage}}}'
        content = None
    else:
        response = (
            f'{{"id":"{completion_id}","object":"chat.completion","created":{int(received)},'
            f'"model":"{route}","choices":[{{"index":0,"message":{{"role":"assistant",'
            f'"content":"{answer}"}},"finish_reason":"stop"}}],"usage":{usage}}}'
        )
        content = answer if stream else None
    attempts = f'[["{provider}/{route}","ok",{took:.6f}]]'
    return (
        rid, SEED_WAL_ID, received, client, endpoint, route, route, stream, False,
        "completed", 200, completion_id, provider, route, received + took,
        request_json, request_hash, size, response, content, usage, attempts, 0, False,
    )  # fmt: skip


def _client_error(
    route: str, received: float, bodies: _Bodies, rng: random.Random
) -> tuple[Any, ...]:
    request_json, request_hash, size = bodies.get(route, rng.randrange(len(PROMPTS)), False)
    return (
        _rid(received, rng), SEED_WAL_ID, received, rng.choice(CLIENTS), "chat", route, route,
        False, False, "failed", 400, None, None, None, received + 0.002,
        request_json, request_hash, size, None, None, None, "[]", 0, False,
    )  # fmt: skip
