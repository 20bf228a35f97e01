"""The container files, read as Docker, compose and HAProxy would, without any of them.

compose.yaml: three replicas of one image sharing one read-only plan, Redis, PostgreSQL
and a balancer, started in order of health. deploy/haproxy.cfg: round robin over exactly
those replicas, streaming unbuffered. The Dockerfile: non-root, a health check, and a
command line the real CLI accepts. deploy/plan.yaml: passes the real plan checker with
the environment compose gives it (and with the one docs/deployment.md gives the same
topology without containers), touching no network on the way.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from standby.cli import main
from standby.plan.load import load_plan
from standby.plan.model import Plan, is_loopback
from standby.plan.values import parse_duration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
PLAN = ROOT / "deploy" / "plan.yaml"
HAPROXY = ROOT / "deploy" / "haproxy.cfg"
REPLICAS = ["standby-1", "standby-2", "standby-3"]
PORT = 8080  # the gateway's port in its container
# what an operator puts in .env (docs/deployment.md); values of the tests' own
SECRETS = {
    "STANDBY_ADMIN_TOKEN": "admin-token-for-tests",
    "STANDBY_CALLBACK_SECRET": "callback-secret-for-tests",
    "POSTGRES_PASSWORD": "pg-password-for-tests",
}
CLIENT_KEY = "sk-client-for-tests"


# -- reading the files ------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe", pure=True).load(COMPOSE.read_text("utf-8"))
    return loaded


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


_COMPOSE_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$``.

    A required variable that is missing raises ``LookupError`` with compose's message.
    """

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        empty = value is None or (value == "" and operator is not None and ":" in operator)
        if operator in (":?", "?") and empty:
            raise LookupError(f"{name}: {argument}")
        if operator in (":-", "-") and empty:
            return argument
        return value or ""

    return _COMPOSE_VARIABLE.sub(substitute, text)


def replica_environment(shell: Mapping[str, str]) -> dict[str, str]:
    """What a replica's process sees: its compose ``environment``, interpolated from the
    operator's ``shell`` (or .env)."""
    written = services()["standby-1"]["environment"]
    return {name: interpolate(str(value), shell) for name, value in written.items()}


def operator_shell() -> dict[str, str]:
    hashed = CliRunner().invoke(main, ["key", "hash"], input=CLIENT_KEY)
    assert hashed.exit_code == 0, hashed.output
    return {**SECRETS, "STANDBY_CLIENT_KEY_HASH": hashed.output.strip()}


def dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text("utf-8"))
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def exec_form(instruction: str) -> list[str]:
    """The JSON array of the final stage's ``instruction`` (ENTRYPOINT, CMD)."""
    written = [rest for word, rest in final_stage() if word == instruction]
    assert written, f"the Dockerfile has no {instruction}"
    value = json.loads(written[-1])  # the exec form: no shell between Docker and Standby
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def haproxy_sections() -> dict[str, list[str]]:
    """``"backend standby"`` → its directives, comments and blank lines left out."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in HAPROXY.read_text("utf-8").splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = sections.setdefault(" ".join(line.split()), [])
        else:
            current.append(" ".join(line.split()))
    return sections


def command_params(name: str, argv: list[str]) -> dict[str, Any]:
    """The parameters the real ``standby NAME`` command parses from ``argv``."""
    command = main.commands[name]
    with click.Context(main) as parent:
        context = command.make_context(name, list(argv), parent=parent)
    return dict(context.params)


# -- compose.yaml ---------------------------------------------------------------------


def test_compose_runs_three_replicas_of_one_image_sharing_one_read_only_plan() -> None:
    found = services()
    gateways = sorted(name for name in found if name.startswith("standby-"))
    assert gateways == REPLICAS
    data_volumes = set()
    for name in REPLICAS:
        service = found[name]
        assert service["image"] == "standby:local" and service["build"] == "."
        assert "command" not in service  # the Dockerfile's own: standby serve
        mounts = [str(m).split(":") for m in service["volumes"]]
        assert ["./deploy", "/etc/standby", "ro"] in mounts
        # the write-ahead log is kept per replica, never shared
        (data,) = [m[0] for m in mounts if m[1] == "/var/lib/standby"]
        data_volumes.add(data)
        assert data in compose()["volumes"]
        for dependency in ("redis", "postgres"):
            assert service["depends_on"][dependency] == {"condition": "service_healthy"}
    assert len(data_volumes) == len(REPLICAS)


def test_compose_has_redis_and_postgres_that_say_when_they_are_ready() -> None:
    found = services()
    assert found["redis"]["image"].startswith("redis:")
    assert "healthcheck" in found["redis"]
    postgres = found["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    (data,) = [str(m).split(":")[0] for m in postgres["volumes"]]
    assert data in compose()["volumes"]  # a named volume: the journal outlives the container
    assert postgres["environment"]["POSTGRES_DB"] == "standby"


def test_compose_refuses_to_start_without_its_secrets() -> None:
    shell = operator_shell()
    assert replica_environment(shell)["STANDBY_ADMIN_TOKEN"] == SECRETS["STANDBY_ADMIN_TOKEN"]
    for name in shell:
        with pytest.raises(LookupError, match=name):
            replica_environment({k: v for k, v in shell.items() if k != name})


def test_compose_puts_the_balancer_in_front_once_every_replica_is_healthy() -> None:
    balancer = services()["balancer"]
    assert balancer["image"].startswith("haproxy:")
    assert balancer["depends_on"] == {name: {"condition": "service_healthy"} for name in REPLICAS}
    mounts = [str(m).split(":") for m in balancer["volumes"]]
    assert ["./deploy/haproxy.cfg", "/usr/local/etc/haproxy/haproxy.cfg", "ro"] in mounts
    (published,) = balancer["ports"]
    assert interpolate(published, {}) == f"127.0.0.1:{PORT}:{PORT}"  # loopback unless told


def test_the_simulated_providers_are_the_image_running_standby_sim() -> None:
    plan = load_plan(PLAN, replica_environment(operator_shell()))
    found = services()
    for provider in plan.providers.values():
        address = re.fullmatch(r"http://([\w-]+):(\d+)/v1", provider.base_url)
        assert address, provider.base_url
        host, port = address.groups()
        sim = found[host]
        assert sim["image"] == "standby:local"
        argv = [str(word) for word in sim["command"]]
        assert argv[0] == "sim"
        params = command_params("sim", argv[1:])
        assert params["port"] == int(port) and params["host"] == "0.0.0.0"
        for name in REPLICAS:  # started and answering before the gateways' first probe
            assert found[name]["depends_on"][host] == {"condition": "service_healthy"}


# -- deploy/haproxy.cfg ------------------------------------------------------------------


def test_the_balancer_sends_round_robin_to_exactly_the_three_replicas() -> None:
    sections = haproxy_sections()
    assert sections["frontend api"] == [f"bind :{PORT}", "default_backend standby"]
    backend = sections["backend standby"]
    assert "balance roundrobin" in backend
    servers = [line.split()[1:3] for line in backend if line.startswith("server ")]
    assert servers == [[name, f"{name}:{PORT}"] for name in REPLICAS]
    # a replica leaves the rotation when its /healthz fails, and comes back when it passes
    assert "option httpchk" in backend
    assert "http-check send meth GET uri /healthz" in backend
    assert any(line.startswith("default-server check") for line in backend)
    # a request that reached a replica is never sent again
    assert "retry-on conn-failure" in backend


def test_the_balancer_streams_unbuffered_and_outwaits_the_plan() -> None:
    defaults = haproxy_sections()["defaults"]
    # without it HAProxy's writes are gathered by the kernel and a stream arrives in
    # bursts 200 ms apart (measured through the loopback topology)
    assert "option http-no-delay" in defaults
    plan = load_plan(PLAN, replica_environment(operator_shell()))
    for side in ("client", "server"):
        (line,) = [line for line in defaults if line.startswith(f"timeout {side} ")]
        assert parse_duration(line.split()[-1]) > plan.timeouts.total


# -- Dockerfile and .dockerignore -------------------------------------------------------


def test_the_image_is_slim_python_and_runs_as_a_user_that_is_not_root() -> None:
    froms = [rest.split()[0] for word, rest in dockerfile() if word == "FROM"]
    assert froms and all(image == "python:3.11-slim" for image in froms)
    users = [rest for word, rest in final_stage() if word == "USER"]
    assert users, "the final stage sets no USER: the gateway would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert ("EXPOSE", str(PORT)) in final_stage()


def test_the_image_installs_the_package_itself_without_dev_extras() -> None:
    installs = [rest for word, rest in dockerfile() if word == "RUN" and "pip install" in rest]
    assert installs
    for command in installs:
        assert " -e " not in f" {command} " and "--editable" not in command
        assert "[dev]" not in command


def test_the_image_starts_the_real_gateway_on_every_interface() -> None:
    argv = exec_form("ENTRYPOINT") + exec_form("CMD")
    assert argv[:2] == ["standby", "serve"]
    params = command_params("serve", argv[2:])
    assert params["plan_path"] == "/etc/standby/plan.yaml"
    assert params["port"] == PORT and not is_loopback(params["host"])


def test_the_health_check_asks_healthz_with_python_alone() -> None:
    (check,) = [rest for word, rest in final_stage() if word == "HEALTHCHECK"]
    options, _, command = check.partition("CMD ")
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    code = argv[2]
    compile(code, "<healthcheck>", "exec")  # valid Python
    assert re.findall(r"^import (\w+)", code) == ["urllib"]  # stdlib: slim has no curl
    assert f"http://127.0.0.1:{PORT}/healthz" in code
    assert "--timeout=" in options and "--interval=" in options


def dockerignored() -> list[re.Pattern[str]]:
    """The .dockerignore patterns as Docker reads them: ``*`` and ``?`` within one path
    segment, ``**`` across any number of them (none included), relative to the context."""
    found = []
    for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("!"), "exceptions are not read here"
        regex = ""
        for token in re.findall(r"\*\*/|\*\*|\*|\?|\[[^]]*\]|[^*?[]+", line.strip("/")):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                token, token if token.startswith("[") else re.escape(token)
            )
        found.append(re.compile(regex))
    return found


def ignored(path: str, patterns: list[re.Pattern[str]]) -> bool:
    """Whether ``path`` stays out of the build context: itself or a folder above it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(p.fullmatch(prefix) for p in patterns for prefix in prefixes)


