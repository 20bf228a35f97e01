"""Who hears about an incident, and when: a pure state machine with an injected clock.

Every call takes the time (``at`` / ``now``, seconds on one clock); nothing here reads
the time, sleeps or sends. The dispatcher feeds it what happened and asks ``due(now)``
what to send; ``next_wake(now)`` says when to ask again.

    policy: [{after: 0s, notify: [chat, hooks]}, {after: 10m, notify: [oncall]}]

* **Steps.** Step k fires once, at ``opened_at + after``, unless the incident was
  acknowledged, resolved or muted before: its channels get ``opened``. A channel named by
  an earlier step is not told again. Steps fire in order; a caller that asks late gets
  every step that came due before the event it reports, in order.
* **One thread per incident and channel.** Once a channel was told, every update,
  acknowledgement and resolution of that incident goes to it (``updated``,
  ``acknowledged``, ``resolved``), and to no channel that was not told. A resolution of
  an incident nobody was told of sends nothing. The first message of a thread is always
  ``opened`` and carries the incident as it is then (the dispatcher sends the latest
  notice), so an update before it needs no message of its own.
* **Rate.** Per channel and incident, at most one message per the channel's
  ``min_interval``, every kind counted. What comes inside the interval is coalesced into
  one message sent when it ends: the most significant event waiting (resolved >
  acknowledged > updated). A resolution is never dropped, only delayed.
* **Maintenance.** ``muted(id)`` (before or after ``opened``): no step fires any more,
  updates and acknowledgements are not sent, and channels that were never told never
  will be. A resolution still goes to the channels told before the mute, so no page is
  left open.
* **Re-opening.** A resolved incident is kept until its resolution has gone out to
  every channel told and their intervals have passed; ``opened`` meanwhile re-opens it:
  a resolution still waiting becomes an update (the flap is invisible to that channel),
  channels that heard the resolution are told ``opened`` again (once their interval
  allows), and the steps start over. Once forgotten, ``opened`` with the same id starts
  a new incident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from standby.plan.alerts import Step

Event = Literal["opened", "updated", "acknowledged", "resolved"]
Due = tuple[str, Event, tuple[str, ...]]  # incident id, event, channel names

ORDER: tuple[Event, ...] = ("opened", "updated", "acknowledged", "resolved")
RANK: Mapping[Event, int] = {event: rank for rank, event in enumerate(ORDER)}


@dataclass(slots=True)
class _Thread:
    """One channel's messages about one incident."""

    told: bool = False  # ``opened`` has gone out
    closed: bool = False  # ``resolved`` has gone out
    last: float | None = None  # when the last message went out
    pending: Event | None = None  # the next message after ``opened``, coalesced

    def raise_to(self, event: Event) -> None:
        if self.pending is None or RANK[event] > RANK[self.pending]:
            self.pending = event

    def __repr__(self) -> str:
        mark = "" if self.told else "?"  # ? : not told yet
        mark += "." if self.closed else ""  # . : resolution sent
        return mark + (f":{self.pending}" if self.pending else "")


@dataclass(slots=True)
class _Incident:
    opened_at: float
    muted: bool = False
    fired: int = 0  # steps fired so far
    acknowledged: bool = False
    resolved: bool = False
    threads: dict[str, _Thread] = field(default_factory=dict)  # in the order told

    @property
    def escalating(self) -> bool:
        return not (self.muted or self.acknowledged or self.resolved)


