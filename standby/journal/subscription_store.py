"""The status page's subscribers and what each has been told, in the journal's database
(SQLite or PostgreSQL; tables ``subscribers`` and ``subscription_deliveries``).

Written when a visitor subscribes, confirms or leaves, and once per update told; so plain
SQLAlchemy Core on the async engine, one short transaction per call.
``standby.statuspage.subscriptions`` decides; this only stores.

A subscriber is ``pending`` until confirmed (an email's link followed, a webhook's
challenge answered), then ``active`` until it ``unsubscribed``; a state is only ever left
forward.  A delivery is recorded once per subscriber and update: the unique index makes a
second :meth:`SubscriptionStore.record` of the same pair a no-op, whichever process
tries it, so a restart (or a second replica) never tells an update twice.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from standby.journal.schema import subscribers, subscription_deliveries

PENDING = "pending"
ACTIVE = "active"
UNSUBSCRIBED = "unsubscribed"
KINDS = ("webhook", "email")
CHUNK = 500  # ids per IN (…) list: well under every driver's parameter limit


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One subscriber; ``components`` are public component names (``None``: all)."""

    id: str
    kind: str  # webhook | email
    address: str = field(repr=False)  # the URL (may carry a token) or the mail address
    token_hash: str = field(repr=False)  # sha256 hex of the confirm/unsubscribe token
    state: str
    created_at: float
    components: tuple[str, ...] | None = None
    secret: str | None = field(default=None, repr=False)  # webhook: signs its deliveries
    confirmed_at: float | None = None
    ended_at: float | None = None

    def wants(self, components: Collection[str]) -> bool:
        """Whether an incident of these public components concerns this subscriber."""
        return self.components is None or any(name in components for name in self.components)


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One update told (or not) to one subscriber."""

    subscriber_id: str
    update_id: str
    incident_id: str
    at: float
    outcome: str  # delivered | failed
    attempts: int
    detail: str | None = None


def _subscriber(row: sa.Row[Any]) -> Subscriber:
    components = orjson.loads(row.components_json) if row.components_json else None
    return Subscriber(
        id=row.id,
        kind=row.kind,
        address=row.address,
        token_hash=row.token_hash,
        state=row.state,
        created_at=row.created_at,
        components=tuple(components) if components is not None else None,
        secret=row.secret,
        confirmed_at=row.confirmed_at,
        ended_at=row.ended_at,
    )


def _chunks(values: Collection[str]) -> list[list[str]]:
    items = sorted(set(values))
    return [items[start : start + CHUNK] for start in range(0, len(items), CHUNK)]


class SubscriptionStore:
    """Subscribers and their deliveries over the journal's async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def __repr__(self) -> str:
        return f"<SubscriptionStore {self.engine.dialect.name}>"

    # -- subscribers -------------------------------------------------------------------------
    async def add(self, subscriber: Subscriber) -> None:
        """Store a new subscriber (normally ``pending``)."""
        if subscriber.kind not in KINDS:
            raise ValueError(f"unknown subscriber kind {subscriber.kind!r}")
        components = subscriber.components
        async with self.engine.begin() as conn:
            await conn.execute(
                subscribers.insert().values(
                    id=subscriber.id,
                    kind=subscriber.kind,
                    address=subscriber.address,
                    components_json=None
                    if components is None
                    else orjson.dumps(list(components)).decode(),
                    secret=subscriber.secret,
                    token_hash=subscriber.token_hash,
                    state=subscriber.state,
                    created_at=subscriber.created_at,
                    confirmed_at=subscriber.confirmed_at,
                    ended_at=subscriber.ended_at,
                )
            )

    async def get(self, subscriber_id: str) -> Subscriber | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id))
            ).first()
        return None if row is None else _subscriber(row)

    async def confirm(
        self, subscriber_id: str, at: float, *, created_after: float | None = None
    ) -> bool:
        """``pending`` → ``active`` (confirmed ``at``); False when it was not pending, or
        was created before ``created_after`` (its link has expired)."""
        query = (
            subscribers.update()
            .where(subscribers.c.id == subscriber_id, subscribers.c.state == PENDING)
            .values(state=ACTIVE, confirmed_at=at)
        )
        if created_after is not None:
            query = query.where(subscribers.c.created_at >= created_after)
        async with self.engine.begin() as conn:
            result = await conn.execute(query)
        return bool(result.rowcount)

    async def end(self, subscriber_id: str, at: float) -> bool:
        """Unsubscribe (a pending one too: its challenge failed, or it left before
        confirming); False when it had ended already or does not exist."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                subscribers.update()
                .where(
                    subscribers.c.id == subscriber_id,
                    subscribers.c.state.in_((PENDING, ACTIVE)),
                )
                .values(state=UNSUBSCRIBED, ended_at=at)
            )
        return bool(result.rowcount)

    async def active(self) -> list[Subscriber]:
        """Every active subscriber, oldest first."""
        query = (
            sa.select(subscribers)
            .where(subscribers.c.state == ACTIVE)
            .order_by(subscribers.c.confirmed_at, subscribers.c.id)
        )
        async with self.engine.connect() as conn:
            return [_subscriber(row) for row in await conn.execute(query)]

    async def find(self, kind: str, address: str) -> list[Subscriber]:
        """The pending and active subscribers of ``kind`` at ``address``, newest first."""
        query = (
            sa.select(subscribers)
            .where(
                subscribers.c.kind == kind,
                subscribers.c.address == address,
                subscribers.c.state.in_((PENDING, ACTIVE)),
            )
            .order_by(subscribers.c.created_at.desc())
        )
        async with self.engine.connect() as conn:
            return [_subscriber(row) for row in await conn.execute(query)]

    async def count(self, *, pending_since: float) -> int:
        """Active subscribers, plus pending ones created at or after ``pending_since``
        (older pending ones can no longer be confirmed: they take no place)."""
        query = sa.select(sa.func.count()).where(
            sa.or_(
                subscribers.c.state == ACTIVE,
                sa.and_(
                    subscribers.c.state == PENDING,
                    subscribers.c.created_at >= pending_since,
                ),
            )
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    # -- deliveries --------------------------------------------------------------------------
    async def record(self, delivery: DeliveryRecord) -> bool:
        """Record one delivery; False (and nothing written) when this subscriber already
        has a record for this update."""
        values = {
            "subscriber_id": delivery.subscriber_id,
            "update_id": delivery.update_id,
            "incident_id": delivery.incident_id,
            "at": delivery.at,
            "outcome": delivery.outcome,
            "attempts": delivery.attempts,
            "detail": delivery.detail,
        }
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        query = (
            dialect.insert(subscription_deliveries)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["subscriber_id", "update_id"])
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(query)
        return bool(result.rowcount)

    async def settle(self, delivery: DeliveryRecord) -> None:
        """Overwrite the outcome of a recorded delivery (after the sending is over)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                subscription_deliveries.update()
                .where(
                    subscription_deliveries.c.subscriber_id == delivery.subscriber_id,
                    subscription_deliveries.c.update_id == delivery.update_id,
                )
                .values(
                    at=delivery.at,
                    outcome=delivery.outcome,
                    attempts=delivery.attempts,
                    detail=delivery.detail,
                )
            )

    async def updates_told(self, subscriber_id: str) -> set[str]:
        """The update ids this subscriber has a delivery record of (told, or given up)."""
        query = sa.select(subscription_deliveries.c.update_id).where(
            subscription_deliveries.c.subscriber_id == subscriber_id
        )
        async with self.engine.connect() as conn:
            return {row.update_id for row in await conn.execute(query)}

    async def told(self, update_ids: Collection[str]) -> dict[str, set[str]]:
        """Update id → the subscribers that have a delivery record of it (every id of
        ``update_ids`` is a key, possibly of an empty set)."""
        found: dict[str, set[str]] = {update_id: set() for update_id in update_ids}
        table = subscription_deliveries
        async with self.engine.connect() as conn:
            for chunk in _chunks(update_ids):
                query = sa.select(table.c.update_id, table.c.subscriber_id).where(
                    table.c.update_id.in_(chunk)
                )
                for row in await conn.execute(query):
                    found[row.update_id].add(row.subscriber_id)
        return found

    async def deliveries(self, subscriber_id: str) -> list[DeliveryRecord]:
        """Every delivery record of one subscriber, in the order they were made."""
        table = subscription_deliveries
        query = sa.select(table).where(table.c.subscriber_id == subscriber_id).order_by(table.c.id)
        async with self.engine.connect() as conn:
            return [
                DeliveryRecord(
                    subscriber_id=row.subscriber_id,
                    update_id=row.update_id,
                    incident_id=row.incident_id,
                    at=row.at,
                    outcome=row.outcome,
                    attempts=row.attempts,
                    detail=row.detail,
                )
                for row in await conn.execute(query)
            ]
