"""Journal commands: ``standby export``, ``standby backup`` and ``standby journal tail``.

Each opens the journal database the plan names (``journal.url``; by default
``standby.db`` beside the plan file) for reading only, so it works while a gateway is
running.  Only the plan's ``journal`` section is read: the providers' keys need not be
set.  The database trails the gateway's write-ahead log by one batch (about a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from standby.errors import PlanError
from standby.journal.service import journal_url
from standby.journal.sql import SQLStore
from standby.journal.store import RequestRow
from standby.ops.backup import BackupError, backup, public_url
from standby.ops.export import (
    FORMATS,
    chat_line,
    iter_requests,
    jsonl_line,
    markdown_name,
    markdown_page,
    parse_when,
)
from standby.ops.tail import Tail
from standby.plan.load import load_journal_config
from standby.plan.model import JournalConfig

__all__ = ["backup_command", "export_command", "journal_group"]

T = TypeVar("T")
_PLAN_HELP = (
    "The downtime plan (YAML) whose journal to read; only its journal section is read, "
    "so the providers' keys need not be set. Without it: standby.db in the current "
    "directory, where `standby serve` without a plan journals."
)
_FIELDS = (
    "rid",
    "received_at",
    "endpoint",
    "route",
    "model_asked",
    "stream",
    "state",
    "status",
    "completion_id",
    "provider",
    "model",
    "finished_at",
    "attempts",
    "request",
    "response",
    "content_sent",
    "usage",
    "metadata",
)


def _plan_url(plan_path: str | None) -> str:
    """The journal URL of the plan, as the gateway computes it; for SQLite, checked to
    exist (opening a missing file would create an empty database).

    Only the plan's ``journal`` section is read: these commands run where the gateway's
    provider keys may not be set (a laptop, a cron job), and need none of them.
    """
    if not plan_path:
        url = journal_url(JournalConfig(), Path.cwd())
    else:
        try:
            config = load_journal_config(plan_path, os.environ)
        except PlanError as error:
            raise click.ClickException(str(error)) from None
        url = journal_url(config, Path(plan_path).resolve().parent)
    parsed = make_url(url)  # the plan's check let only usable URLs through
    if (
        parsed.get_backend_name() == "sqlite"
        and parsed.database
        and not Path(parsed.database).is_file()
    ):
        raise click.ClickException(
            f"no journal database at {public_url(url)} (has the gateway run with this plan?)"
        )
    return url


def _when(value: str | None, name: str, now: float) -> float | None:
    try:
        return None if value is None else parse_when(value, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


@asynccontextmanager
async def _reading(url: str) -> AsyncIterator[SQLStore]:
    """The journal store at ``url``; a database problem becomes a one-line error naming
    the URL (never its password)."""
    shown = public_url(url)
    try:
        store = SQLStore.from_url(url)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield store
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        detail = store.explain(exc)
        if "no such table" in detail or 'relation "requests" does not exist' in detail:
            detail += " (the gateway creates the journal's tables when it first starts)"
        raise click.ClickException(f"cannot read the journal at {shown}: {detail}") from None
    finally:
        await store.close()


def _run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return asyncio.run(work())
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130) from None


plan_option = click.option(
    "--plan", "plan_path", type=click.Path(dir_okay=False), default=None, help=_PLAN_HELP
)


@click.command("export")
@plan_option
@click.option(
    "--since",
    metavar="WHEN",
    help="Requests received at or after WHEN: a duration "
    "ago (24h, 7d, 90m), unix seconds or ISO 8601 (2026-11-27T09:00, UTC unless an "
    "offset is given).",
)
@click.option("--until", metavar="WHEN", help="Requests received before WHEN (same forms).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="jsonl",
    show_default=True,
    help="jsonl: every request, all fields, one JSON object a line.  openai-chat: "
    'completed chat requests as {"messages": [...]} lines (the chat fine-tuning '
    "format).  markdown: one file per conversation in the --out directory.",
)
@click.option(
    "--out",
    "out",
    default="-",
    show_default=True,
    metavar="PATH",
    help="File to write, or - for stdout; for markdown, a directory.",
)
@click.option(
    "--redact",
    "fields",
    multiple=True,
    metavar="FIELD",
    help='Replace FIELD with "[redacted]"; a dotted path into the jsonl record, '
    "repeatable: metadata.user_email, request.messages.content, response.",
)
@click.option("--state", type=click.Choice(Tail.STATES), help="Only requests in this state.")
@click.option("--route", help="Only requests for this route (public model name).")
def export_command(
    plan_path: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
    out: str,
    fields: tuple[str, ...],
    state: str | None,
    route: str | None,
) -> None:
    """Export journaled requests, newest first, without loading the journal into memory.

    \b
    standby export --plan plan.yaml --since 24h > today.jsonl
    standby export --plan plan.yaml --format openai-chat --out dataset.jsonl
    standby export --plan plan.yaml --format markdown --out transcripts/ \\
        --redact metadata.user_email
    """
    now = time.time()
    start, end = _when(since, "--since", now), _when(until, "--until", now)
    for field in fields:
        if field.split(".", 1)[0] not in _FIELDS:
            raise click.BadParameter(
                f"unknown field {field!r}; the record's fields are {', '.join(_FIELDS)}",
                param_hint="--redact",
            )
    if fmt == "markdown" and out == "-":
        raise click.BadParameter("the markdown export needs a directory", param_hint="--out")
    url = _plan_url(plan_path)

    async def work(
        write: Callable[[AsyncIterator[RequestRow]], Coroutine[Any, Any, _Counts]],
    ) -> _Counts:
        async with _reading(url) as store:
            return await write(
                iter_requests(store, since=start, until=end, state=state, route=route)
            )

    if fmt == "markdown":
        directory = Path(out)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
        written, skipped = _run(lambda: work(lambda rows: _markdown(rows, directory, fields)))
    else:
        line_of = jsonl_line if fmt == "jsonl" else chat_line
        with _output(out) as stream:
            written, skipped = _run(
                lambda: work(lambda rows: _lines(rows, stream, lambda row: line_of(row, fields)))
            )
    note = (
        f" ({skipped} skipped: not completed chat requests with their messages)" if skipped else ""
    )
    target = "stdout" if out == "-" else out
    click.echo(f"exported {written} requests to {target}{note}", err=True)


_Counts = tuple[int, int]  # requests written, skipped


async def _lines(
    rows: AsyncIterator[RequestRow],
    stream: IO[bytes],
    line_of: Callable[[RequestRow], bytes | None],
) -> _Counts:
    written = skipped = 0
    async for row in rows:
        line = line_of(row)
        if line is None:
            skipped += 1
            continue
        try:
            stream.write(line)
        except BrokenPipeError:  # `standby export | head`: the reader has had enough
            break
        except OSError as exc:  # not the database's fault: say so
            raise click.ClickException(f"cannot write the export: {exc.strerror or exc}") from None
        written += 1
    return written, skipped


async def _markdown(
    rows: AsyncIterator[RequestRow], directory: Path, fields: tuple[str, ...]
) -> _Counts:
    written = 0
    async for row in rows:
        path = directory / markdown_name(row)
        try:
            await asyncio.to_thread(path.write_text, markdown_page(row, fields), encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
        written += 1
    return written, 0


@contextmanager
def _output(path: str) -> Iterator[IO[bytes]]:
    """stdout, or a file written beside ``path`` and renamed into place when complete."""
    if path == "-":
        stdout = sys.stdout.buffer
        yield stdout
        try:
            stdout.flush()
        except BrokenPipeError:  # and keep Python's exit-time flush from complaining
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    partial = Path(f"{path}.partial")
    try:
        stream = partial.open("wb")
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with stream:
            yield stream
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


@click.command("backup")
@plan_option
@click.argument("path", type=click.Path(path_type=Path))
def backup_command(plan_path: str | None, path: Path) -> None:
    """Copy the SQLite journal to PATH, consistently, while the gateway keeps writing.

    PATH is a file (replaced if it exists) or a directory to put a time-stamped copy in.
    The copy is one self-contained SQLite file, integrity-checked before it is moved into
    place.  A PostgreSQL journal is backed up with pg_dump: the error says the command.
    """
    url = _plan_url(plan_path)
    try:
        report = _run(lambda: backup(url, path))
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    requests = report.rows.get("requests", 0)
    click.echo(f"backed up {requests} requests ({report.size / 1e6:.1f} MB) to {report.path}")


@click.group("journal")
def journal_group() -> None:
    """Read the journal: every request, its attempts and its outcome."""


@journal_group.command("tail")
@plan_option
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="How many of the latest requests to show first.",
)
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep watching: every second, print new "
    "requests and state changes (a stream that completes), until Ctrl-C.",
)
@click.option("--state", type=click.Choice(Tail.STATES), help="Only requests in this state.")
@click.option("--route", help="Only requests for this route (public model name).")
def tail_command(
    plan_path: str | None, limit: int, follow: bool, state: str | None, route: str | None
) -> None:
    """The latest requests as a table: time, request id, route, model asked → the
    provider/model that answered, state, attempts and latency.

    The table fits the terminal: under 120 columns the request id is left out, and
    under 80 columns the attempts too.
    """
    url = _plan_url(plan_path)

    async def work() -> None:
        async with _reading(url) as store:
            tail = Tail(store, state=state, route=route)
            tail.show(await tail.latest(limit), header=True)
            while follow:
                await asyncio.sleep(1.0)
                tail.show(await tail.poll(), header=False)

    _run(work)