class Escalation:
    """The escalation policy applied to every open incident. Use it from one event loop.

    ``min_interval`` maps a channel name to its minimum seconds between two messages
    about one incident (absent: 0).
    """

    __slots__ = ("_incidents", "_min_interval", "_premuted", "_steps")

    def __init__(
        self, policy: Sequence[Step], *, min_interval: Mapping[str, float] | None = None
    ) -> None:
        self._steps = sorted(policy, key=lambda step: step.after)  # stable: plan order
        self._min_interval = dict(min_interval or {})
        self._incidents: dict[str, _Incident] = {}
        self._premuted: set[str] = set()  # muted before they opened

    # -- what happened -------------------------------------------------------------------

    def opened(self, incident_id: str, at: float) -> None:
        """An incident opened at ``at``; a repeat for an open incident changes nothing."""
        incident = self._incidents.get(incident_id)
        if incident is None:
            muted = incident_id in self._premuted
            self._premuted.discard(incident_id)
            self._incidents[incident_id] = _Incident(opened_at=at, muted=muted)
            return
        if not incident.resolved:
            return
        incident.resolved = incident.acknowledged = False
        incident.opened_at = at
        incident.fired = 0
        for thread in incident.threads.values():
            if thread.closed and not incident.muted:
                thread.closed = thread.told = False  # a new ``opened`` for them
            elif thread.pending == "resolved":
                quiet = incident.muted or not thread.told
                thread.pending = None if quiet else "updated"

    def updated(self, incident_id: str, at: float) -> None:
        """The incident changed (status, estimate, text): tell the channels told so far."""
        incident = self._incidents.get(incident_id)
        if incident is None or incident.resolved or incident.muted:
            return
        self._fire(incident, at)
        for thread in incident.threads.values():
            if thread.told:  # one not told yet hears the latest in its ``opened``
                thread.raise_to("updated")

    def acknowledged(self, incident_id: str, at: float) -> None:
        """Someone took the incident: no later step fires; the channels told hear it."""
        incident = self._incidents.get(incident_id)
        if incident is None or incident.resolved or incident.acknowledged:
            return
        self._fire(incident, at)  # a step due before the acknowledgement still fired
        incident.acknowledged = True
        if not incident.muted:
            for thread in incident.threads.values():
                thread.raise_to("acknowledged")

    def resolved(self, incident_id: str, at: float) -> None:
        """The incident is over: every channel told hears it (once its interval allows)."""
        incident = self._incidents.get(incident_id)
        if incident is None or incident.resolved:
            return
        self._fire(incident, at)
        incident.resolved = True
        for thread in incident.threads.values():
            thread.raise_to("resolved")
        self._forget_if_done(incident_id, incident, at)

    def muted(self, incident_id: str) -> None:
        """The incident is inside a maintenance window: send nothing more about it (but
        the resolution, to channels told before)."""
        incident = self._incidents.get(incident_id)
        if incident is None:
            self._premuted.add(incident_id)
            return
        incident.muted = True
        for name, thread in list(incident.threads.items()):
            if not thread.told:
                del incident.threads[name]
            elif thread.pending != "resolved":
                thread.pending = None

    # -- what to do ----------------------------------------------------------------------

    def due(self, now: float) -> list[Due]:
        """Every message to send at ``now``, each returned once.

        Per incident, events come in the order of :data:`ORDER`, so a channel that gets
        two messages at once (``opened``, then one waiting, when it has no interval)
        gets them in the right order.
        """
        out: list[Due] = []
        for incident_id, incident in list(self._incidents.items()):
            self._fire(incident, now)
            by_event: dict[Event, list[str]] = {}
            for name, thread in incident.threads.items():
                if thread.closed:
                    continue
                if not thread.told and self._ready(name, thread, now):
                    thread.told = True
                    thread.last = now
                    by_event.setdefault("opened", []).append(name)
                if thread.told and thread.pending is not None and self._ready(name, thread, now):
                    by_event.setdefault(thread.pending, []).append(name)
                    thread.closed = thread.pending == "resolved"
                    thread.pending = None
                    thread.last = now
            out += [(incident_id, e, tuple(by_event[e])) for e in ORDER if e in by_event]
            self._forget_if_done(incident_id, incident, now)
        return out

    def next_wake(self, now: float) -> float | None:
        """When ``due`` will next have something (``now``: at once); ``None``: not
        before a new event."""
        wakes: list[float] = []
        for incident in self._incidents.values():
            if incident.escalating and incident.fired < len(self._steps):
                wakes.append(incident.opened_at + self._steps[incident.fired].after)
            for name, thread in incident.threads.items():
                if not thread.closed and (not thread.told or thread.pending is not None):
                    wakes.append(max(now, self._allowed_at(name, thread)))
        return min(wakes, default=None)

    def __contains__(self, incident_id: object) -> bool:
        """Is the incident still tracked (open, or not yet done with after resolution)?"""
        return incident_id in self._incidents

    # -- internals -----------------------------------------------------------------------

    def _fire(self, incident: _Incident, now: float) -> None:
        steps = self._steps
        while (
            incident.escalating
            and incident.fired < len(steps)
            and incident.opened_at + steps[incident.fired].after <= now
        ):
            for name in steps[incident.fired].notify:
                incident.threads.setdefault(name, _Thread())
            incident.fired += 1

    def _allowed_at(self, name: str, thread: _Thread) -> float:
        if thread.last is None:
            return float("-inf")
        return thread.last + self._min_interval.get(name, 0.0)

    def _ready(self, name: str, thread: _Thread, now: float) -> bool:
        return now >= self._allowed_at(name, thread)

    def _forget_if_done(self, incident_id: str, incident: _Incident, now: float) -> None:
        # A muted incident is kept until resolved, so later events about it stay quiet; a
        # resolved one until its threads' intervals are over, so a re-opening cannot
        # start a thread again sooner than its interval allows.
        if incident.resolved and all(
            thread.closed and self._ready(name, thread, now)
            for name, thread in incident.threads.items()
        ):
            del self._incidents[incident_id]

    def __repr__(self) -> str:
        parts = []
        for incident_id, incident in self._incidents.items():
            state = (
                "resolved" if incident.resolved else "acked" if incident.acknowledged else "open"
            )
            if incident.muted:
                state += " muted"
            threads = ",".join(f"{name}{thread!r}" for name, thread in incident.threads.items())
            parts.append(f"{incident_id} {state} fired={incident.fired} [{threads}]")
        return f"<Escalation steps={len(self._steps)} {'; '.join(parts) or 'idle'}>"
