"""The command line, invoked as a user would."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from click.testing import CliRunner
from sqlalchemy.exc import ArgumentError

from standby.cli import main
from standby.errors import JournalUnavailable, StartupError
from standby.plan.model import Plan
from standby.sim import SimProvider
from standby.web.asgi import hash_key

# (command, words its --help must contain)
COMMANDS: list[tuple[list[str], list[str]]] = [
    ([], ["serve", "plan", "demo", "sim", "key", "export", "backup", "journal", "report", "drill"]),
    (["serve"], ["--plan", "--host", "server.admin_token", "--log-format", "[text|json]"]),
    (["plan"], ["check"]),
    (
        ["plan", "check"],
        ["file:line: key: message", "journal URL", "duplicate keys", "--readiness"],
    ),
    (["sim"], ["/_sim/fault"]),
    (["demo"], ["--once", "temporary directory"]),
    (["key"], ["hash"]),
    (["key", "hash"], ["standard input", "without echo", "[KEY]"]),
    (["export"], ["--since", "--format", "providers' keys need not be set"]),
    (["backup"], ["PATH", "--plan"]),
    (["journal"], ["tail"]),
    (["journal", "tail"], ["--follow", "under 120 columns", "under 80 columns"]),
    (["status-page"], ["--plan", "--listen", "journal's database", "subscriptions"]),
    (["report"], ["INCIDENT_ID", "--since", "--format", "previous 7 days"]),
    (["drill"], ["--target", "--fault", "drills.objectives", "list", "[DRILL]"]),
    (["drill", "list"], ["journal kept", "verdicts"]),
    (["cluster", "status"], ["lease", "agree", "--json"]),
]


@pytest.mark.parametrize(
    ("words", "mentions"), COMMANDS, ids=[" ".join(c[0]) or "standby" for c in COMMANDS]
)
def test_every_command_has_help(words: list[str], mentions: list[str]) -> None:
    result = CliRunner().invoke(main, [*words, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    text = " ".join(result.output.split())  # as read, whatever the wrapping
    for word in mentions:
        assert word in text


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


def test_plan_check_lists_every_problem_on_its_own_line(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "providers:\n"  # 1
        "  a: {base_url: 'http://127.0.0.1:1/v1'}\n"  # 2
        "  a: {base_url: 'http://127.0.0.1:2/v1'}\n"  # 3
        "routes: {}\n"  # 4
        "routes: {}\n"  # 5
    )
    result = CliRunner().invoke(main, ["plan", "check", str(plan)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines() == [
        f"Error: {plan}:3: providers.a: duplicate key (first written on line 2): a mapping "
        "holds each key once; keep the one you mean",
        f"{plan}:5: routes: duplicate key (first written on line 4): a mapping holds each "
        "key once; keep the one you mean",
    ]
    plan.write_text(
        "providers:\n  a: {base_url: 'http://127.0.0.1:1/v1'}\nroutes: {}\n"
        "server: {host: 0.0.0.0}\n"
    )
    result = CliRunner().invoke(main, ["plan", "check", str(plan)])
    lines = result.output.removeprefix("Error: ").splitlines()
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{plan}:3", "routes"],
        [f"{plan}:4", "server.admin_token"],
        [f"{plan}:4", "server.client_keys"],
    ]


def test_plan_check_describes_a_good_plan(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "providers:\n  a: &p {base_url: 'http://127.0.0.1:1/v1'}\n  b: {<<: *p}\n"
        "routes:\n  m: {tiers: [[a/m, b/m], [b/n]]}\n"
    )
    result = CliRunner().invoke(main, ["plan", "check", str(plan)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{plan}: ok — 2 providers, 1 routes",
        "  m: a/m | b/m → b/n",
    ]


PLAN = "providers:\n  a: {base_url: 'http://127.0.0.1:1/v1'}\nroutes:\n  m: {targets: ['a/m']}\n"
KEYS = "  client_keys: ['sha256:%s']\n" % ("ab" * 32)
TOKEN = "  admin_token: ${ADMIN_TOKEN}\n"


class FakeServer:
    """Stands in for ``run_server``: records how it was called, or raises ``error``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def __call__(self, plan: Plan, **kwargs: Any) -> None:
        self.calls.append({"plan": plan, **kwargs})
        if self.error is not None:
            raise self.error


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    server = FakeServer()
    monkeypatch.setattr("standby.web.serve.run_server", server)
    return server


