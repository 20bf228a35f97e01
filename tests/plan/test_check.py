"""What ``standby plan check`` catches beyond a value's type: every problem located.

Journal URLs that cannot work, deadlines of zero or past a day, a plan with no routes, a
public host without keys, duplicate keys (all of them), YAML aliases that would expand a
plan beyond reason ("billion laughs"), and the journal section read on its own.
"""

from __future__ import annotations

import itertools
import time
import tracemalloc
from pathlib import Path

import pytest

from standby.errors import PlanError
from standby.plan.load import (
    MAX_ALIAS_EXPANSION,
    load_journal_config,
    parse_journal_config,
    parse_plan,
)
from standby.plan.model import Plan, journal_url_problem

BASE = """\
providers:
  main: {base_url: "http://127.0.0.1:9000/v1"}
routes:
  chat: {targets: [main/m]}
"""


def parse(text: str, env: dict[str, str] | None = None) -> Plan:
    return parse_plan(text, file="plan.yaml", env=env or {})


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    """Every line of the error, each of the form ``file:line: key: message``."""
    with pytest.raises(PlanError) as info:
        parse(text, env)
    return str(info.value).splitlines()


# journal.url as written → loads
GOOD_URLS = [
    "",
    "sqlite:///standby.db",
    "sqlite:///journal/standby.db",
    "sqlite:////var/lib/standby/journal.db",
    "sqlite+aiosqlite:///standby.db",
    "postgresql://standby:pw@db.internal:5432/standby",
    "postgresql:///standby",
    "postgres://standby@db/standby",
    "postgresql+asyncpg://standby@db/standby",
]


@pytest.mark.parametrize("url", GOOD_URLS)
def test_usable_journal_urls_load(url: str) -> None:
    assert parse(BASE + f"journal: {{url: '{url}'}}\n").journal.url == url
    assert journal_url_problem(url) is None


# (case, journal.url as written, words the message must contain)
BAD_URLS = [
    ("two slashes", "sqlite://standby.db", ["three slashes", "'sqlite:///standby.db'"]),
    ("two slashes, a path", "sqlite://data/j.db", ["'sqlite:///data/j.db'"]),
    ("no file", "sqlite://", ["names no database file", "sqlite:///standby.db"]),
    ("empty path", "sqlite:///", ["names no database file"]),
    ("in memory", "sqlite:///:memory:", ["in-memory journal is lost"]),
    ("other sqlite driver", "sqlite+pysqlite:///j.db", ["aiosqlite", "'sqlite+pysqlite'"]),
    ("mysql", "mysql://standby:pw@db/standby", ["unsupported database 'mysql'", "postgresql://"]),
    ("http", "https://db.internal/standby", ["unsupported database 'https'"]),
    ("a bare path", "standby.db", ["not a database URL", "sqlite:///standby.db"]),
    ("an absolute path", "/var/lib/standby.db", ["not a database URL", "sqlite:////var/lib"]),
    ("a port that is no number", "postgresql://u:pw@db:fivefour/x", ["not a database URL"]),
    ("a sync driver", "postgresql+psycopg2://u@db/x", ["asyncpg", "'postgresql+psycopg2://'"]),
]


@pytest.mark.parametrize(
    ("url", "words"), [case[1:] for case in BAD_URLS], ids=[case[0] for case in BAD_URLS]
)
def test_unusable_journal_urls_are_located(url: str, words: list[str]) -> None:
    [line] = problems(BASE + f"journal:\n  enabled: true\n  url: '{url}'\n")
    assert line.startswith("plan.yaml:7: journal.url: ")
    for word in words:
        assert word in line


def test_a_journal_url_from_the_environment_is_never_echoed() -> None:
    secret = "mysql://standby:hunter2-very-secret@db/standby"
    [line] = problems(BASE + "journal: {url: '${DATABASE_URL}'}\n", {"DATABASE_URL": secret})
    assert line.startswith("plan.yaml:5: journal.url: unsupported database 'mysql'")
    assert "hunter2" not in line
    [line] = problems(BASE + "journal: {url: '${DB}'}\n", {"DB": "postgresql://u:hunter2@h:x/d"})
    assert "hunter2" not in line and "not a database URL" in line


# (case, text added to BASE, line, key, words the message must contain)
LOCATED = [
    (
        "zero connect",
        "timeouts:\n  connect: 0s\n",
        6,
        "timeouts.connect",
        ["more than 0s", "time out at once"],
    ),
    ("a week", "timeouts:\n  total: 7d\n", 6, "timeouts.total", ["more than a day"]),
    (
        "connect longer than total",
        "timeouts:\n  connect: 5m\n  total: 1m\n",
        5,
        "timeouts",
        ["connect (300s) is longer than total (60s)"],
    ),
    (
        "zero header timeout",
        "server:\n  header_timeout: 0s\n",
        6,
        "server.header_timeout",
        ["more than 0s"],
    ),
]


@pytest.mark.parametrize(
    ("added", "line", "key", "words"),
    [case[1:] for case in LOCATED],
    ids=[case[0] for case in LOCATED],
)
def test_impossible_deadlines_are_located(
    added: str, line: int, key: str, words: list[str]
) -> None:
    [found] = problems(BASE + added)
    assert found.startswith(f"plan.yaml:{line}: {key}: ")
    for word in words:
        assert word in found


