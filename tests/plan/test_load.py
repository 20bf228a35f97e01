"""Loading plans: good plans load, bad ones fail naming file, line and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from standby.errors import PlanError
from standby.plan.load import load_plan, parse_plan
from standby.plan.model import Plan

EXAMPLE = """\
providers:
  primary: {kind: openai-compatible, base_url: "http://127.0.0.1:9000/v1", api_key: "${PRIMARY_KEY}"}
  backup:  {kind: openai-compatible, base_url: "http://127.0.0.1:9001/v1", api_key: "sk-local"}
timeouts: {connect: 3s, first_token: 10s, idle: 10s, total: 120s}
routes:
  gpt-4o-mini: {targets: ["primary/gpt-4o-mini", "backup/gpt-4o-mini"]}
  "team-*":    {targets: ["primary/{model}", "backup/gpt-4o-mini"]}
"""  # noqa: E501  (the plan exactly as users write it)

FULL = """\
# every section, block style
providers:
  openai:
    kind: openai
    base_url: https://api.openai.com/v1/
    api_key: ${OPENAI_API_KEY}
    timeouts:
      first_token: 15s
  local:
    base_url: http://127.0.0.1:9001/v1
    prefill: true
    headers: {X-Team: search}
    max_connections: 50
routes:
  gpt-4o:
    tiers:
      - [openai/gpt-4o]
      - [{target: local/big, weight: 3}, local/small]
    timeouts: {total: 60s}
  "*":
    targets: ["openai/{model}", local/small]
timeouts: {connect: 500ms, first_token: 20, idle: 1m, total: 2m}
retry: {same_target: 2, backoff: 100ms, max_attempts: 4}
breaker: {failures: 3, ejection: 2s, growth: 2, max_ejection: 1h}
server:
  host: 0.0.0.0
  port: 8081
  max_body: 2MiB
  client_keys: ["sha256:%s"]
  admin_token: ${ADMIN_TOKEN:-changeme}
""" % ("ab" * 32)


def parse(text: str, env: dict[str, str] | None = None) -> Plan:
    return parse_plan(text, file="plan.yaml", env=env or {})


def test_example_plan_loads() -> None:
    plan = parse(EXAMPLE, {"PRIMARY_KEY": "sk-primary"})
    assert plan.providers["primary"].api_key == "sk-primary"
    assert plan.providers["backup"].base_url == "http://127.0.0.1:9001/v1"
    assert plan.timeouts.first_token == 10.0
    assert list(plan.routes) == ["gpt-4o-mini", "team-*"]  # written order is match order
    assert [t.target for [t] in plan.routes["team-*"].tier_list()] == [
        "primary/{model}",
        "backup/gpt-4o-mini",
    ]


def test_full_plan_loads() -> None:
    plan = parse(FULL, {"OPENAI_API_KEY": "sk-real"})
    openai = plan.providers["openai"]
    assert (openai.kind, openai.base_url, openai.api_key) == (
        "openai",
        "https://api.openai.com/v1",
        "sk-real",
    )
    assert openai.timeouts.first_token == 15.0
    assert plan.providers["local"].prefill is True
    tiers = plan.routes["gpt-4o"].tier_list()
    assert [[(t.target, t.weight) for t in tier] for tier in tiers] == [
        [("openai/gpt-4o", 1.0)],
        [("local/big", 3.0), ("local/small", 1.0)],
    ]
    assert plan.routes["gpt-4o"].timeouts.total == 60.0
    assert (plan.timeouts.connect, plan.timeouts.idle, plan.timeouts.total) == (0.5, 60.0, 120.0)
    assert plan.retry.backoff == 0.1
    assert plan.breaker.max_ejection == 3600.0
    assert plan.server.max_body == 2 * 1024 * 1024
    assert plan.server.admin_token == "changeme"


def test_load_plan_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert load_plan(path, {"PRIMARY_KEY": "k"}).providers["primary"].api_key == "k"


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(PlanError) as info:
        load_plan(path, {})
    assert info.value.file == str(path)
    assert "not found" in str(info.value)
    assert str(path) in str(info.value)


BASE = """\
providers:
  main: {base_url: "http://127.0.0.1:9000/v1"}
routes:
  chat: {targets: [main/m]}
