"""The read side of the journal database: the ``JournalStore`` queries.

A stored completion is a row of the ``chat`` endpoint that ``completed``, was stored
(the store policy said so, or it was deferred: its answer is fetched later), and is not
deleted.  A stored response is the same on the ``responses`` endpoint.  Every read takes
an ``owner``: the name of the client key whose rows it may see (``None``: everyone's, for
the admin token and an open gateway); another client's row reads as missing.

Pages are ordered by ``(received_at, rid)``, which is unique and stable; the ``after`` /
``before`` cursors name the last item seen.

Metadata filters run portably: SQL narrows the rows with a ``LIKE`` on the JSON text
(``"key":"value"`` as orjson writes it), then Python checks the parsed value, so a
lookalike inside another value never matches.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from standby.journal import events as ev
from standby.journal.batch import dump
from standby.journal.schema import requests
from standby.journal.store import DeferredRow, RequestRow, StoredCompletion, StoredResponse

_t = requests


def _stored(owner: str | None, endpoint: str = "chat") -> list[sa.ColumnElement[bool]]:
    where = [
        _t.c.state == ev.COMPLETED,
        sa.or_(_t.c.store.is_(True), _t.c.defer_until.is_not(None)),
        _t.c.deleted.is_(False),
        _t.c.endpoint == endpoint,
    ]
    if owner is not None:
        where.append(_t.c.client == owner)
    return where


def _parse(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def _object(value: str | None) -> dict[str, Any] | None:
    parsed = _parse(value)
    return parsed if isinstance(parsed, dict) else None


def _completion(row: Row[Any]) -> StoredCompletion:
    return StoredCompletion(
        completion_id=row.completion_id,
        rid=row.rid,
        created=row.received_at,
        model=row.model or "",
        provider=row.provider or "",
        request=_object(row.request_json),
        response=_object(row.response_json),
        metadata=_object(row.metadata_json) or {},
    )


def _request(row: Row[Any]) -> RequestRow:
    hidden = bool(row.deleted)  # a deleted stored completion keeps its row, not its text
    return RequestRow(
        rid=row.rid,
        received_at=row.received_at,
        endpoint=row.endpoint,
        route=row.route,
        model_asked=row.model_asked,
        stream=bool(row.stream),
        state=row.state,
        status=row.status,
        completion_id=row.completion_id,
        provider=row.provider,
        model=row.model,
        finished_at=row.finished_at,
        attempts=[(str(a[0]), str(a[1]), float(a[2])) for a in _parse(row.attempts_json) or []],
        request=None if hidden else _object(row.request_json),
        response=None if hidden else _object(row.response_json),
        content_sent=None if hidden else row.content_sent,
        usage=_object(row.usage_json),
        metadata=_object(row.metadata_json) or {},
        client=row.client,
    )


def _after(received_at: float, rid: str, descending: bool) -> sa.ColumnElement[bool]:
    """Rows strictly past ``(received_at, rid)`` in the page order."""
    if descending:
        return sa.or_(
            _t.c.received_at < received_at, sa.and_(_t.c.received_at == received_at, _t.c.rid < rid)
        )
    return sa.or_(
        _t.c.received_at > received_at, sa.and_(_t.c.received_at == received_at, _t.c.rid > rid)
    )


def _order(descending: bool) -> list[sa.UnaryExpression[Any]]:
    if descending:
        return [_t.c.received_at.desc(), _t.c.rid.desc()]
    return [_t.c.received_at.asc(), _t.c.rid.asc()]


def _matches(row: Row[Any], metadata: dict[str, str]) -> bool:
    found = _object(row.metadata_json) or {}
    return all(found.get(key) == value for key, value in metadata.items())


class StoreQueries:
    """``JournalStore`` over an async engine (mixed into ``SQLStore``)."""

    engine: AsyncEngine

    async def get_completion(
        self, completion_id: str, *, owner: str | None = None
    ) -> StoredCompletion | None:
        async with self.engine.connect() as conn:
            row = await _find_completion(conn, completion_id, owner)
        return None if row is None else _completion(row)

    async def get_response(
        self, response_id: str, *, owner: str | None = None
    ) -> StoredResponse | None:
        query = sa.select(_t.c.request_json, _t.c.response_json).where(
            *_stored(owner, "responses"), _t.c.completion_id == response_id
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query.limit(1))).first()
        if row is None:
            return None
        return StoredResponse(
            request=_object(row.request_json), response=_object(row.response_json)
        )

    async def list_completions(
        self,
        *,
        model: str | None = None,
        metadata: dict[str, str] | None = None,
        after: str | None = None,
        limit: int = 20,
        order: Literal["asc", "desc"] = "asc",
        owner: str | None = None,
    ) -> tuple[list[StoredCompletion], bool]:
        """A page of stored completions and whether more follow.

        ``model`` matches the model asked for *or* the model that answered: after a
        failover they differ, and a caller filtering by the name it uses must still find
        its completions.
        """
        limit, descending = max(1, limit), order == "desc"
        where = _stored(owner)
        if model is not None:
            where.append(sa.or_(_t.c.model_asked == model, _t.c.model == model))
        for key, value in (metadata or {}).items():
            pair = f"{dump(key)}:{dump(value)}"
            where.append(_t.c.metadata_json.contains(pair, autoescape=True))
        found: list[Row[Any]] = []
        async with self.engine.connect() as conn:
            if after is not None:
                anchor = (
                    await conn.execute(
                        sa.select(_t.c.received_at, _t.c.rid)
                        .where(*_stored(owner), _t.c.completion_id == after)
                        .order_by(_t.c.received_at.desc())
                        .limit(1)
                    )
                ).first()
                if anchor is None:
                    return [], False
                where.append(_after(anchor.received_at, anchor.rid, descending))
            page = sa.select(_t).where(*where).order_by(*_order(descending)).limit(limit + 1)
            while len(found) <= limit:
                rows = (await conn.execute(page)).all()
                found.extend(r for r in rows if _matches(r, metadata or {}))
                if len(rows) <= limit:
                    break
                # only a metadata lookalike can get here: read on past the last row
                page = page.where(_after(rows[-1].received_at, rows[-1].rid, descending))
        return [_completion(r) for r in found[:limit]], len(found) > limit

    async def update_metadata(
        self, completion_id: str, metadata: dict[str, str], *, owner: str | None = None
    ) -> StoredCompletion | None:
        async with self.engine.begin() as conn:
            row = await _find_completion(conn, completion_id, owner)
            if row is None:
                return None
            await conn.execute(
                sa.update(_t).where(_t.c.rid == row.rid).values(metadata_json=dump(metadata))
            )
            row = await _find_completion(conn, completion_id, owner)
        return None if row is None else _completion(row)

    async def delete_completion(self, completion_id: str, *, owner: str | None = None) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.update(_t)
                .where(*_stored(owner), _t.c.completion_id == completion_id)
                .values(deleted=True)
            )
        return bool(result.rowcount)

    async def list_requests(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        state: str | None = None,
        route: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[RequestRow]:
        """Newest first; ``before`` is the request id of the last row already seen."""
        where: list[sa.ColumnElement[bool]] = []
        if since is not None:
            where.append(_t.c.received_at >= since)
        if until is not None:
            where.append(_t.c.received_at < until)
        if state is not None:
            where.append(_t.c.state == state)
        if route is not None:
            where.append(_t.c.route == route)
        async with self.engine.connect() as conn:
            if before is not None:
                anchor = (
                    await conn.execute(sa.select(_t.c.received_at).where(_t.c.rid == before))
                ).first()
                if anchor is None:
                    return []
                where.append(_after(anchor.received_at, before, descending=True))
            rows = (
                await conn.execute(
                    sa.select(_t).where(*where).order_by(*_order(True)).limit(max(1, limit))
                )
            ).all()
        return [_request(r) for r in rows]

    async def pending_deferred(self, now: float, limit: int = 10) -> list[DeferredRow]:
        """Deferred requests due now, oldest first: for a try (their pause after the
        last try is over) or, past their deadline, to be failed by the runner.

        A redacted request comes with ``request={}``: the runner fails it, as it cannot
        be replayed.
        """
        query = (
            sa.select(_t)
            .where(
                _t.c.state == ev.DEFERRED_STATE,
                sa.or_(
                    _t.c.next_try_at.is_(None), _t.c.next_try_at <= now, _t.c.defer_until <= now
                ),
            )
            .order_by(*_order(False))
            .limit(max(1, limit))
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            DeferredRow(
                rid=r.rid,
                received_at=r.received_at,
                until=r.defer_until or 0.0,
                callback=r.callback,
                route=r.route,
                request=_object(r.request_json) or {},
                tries=r.deferred_tries,
            )
            for r in rows
        ]

    async def claim_deferred(self, rid: str, now: float, lease: float) -> bool:
        """Take a due deferred request for one try, so no other replica tries it meanwhile.

        A compare-and-set on ``next_try_at``: only one claimant's update matches. The
        lease lapses by itself if the claimant dies; ``note_deferred_try`` or the final
        event replaces it.
        """
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.update(_t)
                .where(
                    _t.c.rid == rid,
                    _t.c.state == ev.DEFERRED_STATE,
                    sa.or_(_t.c.next_try_at.is_(None), _t.c.next_try_at <= now),
                )
                .values(next_try_at=now + lease)
            )
        return int(result.rowcount) == 1

    async def note_deferred_try(self, rid: str, next_at: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(_t)
                .where(_t.c.rid == rid)
                .values(deferred_tries=_t.c.deferred_tries + 1, next_try_at=next_at)
            )


async def _find_completion(
    conn: AsyncConnection, completion_id: str, owner: str | None
) -> Row[Any] | None:
    query = sa.select(_t).where(*_stored(owner), _t.c.completion_id == completion_id)
    return (await conn.execute(query.order_by(*_order(True)).limit(1))).first()
