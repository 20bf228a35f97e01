"""The plan's value types: durations, sizes, token counts, clamp ranges, and key paths.

Each parser accepts what a plan author writes (``3s``, ``8MiB``, ``128k``, ``[0, 1]``) and
raises ``ValueError`` with a message that says what was expected; ``standby.plan.load``
places it at the file, line and key.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNIT = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
    None: 1,
}
_TOKENS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([km])?\s*$", re.IGNORECASE)
Loc = tuple[str | int, ...]


def parse_duration(value: Any) -> float:
    """``"3s"``, ``"250ms"``, ``"2m"``, ``"24h"``, ``"1d"`` or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 3s, 250ms or 2m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT[m.group(2)]
    else:
        raise ValueError(
            f"bad duration {value!r}: expected a number with ms, s, m, h or d (e.g. 3s)"
        )
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_size(value: Any) -> int:
    """``"8MiB"``, ``"512kb"`` or a number of bytes → bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (m := _SIZE.match(value)):
        unit = m.group(2).lower() if m.group(2) else None
        return int(m.group(1)) * _SIZE_UNIT[unit]
    raise ValueError(f"bad size {value!r}: expected bytes or a number with kb, KiB, MB, MiB…")


def parse_tokens(value: Any) -> int:
    """``128000``, ``"128k"`` or ``"1m"`` (thousands, millions) → a number of tokens."""
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, str) and (m := _TOKENS.match(value)):
        scale = {"k": 1000, "m": 1000**2, None: 1}[m.group(2) and m.group(2).lower()]
        count = int(float(m.group(1)) * scale)
    else:
        raise ValueError(f"bad token count {value!r}: expected a number such as 128000 or 128k")
    if count < 1:
        raise ValueError("a token count must be at least 1")
    return count


def _clamp_range(value: Any) -> Any:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in value
        )
    ):
        raise ValueError("a clamp is [min, max] of numbers (null for no bound), e.g. [0, 1]")
    return tuple(value)


def _ordered(value: tuple[float | None, float | None]) -> tuple[float | None, float | None]:
    low, high = value
    if low is not None and high is not None and low > high:
        raise ValueError(f"min {low:g} is above max {high:g}")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
Tokens = Annotated[int, BeforeValidator(parse_tokens)]
Clamp = Annotated[
    tuple[float | None, float | None], BeforeValidator(_clamp_range), AfterValidator(_ordered)
]


def dotted(loc: Loc) -> str:
    """``("routes", "chat", "targets", 1)`` → ``routes.chat.targets[1]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