"""

# (case, plan text, env, line, key, words the message must contain)
BAD = [
    (
        "unknown key",
        BASE + "timeouts:\n  conect: 3s\n",
        {},
        6,
        "timeouts.conect",
        ["unknown key", "did you mean 'connect'", "known: connect, first_token, idle, total"],
    ),
    (
        "bad duration",
        BASE + "timeouts:\n  idle: 3 seconds\n",
        {},
        6,
        "timeouts.idle",
        ["bad duration '3 seconds'", "e.g. 3s"],
    ),
    (
        "bad size",
        BASE + "server: {max_body: lots}\n",
        {},
        5,
        "server.max_body",
        ["bad size", "MiB"],
    ),
    (
        "missing env var",
        BASE + "server:\n  admin_token: ${ADMIN}\n",
        {},
        6,
        "server.admin_token",
        ["ADMIN", "not set"],
    ),
    (
        "missing env var in provider",
        BASE.replace('"}', '", api_key: "${PRIMARY_KEY}"}'),
        {},
        2,
        "providers.main.api_key",
        ["PRIMARY_KEY", "not set"],
    ),
    (
        "malformed reference",
        BASE + "server: {admin_token: 'a${b'}\n",
        {},
        5,
        "server.admin_token",
        ["$${"],
    ),
    (
        "wrong type",
        BASE + "server:\n  host: h\n  port: eighty\n",
        {},
        7,
        "server.port",
        ["valid integer", "got 'eighty'"],
    ),
    (
        "wrong type from env",
        BASE + "server: {port: '${PORT}'}\n",
        {"PORT": "secret-ish"},
        5,
        "server.port",
        ["valid integer", "from the environment"],
    ),
    ("section not a mapping", BASE + "retry: [1, 2]\n", {}, 5, "retry", ["should be a mapping"]),
    (
        "unknown provider kind",
        BASE.replace("{base_url", "{kind: bedrock, base_url"),
        {},
        2,
        "providers.main.kind",
        ["'openai', 'openai-compatible'", "got 'bedrock'"],
    ),
    (
        "unknown provider in a target",
        BASE + "  other:\n    targets:\n      - main/m\n      - mian/m\n",
        {},
        8,
        "routes.other.targets[1]",
        ["unknown provider 'mian'", "known: main"],
    ),
    (
        "unknown provider in a tier",
        BASE + "  tiered:\n    tiers: [[main/m], [{target: nope/x, weight: 2}]]\n",
        {},
        6,
        "routes.tiered.tiers[1][0]",
        ["unknown provider 'nope'"],
    ),
    (
        "target without a model",
        BASE.replace("[main/m]", "[main]"),
        {},
        4,
        "routes.chat.targets[0]",
        ["'provider/model'"],
    ),
    (
        "missing providers",
        "routes:\n  chat: {targets: [a/b]}\n",
        {},
        1,
        "providers",
        ["required key is missing"],
    ),
    (
        "missing base_url",
        "providers:\n  main:\n    kind: openai\nroutes: {c: {targets: [main/m]}}\n",
        {},
        2,
        "providers.main.base_url",
        ["required key is missing"],
    ),
    (
        "both targets and tiers",
        BASE.replace("{targets: [main/m]}", "{targets: [main/m], tiers: [[main/m]]}"),
        {},
        4,
        "routes.chat",
        ["exactly one of 'targets' or 'tiers'"],
    ),
    (
        "unknown key in a target",
        BASE.replace("[main/m]", "[{target: main/m, wieght: 2}]"),
        {},
        4,
        "routes.chat.targets[0].wieght",
        ["did you mean 'weight'"],
    ),
    (
        "unhashed client key",
        BASE + "server:\n  client_keys: {ci: sk-plain}\n",
        {},
        6,
        "server.client_keys.ci.key",
        ["sha256:"],
    ),
    (
        "yaml syntax error",
        BASE + "timeouts: {connect: 3s\nretry: {}\n",
        {},
        6,
        "",
        ["YAML syntax error"],
    ),
    ("tab indentation", BASE + "server:\n\tport: 1\n", {}, 6, "", ["YAML syntax error"]),
    (
        "duplicate key",
        BASE + "providers: {}\n",
        {},
        5,
        "providers",
        ["duplicate key", "first written on line 1"],
    ),
    ("top level is a list", "- providers\n- routes\n", {}, 1, "", ["must be a mapping"]),
]


@pytest.mark.parametrize(
    ("text", "env", "line", "key", "words"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_plan_names_file_line_and_key(
    text: str, env: dict[str, str], line: int, key: str, words: list[str]
) -> None:
    with pytest.raises(PlanError) as info:
        parse(text, env)
    error = info.value
    assert (error.file, error.line, error.key) == ("plan.yaml", line, key)
    assert str(error).startswith(f"plan.yaml:{line}: {key + ': ' if key else ''}")
    for word in words:
        assert word in str(error)


@pytest.mark.parametrize("text", ["", "\n", "# just a comment\n"])
def test_empty_plan(text: str) -> None:
    with pytest.raises(PlanError, match="empty") as info:
        parse(text)
    assert info.value.file == "plan.yaml"


def test_every_problem_is_listed_first_one_located() -> None:
    text = BASE + "timeouts:\n  conect: 3s\n  idle: forever\nserver: {port: x}\n"
    with pytest.raises(PlanError) as info:
        parse(text)
    error = info.value
    assert (error.line, error.key) == (6, "timeouts.conect")
    assert str(error).splitlines() == [
        "plan.yaml:6: timeouts.conect: unknown key; did you mean 'connect'? "
        "(known: connect, first_token, idle, total)",
        "plan.yaml:7: timeouts.idle: bad duration 'forever': "
        "expected a number with ms, s, m, h or d (e.g. 3s)",
        "plan.yaml:8: server.port: should be a valid integer, unable to parse string "
        "as an integer (got 'x')",
    ]


def test_every_missing_variable_is_listed() -> None:
    text = BASE + "server:\n  admin_token: ${A}\n  host: ${B}\n"
    with pytest.raises(PlanError) as info:
        parse(text)
    assert (info.value.line, info.value.key) == (6, "server.admin_token")
    assert "plan.yaml:7: server.host: environment variable B is not set" in str(info.value)


def test_env_values_never_appear_in_errors() -> None:
    text = BASE + "server: {port: '${PORT}'}\n"
    with pytest.raises(PlanError) as info:
        parse(text, {"PORT": "sk-very-secret"})
    assert "sk-very-secret" not in str(info.value)


def test_duplicate_key_error_does_not_quote_values() -> None:
    text = BASE.replace("{base_url", "{api_key: sk-one, api_key: sk-two, base_url")
    with pytest.raises(PlanError, match="duplicate key") as info:
        parse(text)
    assert "sk-one" not in str(info.value) and "sk-two" not in str(info.value)


# (value written in the plan, env, value loaded)
INTERPOLATION = [
    ("${TOKEN}", {"TOKEN": "t0k"}, "t0k"),
    ("pre-${TOKEN}-post", {"TOKEN": "x"}, "pre-x-post"),
    ("${TOKEN:-fallback}", {}, "fallback"),
    ("${TOKEN:-fallback}", {"TOKEN": ""}, "fallback"),
    ("${TOKEN:-fallback}", {"TOKEN": "set"}, "set"),
    ("${TOKEN:-}", {}, ""),
    ("${TOKEN}", {"TOKEN": ""}, ""),
    ("${A}${B:-b}", {"A": "a"}, "ab"),
    ("$${TOKEN}", {"TOKEN": "x"}, "${TOKEN}"),
    ("$${TOKEN} and ${TOKEN}", {"TOKEN": "x"}, "${TOKEN} and x"),
    ("cost: $5 $$ $", {}, "cost: $5 $$ $"),
    ("${TOKEN}", {"TOKEN": "${OTHER}"}, "${OTHER}"),  # values are not expanded again
]


@pytest.mark.parametrize(("written", "env", "loaded"), INTERPOLATION)
def test_interpolation(written: str, env: dict[str, str], loaded: str) -> None:
    plan = parse(BASE + f"server: {{admin_token: '{written}'}}\n", env)
    assert plan.server.admin_token == loaded


def test_interpolated_numbers_and_durations_validate() -> None:
    text = BASE + "server: {port: '${PORT:-9090}'}\ntimeouts: {total: '${TOTAL}'}\n"
    plan = parse(text, {"TOTAL": "90s"})
    assert (plan.server.port, plan.timeouts.total) == (9090, 90.0)


def test_escape_survives_an_alias() -> None:
    # An aliased node is read twice; the escape must still be expanded exactly once.
    text = BASE + "server:\n  admin_token: &h '$${X}'\n  metrics_token: *h\n"
    plan = parse(text, {"X": "no"})
    assert (plan.server.admin_token, plan.server.metrics_token) == ("${X}", "${X}")


def test_examples_in_the_docs_load() -> None:
    # docs/plan.md is the user's reference: its full examples must stay loadable.
    doc = Path(__file__).parents[2] / "docs" / "plan.md"
    blocks = re.findall(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), re.DOTALL)
    full = [b for b in blocks if re.search(r"^providers:", b, re.MULTILINE)]
    assert len(full) >= 4
    env = {
        "PRIMARY_KEY": "k",
        "OPENAI_API_KEY": "k",
        "GROQ_API_KEY": "k",
        "ANTHROPIC_API_KEY": "k",
        "GEMINI_API_KEY": "k",
        "STANDBY_ADMIN_TOKEN": "t",
    }
    for block in full:
        assert parse_plan(block, file="plan.md", env=env).routes
