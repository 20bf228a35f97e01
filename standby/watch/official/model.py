"""What one look at a provider's official status page says, in one vocabulary.

Every format (Atlassian Statuspage v2 and the pages that copy it, Google Cloud's
``incidents.json``, RSS/Atom feeds) is normalised to a :class:`Reading`: the page's
overall :class:`Level`, the level of each component that matters, the unresolved
incidents and the active or upcoming maintenances. A page that cannot be read —
unreachable, an HTML page instead of the API, unparsable — gives a reading with
``error`` set and the level ``unknown``: not knowing is never "down".

Severity, from best to worst (``unknown`` stands outside the ladder: it loses to any
stated level, so one component the page does not list cannot hide the others)::

    unknown < operational < maintenance < degraded < partial_outage < major_outage

Maintenance sits below degraded because it is planned; whether it takes a target out
first is the consumer's decision (the plan's ``status_page.demote``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Level(StrEnum):
    """The one vocabulary of status levels."""

    OPERATIONAL = "operational"
    DEGRADED = "degraded"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    MAINTENANCE = "maintenance"
    UNKNOWN = "unknown"

    @property
    def severity(self) -> int:
        """Rank on the severity ladder: higher is worse; ``unknown`` is lowest."""
        return _SEVERITY[self]

    @property
    def known(self) -> bool:
        """The page stated this level (anything but ``unknown``)."""
        return self is not Level.UNKNOWN


_SEVERITY = {
    Level.UNKNOWN: 0,
    Level.OPERATIONAL: 1,
    Level.MAINTENANCE: 2,
    Level.DEGRADED: 3,
    Level.PARTIAL_OUTAGE: 4,
    Level.MAJOR_OUTAGE: 5,
}


def worst_level(levels: Iterable[Level]) -> Level:
    """The most severe of ``levels``; ``unknown`` when there are none (or none known)."""
    return max(levels, key=_SEVERITY.__getitem__, default=Level.UNKNOWN)


def match_component(levels: dict[str, Level], name: str) -> Level | None:
    """The level of the component called ``name``: the same name in any case, else the
    components whose name is it followed by a qualifier in brackets or after a dash or a
    colon ("Claude API" → "Claude API (api.anthropic.com)"; the worst if several), else
    ``None``.

    Vendors rename the qualifiers of their components more often than the components.
    """
    folded = name.casefold()
    exact = [level for key, level in levels.items() if key.casefold() == folded]
    if exact:
        return worst_level(exact)
    qualified = [level for key, level in levels.items() if _qualifies(key.casefold(), folded)]
    return worst_level(qualified) if qualified else None


_QUALIFIER = "([-:,\u2013\u2014"  # what starts a qualifier: "Name (…)", "Name - …", "Name: …"


def _qualifies(key: str, name: str) -> bool:
    rest = key[len(name) :].lstrip() if key.startswith(name) else ""
    return bool(rest) and rest[0] in _QUALIFIER


def select_components(
    levels: dict[str, Level], watch: Iterable[str], absent: Level
) -> dict[str, Level]:
    """The watched components of ``levels`` (every one when ``watch`` is empty), keyed by
    the watched name (matched by :func:`match_component`); a watched name the page does
    not state reads ``absent``."""
    names = tuple(watch)
    if not names:
        return dict(levels)
    return {name: _or(match_component(levels, name), absent) for name in names}


def _or(level: Level | None, default: Level) -> Level:
    return default if level is None else level


@dataclass(frozen=True, slots=True)
class OfficialUpdate:
    """One update the vendor posted to an incident or a maintenance."""

    at: float  # seconds since the epoch (0.0: the page gave no time)
    status: str  # the vendor's own word: investigating, identified, in_progress, …
    body: str  # plain text


@dataclass(frozen=True, slots=True)
class OfficialIncident:
    """An unresolved incident, or an active or upcoming scheduled maintenance."""

    id: str
    name: str
    status: str  # the vendor's lifecycle word (investigating … monitoring; scheduled …)
    impact: Level
    started_at: float | None  # seconds since the epoch; a maintenance: when it starts
    url: str
    updates: tuple[OfficialUpdate, ...]  # newest first, as the vendors list them
    eta: str | None  # what the vendor said about restoration (a maintenance: its end)
    components: tuple[str, ...]  # names of the affected components


@dataclass(frozen=True, slots=True)
class Reading:
    """One look at one official status page."""

    source_url: str
    fetched_at: float  # seconds since the epoch
    indicator: Level  # the page's overall level (``unknown`` when ``error`` is set)
    # the watched components when a watch list is given (a watched name the page does not
    # list reads ``unknown``), else every component the page states
    components: dict[str, Level] = field(default_factory=dict)
    incidents: tuple[OfficialIncident, ...] = ()  # unresolved
    maintenances: tuple[OfficialIncident, ...] = ()  # active or upcoming
    error: str | None = None  # why the page could not be read

    @classmethod
    def failed(cls, source_url: str, fetched_at: float, error: str) -> Reading:
        """A page that could not be read: everything about it is unknown."""
        return cls(source_url, fetched_at, Level.UNKNOWN, error=error)

    @property
    def ok(self) -> bool:
        """The page was read."""
        return self.error is None

    def worst(self, components: Iterable[str] = ()) -> Level:
        """The worst level among ``components`` (every component read when empty) that
        the page states; ``unknown`` if it states none of them.

        A reading that lists no component at all (a feed, or Google Cloud's incidents
        without a watch list, with nothing open) answers with its indicator.
        """
        names = tuple(components)
        if not names and not self.components:
            return self.indicator
        levels = self.components.values() if not names else map(self._level, names)
        return worst_level(level for level in levels if level.known)

    def _level(self, name: str) -> Level:
        return _or(match_component(self.components, name), Level.UNKNOWN)
