"""The command line, invoked as a user would."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner

from standby.cli import main
from standby.providers.sim import SimProvider

COMMANDS = [[], ["serve"], ["plan"], ["plan", "check"], ["sim"], ["demo"], ["key"], ["key", "hash"]]


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w) or "standby")
def test_every_command_has_help(words: list[str]) -> None:
    result = CliRunner().invoke(main, [*words, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and "standby, version" in result.output


def test_plan_check_names_file_line_and_key(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "providers:\n  a: {base_url: 'http://127.0.0.1:1/v1'}\n"
        "timeouts: {conect: 3s}\nroutes:\n  m: {targets: ['a/m']}\n"
    )
    result = CliRunner().invoke(main, ["plan", "check", str(plan)])
    assert result.exit_code == 1
    assert f"{plan}:3" in result.output and "timeouts.conect" in result.output


def test_public_bind_without_client_keys_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "providers:\n  a: {base_url: 'http://127.0.0.1:1/v1'}\nroutes:\n  m: {targets: ['a/m']}\n"
    )
    result = CliRunner().invoke(main, ["serve", "--plan", str(plan), "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "client keys" in result.output


def test_key_hash_is_the_form_the_plan_takes() -> None:
    result = CliRunner().invoke(main, ["key", "hash", "sk-client"])
    assert result.output.startswith("sha256:") and len(result.output.strip()) == 71


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_as_a_process_with_the_openai_sdk(tmp_path: Path) -> None:
    async with SimProvider("primary") as sim:
        plan = tmp_path / "plan.yaml"
        plan.write_text(
            "providers:\n"
            f"  primary: {{base_url: '{sim.base_url}', api_key: '${{PRIMARY_KEY}}'}}\n"
            "routes:\n  gpt-4o-mini: {targets: ['primary/gpt-4o-mini']}\n"
        )
        port = free_port()
        env = {**os.environ, "PRIMARY_KEY": "sk-live-secret-value"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "standby.cli",
            "serve",
            "--plan",
            str(plan),
            "--port",
            str(port),
            env=env,
            stderr=subprocess.PIPE,
        )
        try:
            assert proc.stderr is not None
            async with asyncio.timeout(20):
                while b"listening" not in await proc.stderr.readline():
                    pass
                client = openai.AsyncOpenAI(
                    base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0
                )
                for _ in range(100):  # the socket opens just after the banner
                    try:
                        reply = await client.chat.completions.create(
                            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                        )
                        break
                    except openai.APIConnectionError:
                        await asyncio.sleep(0.05)
                assert reply.choices[0].message.content == sim.expected_text()
                await client.close()
            assert sim.requests[-1].headers.get("authorization") == "Bearer sk-live-secret-value"
        finally:
            proc.terminate()
            async with asyncio.timeout(20):
                _, err = await proc.communicate()
        assert b"sk-live-secret-value" not in err