def test_dockerignore_keeps_local_state_out_and_the_sources_in() -> None:
    patterns = dockerignored()
    for kept_out in (
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        "standby.db",
        "deploy/standby.db-wal",
        "standby-wal/wal-00000001.jsonl",
        "deploy/standby-wal/wal_id",
        "standby-callback-secret",
        "standby/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/v/cache",
        "bench/results/scratch/run.json",
        "test-artifacts/report.html",
    ):
        assert ignored(kept_out, patterns), kept_out
    copied = [
        source
        for word, rest in dockerfile()
        if word == "COPY" and not rest.startswith("--")
        for source in rest.split()[:-1]
    ]
    assert {"pyproject.toml", "README.md", "standby"} <= set(copied)
    sources = [
        *copied,
        *(str(p.relative_to(ROOT)) for p in (ROOT / "standby").rglob("*") if p.is_file()),
    ]
    for source in sources:
        if "__pycache__" not in source:
            assert not ignored(source, patterns), source


# -- deploy/plan.yaml -------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan names hosts (redis, postgres, sim-primary) that resolve only inside
    compose's network: checking it must neither resolve nor connect."""

    def refuse(*args: object, **kwargs: object) -> Any:
        raise AssertionError(f"the plan check used the network: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def plan_variables() -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", PLAN.read_text("utf-8")))


def check(env: Mapping[str, str]) -> str:
    """``standby plan check deploy/plan.yaml`` with exactly ``env`` for the plan's
    variables (anything else of the caller's shell is hidden)."""
    hidden: dict[str, str | None] = dict.fromkeys(plan_variables())
    result = CliRunner().invoke(main, ["plan", "check", str(PLAN)], env={**hidden, **env})
    assert result.exit_code == 0, result.output
    return result.output


