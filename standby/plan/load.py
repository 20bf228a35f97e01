"""Read a plan file: YAML text + an explicit environment → a validated ``Plan``.

Every problem becomes a ``PlanError`` naming file, line and dotted key.  ruamel.yaml's
round-trip loader remembers the line of every key and item, so pydantic's error
locations map back onto the file.  ``${VAR}`` resolves from the ``env`` the caller
passes (never ``os.environ``), so tests and the CLI decide what a plan can see.
``load_journal_config`` validates the ``journal`` section alone, for the commands that
read the journal on a machine without the providers' keys.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from standby.errors import PlanError
from standby.plan.model import JournalConfig, Plan
from standby.plan.values import Loc, dotted

__all__ = [
    "MAX_ALIAS_EXPANSION",
    "load_journal_config",
    "load_plan",
    "parse_journal_config",
    "parse_plan",
]

# One pattern, three alternatives: the `$${` escape, a well-formed reference, and a
# stray `${` that matches neither (reported rather than silently kept).
_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")
# values that aliases may add to a plan, beyond those written out (see ``_Shape``)
MAX_ALIAS_EXPANSION = 10_000
_PYDANTIC_PREFIX = re.compile(r"^(Value error, |Assertion failed, |Input (?=should))")
_TYPE_ERRORS = ("_type", "_parsing", "literal_error", "enum")
# pydantic's wording names Python types; a plan author thinks in YAML shapes.
_SHAPES = {
    "model_type": "should be a mapping of keys",
    "dict_type": "should be a mapping of keys",
    "model_attributes_type": "should be a mapping of keys",
    "list_type": "should be a list",
}


@dataclass(frozen=True, slots=True)
class _Problem:
    line: int | None
    loc: Loc
    message: str

    @property
    def key(self) -> str:
        """``providers.main.api_key``, ``routes.chat.targets[1]``."""
        return dotted(self.loc)


def load_plan(path: str | Path, env: Mapping[str, str]) -> Plan:
    """Read and validate the plan at ``path``; ``${VAR}`` references resolve from ``env``.

    Raises ``PlanError`` (with file, line and key where known) on any problem.
    """
    return parse_plan(_read_file(path), file=str(path), env=env)


def parse_plan(text: str, *, file: str, env: Mapping[str, str]) -> Plan:
    """Validate plan ``text``; ``file`` is only used to name the source in errors."""
    tree = _read_yaml(text, file)
    resolver = _Resolver(env)
    data = resolver.copy(tree)
    if resolver.problems:
        raise _plan_error(
            file, [_Problem(_line_of(tree, p.loc), p.loc, p.message) for p in resolver.problems]
        )
    try:
        # cross-section checks are left to us, so that each problem gets its own line
        plan = Plan.model_validate(data, context={"cross_check": False})
    except ValidationError as exc:
        found: list[_Problem] = []
        for err in exc.errors(include_url=False):
            found.extend(_explain(err, tree, resolver.from_env))
        raise _plan_error(file, found) from None  # the pydantic dump adds nothing for a user
    crossed = [_Problem(_line_of(tree, loc), loc, message) for loc, message in plan.problems()]
    if crossed:
        raise _plan_error(file, crossed)
    return plan


def load_journal_config(path: str | Path, env: Mapping[str, str]) -> JournalConfig:
    """The ``journal`` section of the plan at ``path``, validated alone.

    For the commands that only read the journal (export, backup, tail): they must work
    on a machine without the providers' keys, so ``${VAR}`` is resolved in this section
    only and the rest of the plan is read as YAML but not validated.
    """
    return parse_journal_config(_read_file(path), file=str(path), env=env)


def parse_journal_config(text: str, *, file: str, env: Mapping[str, str]) -> JournalConfig:
    """``load_journal_config`` for plan ``text``; ``file`` names the source in errors."""
    tree = _read_yaml(text, file)
    if "journal" not in tree:
        return JournalConfig()
    loc: Loc = ("journal",)
    resolver = _Resolver(env)
    data = resolver.copy(tree["journal"], loc)
    if resolver.problems:
        raise _plan_error(
            file, [_Problem(_line_of(tree, p.loc), p.loc, p.message) for p in resolver.problems]
        )
    try:
        return JournalConfig.model_validate(data)
    except ValidationError as exc:
        found: list[_Problem] = []
        for err in exc.errors(include_url=False):
            located = {**err, "loc": (*loc, *err["loc"])}
            found.extend(_explain(located, tree, resolver.from_env))
        raise _plan_error(file, found) from None


def _read_file(path: str | Path) -> str:
    file = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError("plan file not found", file=file) from None
    except UnicodeDecodeError:
        raise PlanError("the plan file is not UTF-8 text", file=file) from None
    except OSError as exc:  # a directory, no permission, …
        raise PlanError(f"cannot read the plan file: {exc.strerror or exc}", file=file) from None


def _read_yaml(text: str, file: str) -> CommentedMap:
    """The YAML document as ruamel's round-trip tree (every key and item knows its line).

    The document is composed first and checked as a graph of nodes, where an alias is
    still one shared node: duplicate keys (all of them, each at its line) and aliases
    that would expand it beyond reason are reported before anything is copied.
    """
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True  # found by _Shape instead: every one, not the first
    try:
        node = yaml.compose(text)
        if node is None:
            tree = None
        else:
            _Shape(file).check(node)
            tree = yaml.constructor.construct_document(node)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = exc.problem or "invalid YAML"
        if exc.context:
            detail = f"{detail} ({exc.context})"
        raise PlanError(
            f"YAML syntax error: {detail}", file=file, line=mark.line + 1 if mark else None
        ) from None
    except YAMLError as exc:
        raise PlanError(f"YAML syntax error: {exc}", file=file) from None
    except RecursionError:
        raise PlanError("the YAML is nested too deeply to be a plan", file=file) from None
    if tree is None:
        raise PlanError("the plan is empty; it needs at least 'providers' and 'routes'", file=file)
    if not isinstance(tree, CommentedMap):
        line = tree.lc.line + 1 if isinstance(tree, CommentedSeq) else 1
        raise PlanError(
            "the top level of a plan must be a mapping of sections (providers, "
            f"routes, timeouts, …), not {_show(tree)}",
            file=file,
            line=line,
        )
    return tree


class _Shape:
    """Checks a composed YAML document before it is built: duplicate keys, and aliases.

    An alias (``*name``) is the anchored node itself, shared; copying the document into
    plain values expands every use.  A few ``<<: *defaults`` add little, but ten
    anchors of ten aliases each (a "billion laughs") expand to 10^10 values: the
    expansion is counted here on the shared nodes, each visited once, and refused past
    ``MAX_ALIAS_EXPANSION``.  An alias inside its own anchor (a loop) is refused too.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.sizes: dict[int, int] = {}  # id(node) → values it expands to, itself included
        self.open: set[int] = set()  # nodes being counted: meeting one again is a loop
        self.duplicates: list[_Problem] = []

    def check(self, root: Node) -> None:
        total = self._size(root, ())
        if self.duplicates:
            raise _plan_error(self.file, self.duplicates)
        if total - len(self.sizes) > MAX_ALIAS_EXPANSION:
            raise self._too_big(root)

    def _size(self, node: Node, loc: Loc) -> int:
        key = id(node)
        if key in self.sizes:
            return self.sizes[key]
        if key in self.open:
            raise PlanError(
                "a YAML alias refers to a value that contains it: the value would never end",
                file=self.file,
                line=node.start_mark.line + 1,
                key=dotted(loc),
            )
        self.open.add(key)
        size = 1
        if isinstance(node, MappingNode):
            self._note_duplicates(node, loc)
            for key_node, value in node.value:
                size += self._size(key_node, loc) + self._size(value, (*loc, _name(key_node)))
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                size += self._size(item, (*loc, index))
        self.open.discard(key)
        self.sizes[key] = size
        return size

    def _note_duplicates(self, node: MappingNode, loc: Loc) -> None:
        first: dict[tuple[str | None, Any], int] = {}  # (tag, text) of a key → its first line
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                continue
            name = (key_node.tag, key_node.value)
            if name not in first:
                first[name] = key_node.start_mark.line + 1
                continue
            self.duplicates.append(
                _Problem(
                    key_node.start_mark.line + 1,
                    (*loc, key_node.value),
                    f"duplicate key (first written on line {first[name]}): a mapping holds "
                    "each key once; keep the one you mean",
                )
            )

    def _too_big(self, root: Node) -> PlanError:
        where: tuple[Loc, int] = ((), root.start_mark.line + 1)
        if isinstance(root, MappingNode):  # the section that blows up
            key_node, _ = max(root.value, key=lambda pair: self.sizes[id(pair[1])])
            where = ((_name(key_node),), key_node.start_mark.line + 1)
        return PlanError(
            f"YAML aliases (*name) expand the plan by more than {MAX_ALIAS_EXPANSION:,} "
            "values; a plan needs a few at most (such as `<<: *defaults`)",
            file=self.file,
            line=where[1],
            key=dotted(where[0]),
        )