def test_zero_deadlines_at_a_provider_and_a_route_are_located() -> None:
    text = (
        "providers:\n"
        "  main:\n"
        '    base_url: "http://127.0.0.1:9000/v1"\n'
        "    timeouts: {first_token: 0}\n"
        "routes:\n"
        "  chat:\n"
        "    targets: [main/m]\n"
        "    timeouts:\n"
        "      idle: 0ms\n"
    )
    assert problems(text) == [
        "plan.yaml:4: providers.main.timeouts.first_token: must be more than 0s: every "
        "attempt would time out at once",
        "plan.yaml:9: routes.chat.timeouts.idle: must be more than 0s: every attempt would "
        "time out at once",
    ]


def test_a_plan_without_routes_is_located() -> None:
    text = 'providers:\n  main: {base_url: "http://127.0.0.1:9000/v1"}\nroutes: {}\n'
    assert problems(text) == [
        "plan.yaml:3: routes: the plan has no routes: every request would be a 404"
    ]


def test_a_public_host_needs_client_keys_and_an_admin_token() -> None:
    found = problems(BASE + "server:\n  host: 0.0.0.0\n")
    assert [line.split(": ", 2)[:2] for line in found] == [
        ["plan.yaml:5", "server.admin_token"],
        ["plan.yaml:5", "server.client_keys"],
    ]
    assert "standby key hash" in found[1]
    guarded = "server:\n  host: 0.0.0.0\n  admin_token: t\n  client_keys: ['sha256:%s']\n"
    assert parse(BASE + guarded % ("ab" * 32)).server.host == "0.0.0.0"
    assert parse(BASE + "server: {host: '::1'}\n").server.host == "::1"


def test_every_duplicate_key_is_reported_at_its_line() -> None:
    text = (
        "providers:\n"  # 1
        "  main: {base_url: 'http://127.0.0.1:9000/v1', api_key: sk-1, api_key: sk-2}\n"  # 2
        "  main: {base_url: 'http://127.0.0.1:9001/v1'}\n"  # 3
        "routes:\n"  # 4
        "  chat:\n"  # 5
        "    targets: [main/m]\n"  # 6
        "    tiers:\n"  # 7
        "      - [{target: main/m, weight: 1, weight: 2}]\n"  # 8
        "    targets: [main/n]\n"  # 9
        "timeouts: {idle: 1s}\n"  # 10
        "timeouts: {idle: 2s}\n"  # 11
    )
    found = problems(text)
    assert [line.split(": ", 2)[:2] for line in found] == [
        ["plan.yaml:2", "providers.main.api_key"],
        ["plan.yaml:3", "providers.main"],
        ["plan.yaml:8", "routes.chat.tiers[0][0].weight"],
        ["plan.yaml:9", "routes.chat.targets"],
        ["plan.yaml:11", "timeouts"],
    ]
    assert found[1].endswith(
        "duplicate key (first written on line 2): a mapping holds each key once; "
        "keep the one you mean"
    )
    assert "first written on line 6" in found[3]
    assert "sk-1" not in found[0] and "sk-2" not in found[0]  # values are never quoted


def test_a_key_written_three_times_is_reported_twice() -> None:
    found = problems(BASE + "retry: {same_target: 1}\nretry: {}\nretry: {}\n")
    assert [line.split(": ", 2)[:2] for line in found] == [
        ["plan.yaml:6", "retry"],
        ["plan.yaml:7", "retry"],
    ]
    assert all("first written on line 5" in line for line in found)


def test_ordinary_aliases_and_merges_still_work() -> None:
    text = (
        "providers:\n"
        "  openai: &vendor\n"
        "    kind: openai\n"
        '    base_url: "https://api.openai.com/v1"\n'
        "    timeouts: {first_token: 15s}\n"
        '  eu: {<<: *vendor, base_url: "https://eu.api.openai.com/v1"}\n'
        "  us:\n"
        "    <<: *vendor\n"
        "routes:\n"
        "  chat: {targets: &both [openai/gpt-4o, eu/gpt-4o], timeouts: &short {total: 30s}}\n"
        "  code: {targets: *both, timeouts: *short}\n"
    )
    plan = parse(text)
    assert plan.providers["eu"].base_url == "https://eu.api.openai.com/v1"
    assert plan.providers["us"].timeouts.first_token == 15.0
    assert plan.routes["code"].timeouts.total == 30.0


def laughs(levels: int, width: int = 10) -> str:
    """The "billion laughs": each anchor is ``width`` aliases of the one before."""
    names = [f"l{i}" for i in range(levels + 1)]
    lines = [f"{names[0]}: &{names[0]} [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for before, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [{', '.join(['*' + before] * width)}]")
    return "\n".join(lines) + "\n"


