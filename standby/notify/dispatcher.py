"""The notification runner: incidents in, messages out.

The incident side calls :meth:`Dispatcher.notify` with each event of an incident and its
latest :class:`Notice`; the dispatcher feeds its :class:`Escalation`, wakes its loop,
and sends whatever is due: concurrently across channels and incidents, one message at a
time per channel and incident, so a thread (opened, updates, resolved) arrives in order
even when a message needs retries. Every outcome is handed to ``on_delivery`` (the
journal), ok or not.

The clock is read when an event is fed in and when the loop wakes; the loop sleeps until
the escalation's next wake-up or the next event. With a hand-moved clock (tests), call
:meth:`wake` after moving it, and :meth:`idle` to wait until everything due was sent.

The dispatcher owns its channels: :meth:`stop` closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace

from standby.notify.channels import Channel
from standby.notify.delivery import Delivery
from standby.notify.escalation import Escalation, Event
from standby.notify.message import Notice, NoticeEvent
from standby.plan.alerts import Notify

log = logging.getLogger("standby.notify")

OnDelivery = Callable[[str, Notice, Delivery], None]  # incident id, what was sent, outcome


class Dispatcher:
    """Runs the plan's escalation over ``channels`` (by name)."""

    def __init__(
        self,
        plan_notify: Notify,
        channels: Mapping[str, Channel],
        clock: Callable[[], float],
        on_delivery: OnDelivery,
    ) -> None:
        named = {name for step in plan_notify.escalation for name in step.notify}
        missing = sorted(named - set(channels))
        if missing:
            raise ValueError(f"escalation names channel(s) not built: {', '.join(missing)}")
        intervals = {name: config.min_interval for name, config in plan_notify.channels.items()}
        self._escalation = Escalation(plan_notify.escalation, min_interval=intervals)
        self._channels = dict(channels)
        self._clock = clock
        self._on_delivery = on_delivery
        self._live: dict[str, Notice] = {}  # incident → latest notice before any resolution
        self._resolution: dict[str, Notice] = {}  # incident → its resolution notice
        self._queues: dict[tuple[str, str], deque[Notice]] = {}  # (channel, incident) → next
        self._senders: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._settled = asyncio.Event()  # the loop is waiting, nothing due left unsent
        self._loop: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "running" if self._loop is not None and not self._loop.done() else "stopped"
        return (
            f"<Dispatcher {state} channels={','.join(self._channels)} "
            f"sending={len(self._senders)} {self._escalation!r}>"
        )

    # -- life ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop in the running event loop."""
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._run(), name="standby-notify")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the loop, let messages being sent finish for ``grace`` seconds (the rest
        are cancelled), and close the channels."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._senders:
            _, late = await asyncio.wait(set(self._senders.values()), timeout=grace)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for channel in self._channels.values():
            await channel.aclose()

    async def settled(self) -> None:
        """Wait until the loop has looked at every event fed in and queued what was due
        (it may still be sending)."""
        while self._loop is not None and not self._loop.done() and not self._settled.is_set():
            await self._settled.wait()

    async def idle(self) -> None:
        """Wait until nothing is due now and no message is being sent."""
        await self.settled()
        while self._senders:
            await asyncio.wait(set(self._senders.values()))

    # -- events in -----------------------------------------------------------------------

    def notify(self, event: NoticeEvent, notice: Notice) -> None:
        """An incident ``opened``, was ``updated``, ``acknowledged`` or ``resolved``;
        ``notice`` says it as it is now."""
        incident_id = notice.incident_id
        now = self._clock()
        if event == "test":
            raise ValueError("a test notice is sent with send_test(), not through escalation")
        if event == "resolved":
            self._resolution[incident_id] = notice
            self._escalation.resolved(incident_id, now)
        else:
            self._live[incident_id] = notice
            if event == "opened":
                self._resolution.pop(incident_id, None)  # re-opened
                self._escalation.opened(incident_id, now)
            elif event == "updated":
                self._escalation.updated(incident_id, now)
            else:
                self._escalation.acknowledged(incident_id, now)
        self.wake()

    def mute(self, incident_id: str) -> None:
        """The incident is in a maintenance window: nothing more is sent about it (but its
        resolution, to channels told before)."""
        self._escalation.muted(incident_id)
        self.wake()

    def wake(self) -> None:
        """Look at what is due now (after an event, or after a test moved the clock)."""
        self._settled.clear()
        self._wakeup.set()

    async def send_test(self, channel_name: str) -> Delivery:
        """Send a test notice to one channel now, outside any escalation (``standby
        notify test CHANNEL``). The outcome is returned, not reported to ``on_delivery``."""
        channel = self._channels.get(channel_name)
        if channel is None:
            known = ", ".join(sorted(self._channels)) or "none"
            raise ValueError(f"no notify channel {channel_name!r} (channels: {known})")
        now = self._clock()
        notice = Notice(
            incident_id=f"test-{int(now)}",
            event="test",
            title="Standby test notification",
            body="This is a test of a Standby notification channel: if you read it, it works.",
            severity="info",
            component="Standby",
            status="test",
            at=now,
        )
        return await self._send(channel, notice)

    # -- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                self._dispatch_due()
                wake = self._escalation.next_wake(self._clock())
            except Exception:  # a bug here must not silence every later notification
                log.exception("notify: escalation failed")
                wake = None
            delay = None if wake is None else wake - self._clock()
            if delay is not None and delay <= 0:
                continue
            self._settled.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()
            self._settled.clear()

    def _dispatch_due(self) -> None:
        for incident_id, event, names in self._escalation.due(self._clock()):
            notice = self._notice(incident_id, event)
            if notice is None:
                continue
            for name in names:
                self._enqueue(name, notice)
        for notices in (self._live, self._resolution):
            for incident_id in [i for i in notices if i not in self._escalation]:
                del notices[incident_id]

    def _notice(self, incident_id: str, event: Event) -> Notice | None:
        notice = self._resolution.get(incident_id) if event == "resolved" else None
        notice = notice or self._live.get(incident_id) or self._resolution.get(incident_id)
        if notice is None:
            return None
        return notice if notice.event == event else replace(notice, event=event)

    def _enqueue(self, channel: str, notice: Notice) -> None:
        key = (channel, notice.incident_id)
        self._queues.setdefault(key, deque()).append(notice)
        if key not in self._senders:
            self._senders[key] = asyncio.create_task(self._drain(key), name=f"notify-{channel}")

    async def _drain(self, key: tuple[str, str]) -> None:
        channel = self._channels[key[0]]
        queue = self._queues[key]
        try:
            while queue:
                notice = queue.popleft()
                self._report(notice, await self._send(channel, notice))
        finally:
            del self._senders[key]
            del self._queues[key]

    async def _send(self, channel: Channel, notice: Notice) -> Delivery:
        try:
            return await channel.send(notice)
        except Exception as exc:  # channels report failures; this is a bug, told by type only
            log.error("notify channel %s crashed: %s", channel.name, type(exc).__name__)
            error = f"channel crashed ({type(exc).__name__})"
            return Delivery(channel.name, False, 1, None, error, self._clock())

    def _report(self, notice: Notice, delivery: Delivery) -> None:
        if not delivery.ok:
            log.warning(
                "notify: %s of incident %s to %s failed after %d tries: %s",
                notice.event,
                notice.incident_id,
                delivery.channel,
                delivery.attempts,
                delivery.error,
            )
        try:
            self._on_delivery(notice.incident_id, notice, delivery)
        except Exception:
            log.exception("notify: on_delivery failed")
