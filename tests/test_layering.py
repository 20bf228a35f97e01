"""The package's layering, read from its imports (every import, also inside functions).

Rules (docs/ARCHITECTURE.md): no circle between any two top-level parts of the package;
``routing`` never imports ``journal``, ``deferred``, ``ops`` or ``web``; ``journal`` never
imports ``routing``, ``deferred`` or ``web``; ``notify`` knows only the plan; ``watch``
and ``incidents`` never reach up into ``web``; nothing imports ``web`` but the entry
points; SQL is written only by the parts that own the tables it reads (``journal`` and
``chat``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "standby"
ENTRY_POINTS = {"cli", "testing", "demo", "demo_script", "personal", "web"}


def part(module: str) -> str:
    """``standby.routing.streams`` → ``routing``; ``standby.errors`` → ``errors``."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def imports() -> dict[str, set[str]]:
    """Top-level part → the other parts its modules import."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        source = part(".".join(relative.parts))
        targets = graph.setdefault(source, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "standby":  # from standby import errors
                    names = [f"standby.{alias.name}" for alias in node.names]
                else:
                    names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("standby.") and part(name) != source:
                    targets.add(part(name))
    return graph


GRAPH = imports()


def test_no_circle_between_two_parts() -> None:
    circles = sorted(
        (a, b) for a, targets in GRAPH.items() for b in targets if a < b and a in GRAPH.get(b, ())
    )
    assert circles == []


def test_no_longer_circle_either() -> None:
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2:
            return
        assert state.get(node) != 1, f"import circle: {' → '.join([*path, node])}"
        state[node] = 1
        for target in sorted(GRAPH.get(node, ())):
            visit(target, [*path, node])
        state[node] = 2
        order.append(node)

    for node in sorted(GRAPH):
        visit(node, [])


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("routing", {"journal", "deferred", "ops", "web", "sim"}),
        ("journal", {"routing", "deferred", "web", "ops"}),
        ("providers", {"routing", "journal", "web", "health", "sim"}),
        ("health", {"journal", "web", "deferred"}),
        ("sim", {"web", "routing", "journal", "providers"}),
        ("plan", {"routing", "journal", "web", "providers", "health"}),
        # the noticing-and-telling side: notify knows only the plan; watch reads health and
        # providers but never incidents; incidents decide, the journal only stores them
        ("notify", {"routing", "journal", "web", "health", "providers", "incidents", "watch"}),
        ("watch", {"journal", "web", "incidents", "notify", "deferred"}),
        ("incidents", {"web", "routing", "providers", "notify"}),
        ("journal", {"incidents", "watch", "notify"}),
        ("health", {"watch", "incidents", "notify"}),
    ],
)
def test_lower_parts_do_not_reach_up(source: str, forbidden: set[str]) -> None:
    assert GRAPH[source] & forbidden == set()


def test_only_entry_points_import_web() -> None:
    importers = {source for source, targets in GRAPH.items() if "web" in targets}
    assert importers <= ENTRY_POINTS


# the parts that own tables and write SQL over them: the journal (requests, incidents,
# traffic…) and the chat (conversations).  The others name an engine or a URL at most.
SQL_OWNERS = {"journal", "chat"}
SQL_BUILDERS = {"sqlalchemy", "sqlalchemy.sql", "sqlalchemy.sql.expression"}


def sql_builders(path: Path) -> set[str]:
    """The SQL-building modules ``path`` imports (``import sqlalchemy as sa`` and the like)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in SQL_BUILDERS}
        elif isinstance(node, ast.ImportFrom) and node.module in SQL_BUILDERS:
            found.add(node.module)
    return found


def test_only_the_table_owners_write_sql() -> None:
    writers = {
        str(path.relative_to(PACKAGE)): builders
        for path in PACKAGE.rglob("*.py")
        if part(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)) not in SQL_OWNERS
        and (builders := sql_builders(path))
    }
    assert writers == {}
