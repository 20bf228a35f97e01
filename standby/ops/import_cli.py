"""``standby import chatgpt|claude EXPORT.zip``: a person's conversations from the
ChatGPT or Claude data export, into the chat page's history in the journal's database.

The export is read and parsed first, so a wrong file leaves the database alone.  The
database is the plan's (``journal.url``; by default ``standby.db`` beside the plan, or
in the current directory without one); it is created and migrated if need be, so an
import can come before the gateway's first start.  Only the plan's ``journal`` section
is read.  Importing the same export again adds nothing; a newer export of the same
account adds only what is new.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import click
import orjson
from sqlalchemy.exc import SQLAlchemyError

from standby.chat.store import ChatStore
from standby.errors import ExportUnreadable, PlanError
from standby.importers import chatgpt, claude
from standby.importers.archive import ArchiveLimits, read_member
from standby.importers.ingest import ImportReport, ingest
from standby.importers.tree import Parsed
from standby.journal.migrate import migrate
from standby.journal.service import journal_url
from standby.journal.sql import SQLStore
from standby.ops.backup import public_url
from standby.ops.cli import _run
from standby.plan.load import load_journal_config
from standby.plan.model import JournalConfig
from standby.plan.values import parse_size

__all__ = ["import_group"]

Parse = Callable[[bytes, str], Parsed]  # conversations.json's bytes, where they were
MEMBER = "conversations.json"  # in both vendors' exports
_EXAMPLES = 5  # skipped items shown by name; the rest are counted


def _url(plan_path: str | None) -> str:
    if not plan_path:
        return journal_url(JournalConfig(), Path.cwd())
    try:
        config = load_journal_config(plan_path, os.environ)
    except PlanError as error:
        raise click.ClickException(str(error)) from None
    return journal_url(config, Path(plan_path).resolve().parent)


def _limits(max_size: str) -> ArchiveLimits:
    try:
        return ArchiveLimits(member_bytes=parse_size(max_size))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-size") from None


def _read(parse: Parse, export: Path, limits: ArchiveLimits) -> Parsed:
    try:
        return parse(read_member(export, MEMBER, limits), f"{export}: {MEMBER}")
    except ExportUnreadable as exc:
        raise click.ClickException(str(exc)) from None


async def _write(parsed: Parsed, source: str, url: str, owner: str | None) -> ImportReport:
    try:
        store = SQLStore.from_url(url)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        await migrate(store.engine)
        return await ingest(ChatStore(store.engine), parsed, source, owner)
    except (SQLAlchemyError, OSError) as exc:
        raise click.ClickException(
            f"cannot write to the journal at {public_url(url)}: {store.explain(exc)}"
        ) from None
    finally:
        await store.close()


def _echo(report: ImportReport, export: Path, url: str, owner: str | None) -> None:
    whose = f" for {owner}" if owner else ""
    click.echo(f"{report.source} export {export} → {public_url(url)}{whose}")
    click.echo(
        f"  conversations: {report.imported} imported, {report.updated} updated, "
        f"{report.unchanged} already there"
    )
    click.echo(f"  messages: {report.messages} added")
    if not report.skipped:
        return
    click.echo(f"  left out: {len(report.skipped)}")
    for reason, count in report.reasons().most_common():
        click.echo(f"    {count:>6}  {reason}")
    whole = [skip for skip in report.skipped if not skip.item]
    for skip in whole[:_EXAMPLES]:
        click.echo(f"    conversation {skip.conversation!r}: {skip.reason}")
    if len(whole) > _EXAMPLES:
        click.echo(f"    … and {len(whole) - _EXAMPLES} more conversations")


def _command(name: str, vendor: str, parse: Parse, where: str) -> click.Command:
    help_text = (
        f"Import the conversations of a {vendor} data export (the zip file {where}) into "
        "the chat history, with their branches (edited questions, regenerated answers). "
        "Images, files and tool calls become short placeholders; hidden system prompts "
        "and empty messages are left out and counted. Running it again adds nothing.\n\n"
        f"\b\nstandby import {name} EXPORT.zip --plan plan.yaml --owner ana"
    )

    @click.command(name, help=help_text, short_help=f"Import a {vendor} data export.")
    @click.argument("export", type=click.Path(dir_okay=False, path_type=Path))
    @click.option(
        "--plan",
        "plan_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="The downtime plan (YAML) whose journal database receives the conversations; "
        "only its journal section is read. Without it: standby.db in the current directory.",
    )
    @click.option(
        "--owner",
        metavar="NAME",
        default=None,
        help="The client (a name in the plan's server.client_keys) whose chat history "
        "they join; without it, the history of a gateway without client keys (the admin's).",
    )
    @click.option(
        "--max-size",
        default="1GiB",
        show_default=True,
        metavar="SIZE",
        help="Refuse a conversations.json bigger than this once uncompressed.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    def command(
        export: Path, plan_path: str | None, owner: str | None, max_size: str, as_json: bool
    ) -> None:
        url = _url(plan_path)
        parsed = _read(parse, export, _limits(max_size))
        report = _run(lambda: _write(parsed, name, url, owner))
        if as_json:
            click.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
        else:
            _echo(report, export, url, owner)

    return command


@click.group("import")
def import_group() -> None:
    """Import conversations from ChatGPT or Claude data exports into the chat history
    (kept in the journal's database)."""


import_group.add_command(
    _command(
        "chatgpt",
        "ChatGPT",
        chatgpt.parse,
        "from Settings → Data controls → Export data, mailed as a link",
    )
)
import_group.add_command(
    _command(
        "claude",
        "Claude",
        claude.parse,
        "from Settings → Privacy → Export data, mailed as a link",
    )
)
