"""``standby incidents …``, ``standby status`` and ``standby notify test`` against a real
gateway on loopback (the commands run in a thread: they make blocking HTTP calls)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner, Result

from standby.cli import main
from standby.sim import SimProvider
from standby.testing import running_gateway
from tests.conftest import two_target_plan

TOKEN = "admin-token-for-the-cli-test"


async def run(*args: str) -> Result:
    runner = CliRunner(env={"COLUMNS": "200"})  # tables on one line each
    return await asyncio.to_thread(runner.invoke, main, list(args), catch_exceptions=False)


async def test_open_show_ack_update_resolve_and_list(
    primary: SimProvider, backup: SimProvider
) -> None:
    plan = two_target_plan(primary, backup, server={"admin_token": TOKEN})
    async with running_gateway(plan) as gw:
        where = ["--url", gw.root_url, "--token", TOKEN]
        opened = await run("incidents", "open", *where, "Chat assistant", "Answers are slow")
        assert opened.exit_code == 0, opened.output
        incident = opened.output.strip()
        assert incident.startswith("inc_")
        steps = [
            ("ack", incident, "--by", "alice"),
            ("update", incident, "Failing over to the backup", "--status", "identified"),
            ("publish", incident, "--by", "alice"),
            ("publish", incident),  # once is enough: a second is a no-op
            ("resolve", incident, "--message", "Fixed"),
        ]
        for step in steps:
            done = await run("incidents", step[0], *where, *step[1:])
            assert done.exit_code == 0, done.output
        shown = await run("incidents", "show", *where, incident, "--json")
        listed = await run("incidents", "list", *where)
        status = await run("status", *where, "--json")
        table = await run("status", *where)
        refused = await run("incidents", "list", "--url", gw.root_url, "--token", "wrong")
        missing = await run("incidents", "show", *where, "inc_nope")
    row = json.loads(shown.output)
    assert row["status"] == "resolved" and row["acknowledged_at"] is not None
    assert [e["kind"] for e in row["timeline"]] == [
        "opened",
        "acknowledged",
        "update",
        "published",
        "resolved",
    ]
    assert incident in listed.output and "Answers are slow" in listed.output
    assert set(json.loads(status.output)["targets"]) == {
        "primary/gpt-4o-mini",
        "backup/gpt-4o-mini",
    }
    assert "primary/gpt-4o-mini" in table.output and "No open incidents." in table.output
    assert refused.exit_code == 1 and "HTTP 401" in refused.output
    assert missing.exit_code == 1 and "HTTP 404" in missing.output


async def test_a_gateway_that_is_not_there_is_a_clear_error() -> None:
    result = await run("status", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1 and "cannot reach Standby" in result.output


def test_notify_test_names_an_unknown_channel(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "providers: {p: {base_url: 'http://127.0.0.1:1/v1'}}\n"
        "routes: {m: {targets: [p/m]}}\n"
        "notify: {channels: {hooks: {kind: webhook, url: 'http://127.0.0.1:9/h', secret: s}}}\n"
    )
    result = CliRunner().invoke(main, ["notify", "test", "pager", "--plan", str(plan)])
    assert result.exit_code == 1 and "no channel 'pager' (channels: hooks)" in result.output
    result = CliRunner().invoke(main, ["notify", "test", "hooks", "--plan", str(plan)])
    assert result.exit_code == 1 and "hooks: not delivered" in result.output