# (case, server section of the plan, --host, words of the refusal; [] if it may bind)
EXPOSURE = [
    ("nothing", "", "0.0.0.0", ["server.client_keys and server.admin_token", "key hash"]),
    ("keys only", "server:\n" + KEYS, "0.0.0.0", ["without server.admin_token in the plan"]),
    ("token only", "server:\n" + TOKEN, "10.0.0.5", ["without server.client_keys in"]),
    ("both", "server:\n" + KEYS + TOKEN, "0.0.0.0", []),
    ("loopback", "", "127.0.0.1", []),
    ("ipv6 loopback", "", "::1", []),
    ("localhost", "", "localhost", []),
]


@pytest.mark.parametrize(
    ("server", "host", "words"), [c[1:] for c in EXPOSURE], ids=[c[0] for c in EXPOSURE]
)
def test_a_public_bind_needs_client_keys_and_an_admin_token(
    tmp_path: Path, fake_server: FakeServer, server: str, host: str, words: list[str]
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN + server)
    result = CliRunner().invoke(
        main, ["serve", "--plan", str(plan), "--host", host], env={"ADMIN_TOKEN": "t0k"}
    )
    if not words:
        assert result.exit_code == 0, result.output
        assert fake_server.calls[0]["host"] == host
        return
    assert result.exit_code == 1 and not fake_server.calls
    assert result.output.startswith(f"Error: refusing to bind {host}, which is not a loopback")
    assert len(result.output.splitlines()) == 1
    for word in words:
        assert word in result.output


def test_a_public_bind_without_a_plan_asks_for_one(fake_server: FakeServer) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--host", "0.0.0.0"], env={"OPENAI_API_KEY": "sk-x"}
    )
    assert result.exit_code == 1 and "in a plan given with --plan" in result.output


def test_serve_passes_the_plan_and_the_log_format(tmp_path: Path, fake_server: FakeServer) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    result = CliRunner().invoke(
        main, ["serve", "--plan", str(plan), "--port", "0", "--log-format", "json"]
    )
    assert result.exit_code == 0, result.output
    [call] = fake_server.calls
    assert call["host"] == "127.0.0.1" and call["port"] == 0
    assert (call["log_level"], call["log_format"]) == ("warning", "json")
    assert call["plan_path"] == plan and call["data_dir"] == tmp_path.resolve()
    assert call["banner"] == [f"plan: {plan}"]  # said by run_server once the port is bound
    bad = CliRunner().invoke(main, ["serve", "--plan", str(plan), "--log-format", "xml"])
    assert bad.exit_code == 2 and not fake_server.calls[1:]


# (case, what run_server raises, the one line expected after "Error: ")
START_ERRORS = [
    (
        "busy port",
        StartupError("port 8080 on 127.0.0.1 is already in use; stop the program using it"),
        "port 8080 on 127.0.0.1 is already in use; stop the program using it",
    ),
    (
        "any standby error",
        JournalUnavailable("the journal\ndatabase is gone"),
        "the journal database is gone",
    ),
    (
        "a directory it may not write",
        PermissionError(errno.EACCES, "Permission denied", "/var/lib/standby/standby-wal"),
        "cannot start: Permission denied: /var/lib/standby/standby-wal",
    ),
    (
        "a busy port as an OSError",
        OSError(errno.EADDRINUSE, "Address already in use"),
        "cannot start: the address is already in use (Address already in use)",
    ),
    (
        "a missing database driver",
        ModuleNotFoundError("No module named 'asyncpg'"),
        "cannot start: No module named 'asyncpg'",
    ),
    (
        "a database URL SQLAlchemy refuses",
        ArgumentError("Could not parse SQLAlchemy URL"),
        "cannot open the journal database: cannot start: Could not parse SQLAlchemy URL",
    ),
]


