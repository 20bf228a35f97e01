"""Chat search over a big history: how long ``ChatStore.search`` takes once the journal's
database holds 100,000 imported-size conversations, on SQLite (and PostgreSQL with
``--postgresql``).  Target (issue 13): under 50 ms.

    python -m bench.chat_search_bench [--conversations 100000] [--postgresql]
                                      [--no-sqlite] [--reuse] [--reps 5]
                                      [--max-fill 1800] [--out PATH]

The database is made by the project's own migration and filled through the importers'
path (``ChatStore.add_threads``, 500 conversations a transaction, search index
included): synthetic conversations of 2 to 16 messages (8 on average), questions of 4
to 40 words and answers of 20 to 160, drawn from a 30,000-word vocabulary with a Zipf
distribution (as words are in text), owned by 50 clients.  A few phrases are planted
in one answer in a thousand.  ``--max-fill`` bounds the filling: when it runs out the
search is measured on what was written, and the results say so.  ``--no-sqlite``
measures PostgreSQL alone.  ``--reuse`` keeps the PostgreSQL database after the run
and, when it already holds the conversations asked, measures it again without filling
(migrated to the newest revision first): for trying a change of the search in seconds
rather than minutes.  Drop it afterwards (a run without ``--reuse`` does).

Measured: each query of seven kinds (a rare word, a mid word, a frequent word, one of
the four most common words — nearly every message has it —, two words, a phrase, a
prefix), as a client (its 2,000 conversations) and as the admin (all of them): one
untimed run, then ``--reps`` timed ones, from the call to the hits in hand (snippets
and conversations included), 20 hits asked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bench import machine
from bench.journal_rig import record
from bench.stats import percentile
from standby.chat.model import Conversation, Message, Thread, derived_id
from standby.chat.store import ChatStore
from standby.journal.migrate import migrate
from standby.journal.sql import open_engine

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 50.0
OWNERS = 50
VOCABULARY = 30_000
BATCH = 500
PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
PG_DB = "standby_chat_search_bench"
PHRASES = ("circuit breaker tripped", "quarterly revenue forecast", "sourdough starter feeding")
_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["qu", "th", "sh", "ch"]
KINDS = ("rare", "mid", "frequent", "common", "two words", "phrase", "prefix")


def _log(text: str) -> None:
    print(f"[chat-search] {text}", file=sys.stderr, flush=True)


class Corpus:
    """Deterministic synthetic conversations: Zipf-distributed words, planted phrases."""

    def __init__(self, seed: int = 13) -> None:
        self.random = random.Random(seed)
        words: dict[str, None] = {}
        while len(words) < VOCABULARY:
            size = self.random.choice((1, 2, 2, 3, 3, 4))
            words["".join(self.random.choices(_SYLLABLES, k=size))] = None
        self.words = list(words)  # by rank: the first is the most frequent
        self.weights = list(accumulate(1.0 / (rank + 1) ** 1.07 for rank in range(VOCABULARY)))

    def text(self, low: int, high: int) -> str:
        count = self.random.randint(low, high)
        words = self.random.choices(self.words, cum_weights=self.weights, k=count)
        if self.random.random() < 0.001:
            words.insert(self.random.randrange(count + 1), self.random.choice(PHRASES))
        return " ".join(words)

    def thread(self, n: int, now: float) -> Thread:
        owner = f"client-{n % OWNERS:02d}"
        source_id = f"bench-{n}"
        conv_id = derived_id("conv", "chatgpt", source_id, owner)
        start = now - 86_400 * 365 + n * 300.0
        messages: list[Message] = []
        parent: str | None = None
        for turn in range(self.random.randint(1, 8) * 2):
            user = turn % 2 == 0
            message = Message(
                id=derived_id("msg", conv_id, str(turn)),
                conversation_id=conv_id,
                parent_id=parent,
                role="user" if user else "assistant",
                content=self.text(4, 40) if user else self.text(20, 160),
                created_at=start + turn * 20.0,
                model=None if user else "gpt-4o",
            )
            messages.append(message)
            parent = message.id
        conversation = Conversation(
            id=conv_id,
            owner=owner,
            title=self.text(2, 6),
            created_at=start,
            updated_at=messages[-1].created_at,
            source="chatgpt",
            source_id=source_id,
            current_message_id=parent,
        )
        return Thread(conversation, tuple(messages))

    def queries(self) -> Iterator[tuple[str, str]]:
        """(kind, query) pairs, the same every run."""
        pick = random.Random(7)
        words = self.words
        for rank in pick.sample(range(15_000, VOCABULARY), 8):
            yield "rare", words[rank]
        for rank in pick.sample(range(300, 1_000), 8):
            yield "mid", words[rank]
        for rank in pick.sample(range(20, 60), 6):
            yield "frequent", words[rank]
        for rank in range(4):
            yield "common", words[rank]
        for _ in range(6):
            yield "two words", f"{words[pick.randrange(20, 60)]} {words[pick.randrange(300, 1000)]}"
        for phrase in PHRASES:
            yield "phrase", f'"{phrase}"'
        for rank in pick.sample(range(300, 1_000), 6):
            yield "prefix", words[rank][:4] + "*"


async def fill(store: ChatStore, count: int, max_seconds: float) -> dict[str, Any]:
    """``count`` conversations (or what ``max_seconds`` allows) into a migrated database."""
    started = time.perf_counter()
    corpus, now = Corpus(), time.time()
    written = messages = characters = 0
    generating = 0.0
    while written < count and time.perf_counter() - started < max_seconds:
        made = time.perf_counter()
        batch = [corpus.thread(n, now) for n in range(written, min(count, written + BATCH))]
        generating += time.perf_counter() - made
        await store.add_threads(batch)
        written += len(batch)
        messages += sum(len(t.messages) for t in batch)
        characters += sum(len(m.content) for t in batch for m in t.messages)
        if written % 10_000 < BATCH:
            _log(f"{written:,} conversations, {messages:,} messages")
    if store.engine.dialect.name == "postgresql":
        async with store.engine.begin() as conn:
            await conn.execute(sa.text("ANALYZE conversations"))
            await conn.execute(sa.text("ANALYZE chat_messages"))
    return {
        "asked": count,
        "conversations": written,
        "messages": messages,
        "text_mib": characters / 2**20,
        "fill_s": time.perf_counter() - started,
        "generate_s": generating,
        "complete": written == count,
    }


async def filled_before(store: ChatStore, count: int) -> dict[str, Any] | None:
    """What a database kept by an earlier ``--reuse`` run holds, if it is ``count``
    conversations; None when it is empty (a new one, to fill)."""
    async with store.engine.begin() as conn:
        written = await conn.scalar(sa.text("SELECT count(*) FROM conversations"))
        if not written:
            return None
        if written != count:
            raise SystemExit(
                f"{PG_DB} holds {written:,} conversations, not {count:,}: "
                "run once without --reuse to start again"
            )
        messages, characters = (
            await conn.execute(sa.text("SELECT count(*), sum(length(content)) FROM chat_messages"))
        ).one()
        await conn.execute(sa.text("ANALYZE conversations"))
        await conn.execute(sa.text("ANALYZE chat_messages"))
    return {
        "asked": count,
        "conversations": written,
        "messages": messages,
        "text_mib": characters / 2**20,
        "fill_s": None,
        "generate_s": None,
        "complete": True,
    }


async def measure(store: ChatStore, reps: int) -> dict[str, Any]:
    """Latency (ms) of every query, as a client and as the admin, and hits found."""
    timings: dict[str, dict[str, list[float]]] = {"client": {}, "admin": {}}
    hits: dict[str, list[int]] = {}
    for kind, query in Corpus().queries():
        for scope, owner in (("client", "client-07"), ("admin", None)):
            found = await store.search(owner, query, 20)  # untimed: the cache warms
            hits.setdefault(f"{scope}/{kind}", []).append(len(found))
            samples = timings[scope].setdefault(kind, [])
            for _ in range(reps):
                started = time.perf_counter()
                await store.search(owner, query, 20)
                samples.append((time.perf_counter() - started) * 1000)
    summary: dict[str, Any] = {}
    for scope, kinds in timings.items():
        every = [ms for samples in kinds.values() for ms in samples]
        summary[scope] = {
            kind: {
                "p50": percentile(samples, 50),
                "p99": percentile(samples, 99),
                "max": max(samples),
                "hits": sum(hits[f"{scope}/{kind}"]) / len(hits[f"{scope}/{kind}"]),
                "n": len(samples),
            }
            for kind, samples in kinds.items()
        }
        summary[scope]["all"] = {
            "p50": percentile(every, 50),
            "p99": percentile(every, 99),
            "max": max(every),
            "n": len(every),
        }
        typical = [ms for kind, samples in kinds.items() if kind != "common" for ms in samples]
        summary[scope]["all but common"] = {
            "p50": percentile(typical, 50),
            "p99": percentile(typical, 99),
            "max": max(typical),
            "n": len(typical),
        }
    return summary


@contextlib.asynccontextmanager
async def postgres_database(reuse: bool) -> AsyncIterator[str]:
    """A new database ``PG_DB``, dropped at the end; with ``reuse``, the one kept by an
    earlier run (or a new one), kept."""
    admin = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            found = await conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": PG_DB}
            )
            if not (reuse and found):
                await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)"))
                await conn.execute(sa.text(f"CREATE DATABASE {PG_DB}"))
        yield f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"
    finally:
        if not reuse:
            async with admin.connect() as conn:
                await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)"))
        await admin.dispose()


async def _backend(url: str, args: argparse.Namespace, size: Callable[[], float | None]) -> Any:
    engine = open_engine(url)
    try:
        store = ChatStore(engine)
        await migrate(engine)
        filled = await filled_before(store, args.conversations) if args.reuse else None
        if filled is None:
            filled = await fill(store, args.conversations, args.max_fill)
            _log(f"{engine.dialect.name}: filled in {filled['fill_s']:.0f} s; searching")
        else:
            _log(f"{engine.dialect.name}: reusing {PG_DB}; searching")
        measured = await measure(store, args.reps)
    finally:
        await engine.dispose()
    return {**filled, "size_mib": size(), "search": measured}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"backends": {}}
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="standby-chat-bench-") as folder:
            path = Path(folder) / "standby.db"
            sqlite = argparse.Namespace(**{**vars(args), "reuse": False})  # a new file
            results["backends"]["sqlite"] = await _backend(
                f"sqlite:///{path}", sqlite, lambda: path.stat().st_size / 2**20
            )
    if args.postgresql:
        async with postgres_database(args.reuse) as url:
            results["backends"]["postgresql"] = await _backend(url, args, lambda: None)
    return results


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def render_results(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"# Chat search over a big history — {results['started']}",
        "",
        f"- command: `{results['command']}`",
        f"- machine: {m['nproc']} CPUs, {m['cpu_model']}, Python {m['python']}, git {m['git']}",
        f"- load average at start {m['loadavg_start']}, at end {results.get('loadavg_end')}",
        "",
        "`ChatStore.search(owner, query, 20)`, from the call to the hits (snippets, "
        "conversations) in hand, warm. A client sees its own conversations (1 of 50 "
        "owners); the admin sees all. Target: under 50 ms.",
        "",
    ]
    for name, b in results["backends"].items():
        size = f", {b['size_mib']:,.0f} MiB on disk" if b["size_mib"] is not None else ""
        partial = "" if b["complete"] else f" (of {b['asked']:,} asked: the fill ran out of time)"
        filled = (
            "filled by an earlier run (--reuse)"
            if b["fill_s"] is None
            else f"filled in {b['fill_s']:,.0f} s ({b['generate_s']:,.0f} s of it generating "
            "the text)"
        )
        lines += [
            f"## {name}",
            "",
            f"{b['conversations']:,} conversations{partial}, {b['messages']:,} messages, "
            f"{b['text_mib']:,.0f} MiB of text{size}; {filled}.",
            "",
            "| query | as | p50 ms | p99 ms | max ms | hits (of 20) |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for kind in (*KINDS, "all but common", "all"):
            for scope in ("client", "admin"):
                row = b["search"][scope][kind]
                hits = f"{row['hits']:.1f}" if "hits" in row else ""
                lines.append(
                    f"| {kind} | {scope} | {_ms(row['p50'])} | {_ms(row['p99'])} "
                    f"| {_ms(row['max'])} | {hits} |"
                )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--postgresql", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--no-sqlite", action="store_true", help="not on SQLite")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help=f"keep the PostgreSQL database {PG_DB}, and measure it again unfilled if it "
        "holds the conversations asked",
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--max-fill", type=float, default=1800.0, help="seconds of filling, per database"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench" / "results" / f"chat-search-{time.strftime('%Y-%m-%d')}",
        help="write OUT.json and OUT.md",
    )
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "command": "python -m bench.chat_search_bench " + " ".join(argv or sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine.facts(ROOT),
    }
    results.update(asyncio.run(run(args)))
    record(results, args.out, render_results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