def test_the_plan_passes_the_checker_with_what_compose_gives_a_replica(no_network: None) -> None:
    env = replica_environment(operator_shell())
    assert "ok — 2 providers, 2 routes" in check(env)
    plan = load_plan(PLAN, env)
    # a public bind, allowed because the keys and the token are there
    assert not is_loopback(plan.server.host) and plan.server.port == PORT
    assert plan.server.admin_token == SECRETS["STANDBY_ADMIN_TOKEN"]
    assert [k.key for k in plan.server.client_keys.values()] == [env["STANDBY_CLIENT_KEY_HASH"]]
    # shared state and one journal, at compose's service names
    assert plan.state.url == "redis://redis:6379/0"
    assert plan.journal.url == (
        f"postgresql://standby:{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/standby"
    )
    assert plan.journal.callback_secret == SECRETS["STANDBY_CALLBACK_SECRET"]
    # written to the replica's own volume, not beside the read-only plan
    assert plan.journal.wal_dir.startswith("/var/lib/standby/")


def test_the_plan_reaches_real_providers_when_the_operator_names_them(no_network: None) -> None:
    shell = {
        **operator_shell(),
        "PRIMARY_BASE_URL": "https://api.openai.com/v1",
        "PRIMARY_API_KEY": "sk-openai",
        "BACKUP_BASE_URL": "https://api.groq.com/openai/v1",
        "BACKUP_API_KEY": "gsk-groq",
        "BACKUP_MODEL": "llama-3.3-70b-versatile",
    }
    plan = load_plan(PLAN, replica_environment(shell))
    assert plan.providers["primary"].base_url == "https://api.openai.com/v1"
    assert plan.providers["backup"].api_key == "gsk-groq"
    targets = [ref.target for tier in plan.routes["gpt-4o-mini"].tier_list() for ref in tier]
    assert targets == ["primary/gpt-4o-mini", "backup/llama-3.3-70b-versatile"]


def test_the_same_plan_serves_the_topology_without_containers(no_network: None) -> None:
    """docs/deployment.md: three processes on loopback ports, the machine's Redis and
    PostgreSQL, two sims; each replica differs only by its port and its log."""
    shell = operator_shell()
    common = {
        "STANDBY_ADMIN_TOKEN": shell["STANDBY_ADMIN_TOKEN"],
        "STANDBY_CLIENT_KEY_HASH": shell["STANDBY_CLIENT_KEY_HASH"],
        "STANDBY_CALLBACK_SECRET": shell["STANDBY_CALLBACK_SECRET"],
        "STANDBY_HOST": "127.0.0.1",
        "STANDBY_STATE_URL": "redis://127.0.0.1:6379/0",
        "STANDBY_JOURNAL_URL": "postgresql://postgres@127.0.0.1:5432/standby",
        "PRIMARY_BASE_URL": "http://127.0.0.1:9001/v1",
        "BACKUP_BASE_URL": "http://127.0.0.1:9002/v1",
    }
    plans: list[Plan] = []
    for n in (1, 2, 3):
        env = {**common, "STANDBY_PORT": f"808{n}", "STANDBY_WAL_DIR": f"/tmp/standby-{n}/wal"}
        check(env)
        plans.append(load_plan(PLAN, env))
    assert [(p.server.host, p.server.port) for p in plans] == [
        ("127.0.0.1", 8081),
        ("127.0.0.1", 8082),
        ("127.0.0.1", 8083),
    ]
    assert len({p.journal.wal_dir for p in plans}) == 3
    assert {p.state.url for p in plans} == {"redis://127.0.0.1:6379/0"}


def test_without_its_secrets_the_plan_is_refused_naming_each(no_network: None) -> None:
    hidden: dict[str, str | None] = dict.fromkeys(plan_variables())
    result = CliRunner().invoke(main, ["plan", "check", str(PLAN)], env=hidden)
    assert result.exit_code == 1
    for key in ("server.client_keys.app", "server.admin_token", "journal.url"):
        assert f": {key}: environment variable" in result.output