def _name(node: Node) -> str:
    return str(node.value) if isinstance(node, ScalarNode) else "?"


class _Resolver:
    """Copies the ruamel tree into plain Python values, resolving ``${VAR}`` in strings.

    A copy rather than an in-place edit: an aliased node is visited once per alias, and
    re-reading an already resolved string would expand a ``$${`` escape twice.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[_Problem] = []
        self.from_env: set[Loc] = set()  # values that came from the environment: never echo them

    def copy(self, node: Any, loc: Loc = ()) -> Any:
        if isinstance(node, Mapping):
            return {key: self.copy(value, (*loc, key)) for key, value in node.items()}
        if isinstance(node, list):
            return [self.copy(item, (*loc, i)) for i, item in enumerate(node)]
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, int | float):  # drop ruamel's HexInt/ScalarFloat wrappers
            return float(node) if isinstance(node, float) else int(node)
        if isinstance(node, str):
            return _REFERENCE.sub(lambda m: self._substitute(m, loc), str(node))
        return node

    def _substitute(self, match: re.Match[str], loc: Loc) -> str:
        whole, name, default = match.group(0), match.group(1), match.group(2)
        if whole == "$${":
            return "${"
        if name is None:
            self.problems.append(
                _Problem(
                    None,
                    loc,
                    "'${' starts no valid reference: write "
                    "${NAME} or ${NAME:-default}, or $${ for a literal '${'",
                )
            )
            return whole
        self.from_env.add(loc)
        value = self.env.get(name)
        # Like the shell's `:-`, an empty variable also falls back to the default.
        if default is not None and not value:
            return default
        if value is None:
            self.problems.append(
                _Problem(
                    None,
                    loc,
                    f"environment variable {name} is not set "
                    f"(set it, or write ${{{name}:-default}})",
                )
            )
            return ""
        return value


def _explain(err: Any, tree: CommentedMap, from_env: set[Loc]) -> list[_Problem]:
    """Turn one pydantic error into located, human problems."""
    loc: Loc = tuple(part for part in err["loc"] if part != "[key]")
    kind: str = err["type"]
    if not loc:
        return [_Problem(_line_of(tree, ()), (), _PYDANTIC_PREFIX.sub("", err["msg"]))]
    if kind == "extra_forbidden":
        return [_Problem(_line_of(tree, loc), loc, _unknown_key(loc))]
    if kind == "missing":
        return [_Problem(_line_of(tree, loc[:-1]), loc, "required key is missing")]
    message = _SHAPES.get(kind) or _PYDANTIC_PREFIX.sub("", err["msg"])
    if kind.endswith(_TYPE_ERRORS):
        seen = "a value from the environment" if loc in from_env else _show(err["input"])
        message = f"{message} (got {seen})"
    return [_Problem(_line_of(tree, loc), loc, message)]


def _unknown_key(loc: Loc) -> str:
    known = _known_keys(loc[:-1])
    if not known:
        return "unknown key"
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown key{hint} (known: {', '.join(known)})"


def _known_keys(loc: Loc) -> list[str]:
    """The field names of the plan record found at ``loc``, in declaration order."""
    current: Any = Plan
    for part in loc:
        current = _unwrap(current)
        if _is_record(current):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif get_origin(current) in (dict, list):
            current = get_args(current)[-1]  # dict[str, V] → V, list[T] → T
        else:
            return []
    current = _unwrap(current)
    return list(current.model_fields) if _is_record(current) else []


def _is_record(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated[...]`` and ``X | None`` down to the type that holds the keys."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _line_of(tree: CommentedMap, loc: Loc) -> int:
    """1-based line of the deepest part of ``loc`` that exists in the YAML tree."""
    node: Any = tree
    line: int = tree.lc.line + 1
    for part in loc:
        if isinstance(node, CommentedMap):
            key = next((k for k in node if k == part or str(k) == str(part)), None)
            if key is None:
                break
            try:
                line = node.lc.key(key)[0] + 1
            except KeyError:
                pass  # a key merged in with `<<:` has no line of its own here
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def _plan_error(file: str, problems: list[_Problem]) -> PlanError:
    """One error for all problems: located at the first, listing every one by line."""
    unique = sorted(set(problems), key=lambda p: (p.line or 0, p.key))
    first, rest = unique[0], unique[1:]
    # Later problems are formatted exactly as the first, so each line reads on its own.
    lines = [
        first.message,
        *(str(PlanError(p.message, file=file, line=p.line, key=p.key)) for p in rest),
    ]
    return PlanError("\n".join(lines), file=file, line=first.line, key=first.key)


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"