@pytest.mark.parametrize(
    ("error", "line"), [c[1:] for c in START_ERRORS], ids=[c[0] for c in START_ERRORS]
)
def test_a_failed_start_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException, line: str
) -> None:
    monkeypatch.setattr("standby.web.serve.run_server", FakeServer(error))
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    result = CliRunner().invoke(main, ["serve", "--plan", str(plan)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"Error: {line}"]
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_bug_at_start_keeps_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("standby.web.serve.run_server", FakeServer(KeyError("bug")))
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    result = CliRunner().invoke(main, ["serve", "--plan", str(plan)])
    assert isinstance(result.exception, KeyError)
    debug = FakeServer(StartupError("busy"))
    monkeypatch.setattr("standby.web.serve.run_server", debug)
    result = CliRunner().invoke(main, ["serve", "--plan", str(plan), "--log-level", "debug"])
    assert isinstance(result.exception, StartupError)  # debug: the traceback is wanted


def test_a_plan_error_at_serve_lists_every_problem(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN + "timeouts: {connect: 0, total: 2d}\n")
    result = CliRunner().invoke(main, ["serve", "--plan", str(plan)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.stderr.removeprefix("Error: ").splitlines()
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{plan}:5", "timeouts.connect"],
        [f"{plan}:5", "timeouts.total"],
    ]


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


# (command, after the port)
BUSY = [
    (["serve", "--plan", "{plan}"], "is already in use"),
    (["sim"], "is already in use"),
]


@pytest.mark.parametrize(("words", "says"), BUSY, ids=[b[0][0] for b in BUSY])
def test_a_busy_port_is_one_line_as_a_process(tmp_path: Path, words: list[str], says: str) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        args = [w.format(plan=plan) for w in words]
        done = subprocess.run(
            [sys.executable, "-m", "standby.cli", *args, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("plan: ")]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and says in lines[0], done.stderr
    assert str(port) in lines[0] and done.stdout == ""


def test_key_hash_is_the_form_the_plan_takes() -> None:
    result = CliRunner().invoke(main, ["key", "hash", "sk-client"])
    assert result.output.startswith("sha256:") and len(result.output.strip()) == 71


SK = hash_key("sk-client")
# (case, arguments, standard input, exit code, output: the hash, or words of the error)
KEY_INPUTS = [
    ("argument", ["sk-client"], "", 0, SK),
    ("stdin, no argument", [], "sk-client\n", 0, SK),
    ("stdin with -", ["-"], "sk-client\n", 0, SK),
    ("stdin without newline", [], "sk-client", 0, SK),
    ("stdin with CRLF", [], "sk-client\r\n", 0, SK),
    ("empty stdin", [], "", 2, "the key is empty"),
    ("an empty line", ["-"], "\n", 2, "the key is empty"),
    ("empty argument", [""], "", 2, "the key is empty"),
    ("two lines", [], "sk-client\nsk-other\n", 2, "several lines"),
    ("two newlines", [], "sk-client\n\n", 2, "several lines"),
    ("spaces", [], " sk-client \n", 2, "whitespace"),
]


@pytest.mark.parametrize(
    ("args", "stdin", "code", "out"), [c[1:] for c in KEY_INPUTS], ids=[c[0] for c in KEY_INPUTS]
)
def test_key_hash_reads_the_key_from_stdin(
    args: list[str], stdin: str, code: int, out: str
) -> None:
    result = CliRunner().invoke(main, ["key", "hash", *args], input=stdin)
    assert result.exit_code == code, result.output
    if code == 0:
        assert result.stdout == out + "\n"
    else:
        assert out in result.stderr and "sk-client" not in result.output


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
                while b"listening" not in (line := await proc.stderr.readline()):
                    assert line, "the gateway exited before it listened"
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
