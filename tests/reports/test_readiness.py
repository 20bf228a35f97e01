"""``standby plan check --readiness``: plans that would not survive an outage are flagged,
from the plan alone and from the journal (backups never exercised)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from standby.cli import main
from standby.journal.migrate import migrate
from standby.journal.sql import SQLStore
from standby.plan.load import parse_plan
from standby.reports.readiness import exercise_findings, plan_findings

PROVIDERS = """\
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1", api_key: k}
  azure: {kind: azure, base_url: "https://acme.openai.azure.com", api_key: k}
  anthropic: {kind: anthropic, base_url: "https://api.anthropic.com", api_key: k}
  groq: {kind: openai-compatible, base_url: "https://api.groq.com/openai/v1", api_key: k}
  groq2: {kind: openai-compatible, base_url: "https://api.groq.com/openai/v1", api_key: k}
"""
NOTIFY = """\
notify:
  channels: {ops: {kind: webhook, url: "https://hooks.example/x"}}
  escalation: [{after: 0s, notify: [ops]}]
"""


@pytest.mark.parametrize(
    ("routes", "notify", "expected"),
    [
        ('  chat: {targets: ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"]}\n', NOTIFY, []),
        (
            '  chat: {targets: ["openai/gpt-4o-mini"]}\n',
            NOTIFY,
            [("routes.chat", "losing openai leaves it nothing")],
        ),
        (  # two accounts of one vendor fail together
            '  chat: {targets: ["groq/llama-3.1-8b", "groq2/llama-3.1-8b"]}\n',
            NOTIFY,
            [("routes.chat", "are at api.groq.com")],
        ),
        (
            '  chat: {targets: ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"]}\n',
            "",
            [("notify.escalation", "no step notifies a channel")],
        ),
    ],
    ids=["ready", "one provider", "one vendor", "tells no one"],
)
def test_plans_that_would_not_survive_are_flagged(
    routes: str, notify: str, expected: list[tuple[str, str]]
) -> None:
    plan = parse_plan(PROVIDERS + "routes:\n" + routes + notify, file="p.yaml", env={})
    found = [(f.where, f.message) for f in plan_findings(plan)]
    assert len(found) == len(expected)
    for (where, message), (want_where, words) in zip(found, expected, strict=True):
        assert where == want_where and words in message


async def test_a_backup_that_never_answered_is_flagged(tmp_path: Path) -> None:
    plan = parse_plan(
        PROVIDERS
        + 'routes:\n  chat: {targets: ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku", '
        '"azure/gpt-4o-mini"]}\n' + NOTIFY,
        file="p.yaml",
        env={},
    )
    store = SQLStore.from_url(f"sqlite:///{tmp_path / 'journal.db'}")
    await migrate(store.engine)
    now = time.time()
    async with store.engine.begin() as conn:
        from standby.journal.schema import requests

        for n, (provider, model, age) in enumerate(
            [("openai", "gpt-4o-mini", 1.0), ("anthropic", "claude-3-5-haiku", 40 * 86_400.0)]
        ):
            await conn.execute(
                requests.insert().values(
                    rid=f"r{n}",
                    wal_id="w",
                    received_at=now - age,
                    endpoint="/v1/chat/completions",
                    route="chat",
                    model_asked="chat",
                    stream=False,
                    store=False,
                    state="completed",
                    provider=provider,
                    model=model,
                )
            )
    try:
        found = await exercise_findings(store.engine, plan, days=30, now=now)
    finally:
        await store.engine.dispose()
    # the primary answered; one backup did, but 40 days ago; the other never
    assert [f.message.split(" answered")[0] for f in found] == [
        "backup anthropic/claude-3-5-haiku",
        "backup azure/gpt-4o-mini",
    ]


def test_plan_check_readiness_says_each_finding_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PROVIDERS + 'routes:\n  chat: {targets: ["openai/gpt-4o-mini"]}\n' + NOTIFY)
    result = CliRunner().invoke(main, ["plan", "check", str(path), "--readiness"])
    assert result.exit_code == 1, result.output
    assert f"{path}: routes.chat: losing openai leaves it nothing" in result.output
    path.write_text(
        PROVIDERS
        + 'routes:\n  chat: {targets: ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"]}\n'
        + NOTIFY
    )
    result = CliRunner().invoke(main, ["plan", "check", str(path), "--readiness"])
    assert result.exit_code == 0, result.output
    assert "ready — every route survives" in result.output