def test_a_billion_laughs_fails_fast_and_small() -> None:
    text = BASE + laughs(30)  # 10^31 values, once expanded
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PlanError) as info:
            parse(text)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seconds < 0.5 and peak < 20 * 1024 * 1024
    assert str(info.value) == (
        f"plan.yaml:35: l30: YAML aliases (*name) expand the plan by more than "
        f"{MAX_ALIAS_EXPANSION:,} values; a plan needs a few at most (such as `<<: *defaults`)"
    )


def test_the_alias_bound_is_on_what_aliases_add() -> None:
    ones = ", ".join(["1"] * (MAX_ALIAS_EXPANSION + 500))
    long = BASE.replace("routes:", f"x-big: [{ones}]\nroutes:")
    with pytest.raises(PlanError, match="x-big: unknown key"):  # long, but no alias bomb
        parse(long)
    with pytest.raises(PlanError, match="l4: YAML aliases"):  # 10^5 values through aliases
        parse(BASE + laughs(4))
    with pytest.raises(PlanError, match="l2: unknown key"):  # 10^3 values through aliases
        parse(BASE + laughs(2))


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    [line] = problems(BASE + "retry: &loop {nested: *loop}\n")
    assert line.startswith("plan.yaml:5: retry.nested: a YAML alias refers to a value")


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    [line] = problems(BASE + "retry: " + "[" * 300 + "]" * 300 + "\n")
    assert line == "plan.yaml: the YAML is nested too deeply to be a plan"


JOURNAL_ONLY = """\
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1", api_key: "${OPENAI_API_KEY}"}
  broken: {base_url: 7, unknown: key}
routes:
  chat: {targets: [openai/gpt-4o]}
journal:
  url: "${JOURNAL_URL:-sqlite:///journal.db}"
  retain: 30d
"""


def test_the_journal_section_loads_without_the_providers_keys(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(JOURNAL_ONLY, encoding="utf-8")
    config = load_journal_config(path, {})
    assert (config.url, config.retain) == ("sqlite:///journal.db", 30 * 86400.0)
    env = {"JOURNAL_URL": "postgresql://u@db/j"}
    assert load_journal_config(path, env).url == "postgresql://u@db/j"
    with pytest.raises(PlanError, match="OPENAI_API_KEY is not set"):  # the whole plan needs it
        parse_plan(JOURNAL_ONLY, file=str(path), env={})


# (case, journal section, line, key, words)
JOURNAL_BAD = [
    ("bad url", "journal:\n  url: sqlite://j.db\n", 2, "journal.url", ["'sqlite:///j.db'"]),
    ("unset variable", "journal:\n  url: ${DB}\n", 2, "journal.url", ["DB is not set"]),
    ("unknown key", "journal:\n  rettain: 3d\n", 2, "journal.rettain", ["'retain'"]),
    ("not a mapping", "journal: [1]\n", 1, "journal", ["should be a mapping"]),
    ("duplicate", "journal: {}\njournal: {}\n", 2, "journal", ["duplicate key"]),
]


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [case[1:] for case in JOURNAL_BAD],
    ids=[case[0] for case in JOURNAL_BAD],
)
def test_journal_section_problems_are_located(
    text: str, line: int, key: str, words: list[str]
) -> None:
    with pytest.raises(PlanError) as info:
        parse_journal_config(text, file="plan.yaml", env={})
    assert str(info.value).startswith(f"plan.yaml:{line}: {key}: ")
    for word in words:
        assert word in str(info.value)


def test_no_journal_section_is_the_default_journal() -> None:
    config = parse_journal_config("providers: {}\n", file="plan.yaml", env={})
    assert (config.enabled, config.url) == (True, "")
    with pytest.raises(PlanError, match="not found"):
        load_journal_config("/nonexistent/plan.yaml", {})


@pytest.mark.parametrize(
    ("added", "key", "words"),
    [
        (
            "status_page:\n  subscriptions: {email_channel: mail}\n",
            "status_page.subscriptions.email_channel",
            "unknown notify channel 'mail' (channels: none)",
        ),
        (
            "notify: {channels: {mail: {kind: webhook, url: 'http://127.0.0.1:9/h'}}}\n"
            "status_page:\n  subscriptions: {email_channel: mail}\n",
            "status_page.subscriptions.email_channel",
            "must be an apprise (mail) channel",
        ),
        (
            "notify: {channels: {mail: {kind: apprise, url: 'mailto://u:p@example.org'}}}\n"
            "status_page:\n  subscriptions: {email_channel: mail}\n",
            "status_page.url",
            "set status_page.url",
        ),
        (
            "status_page:\n  listen: '8090'\n",
            "status_page.listen",
            "listen must be host:port",
        ),
        (
            "journal: {enabled: false}\nstatus_page:\n  listen: '127.0.0.1:8090'\n",
            "status_page.listen",
            "reads the journal's database",
        ),
        (
            "drills: {channels: [nowhere]}\n",
            "drills.channels[0]",
            "unknown notify channel 'nowhere'",
        ),
    ],
    ids=[
        "unknown channel",
        "not mail",
        "no page url",
        "listen without host",
        "no journal",
        "unknown drill channel",
    ],
)
def test_status_page_mistakes_name_their_key(added: str, key: str, words: str) -> None:
    [found] = problems(BASE + added)
    assert f": {key}: " in found and words in found, found
