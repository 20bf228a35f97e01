"""Deferred completion (F20): a request nothing can serve now is answered later.

A non-streaming chat request whose route allows it (``defer: {allowed: true}``) and whose
caller opted in (header ``Standby-Defer: allow``, or ``metadata.standby_defer: "true"``)
gets ``202 Accepted`` instead of a 503 when every target is down.  Its completion id is
``chatcmpl-`` + the request id's hex part, and ``Location`` points at the stored
completion (``GET /v1/chat/completions/<id>``) that will hold the answer.

The request is already in the journal (``acc``); a ``dfr`` event adds its deadline and
callback URL, so deferred work survives restarts: :class:`DeferredRunner` reads pending
rows from the journal's database, oldest first, and retries them through the router
under a token-bucket rate and a concurrency cap, so a recovering provider is not
stampeded.  A retry that finds every target still down pushes the row back by a
doubling pause (capped at a minute).  A success is journaled as the row's final answer
under the deferred completion id, then POSTed to the callback URL, signed (see
``standby.deferred.callbacks``).  A row past its deadline fails with a 504
``deferred_expired`` error.  A callback URL the plan's ``journal.callback_hosts`` does
not allow is refused with a 400 before anything is deferred.  Streams cannot be
deferred: they get the normal 503.

The scheduling decisions are pure and live in ``standby.deferred.policy``
(:func:`plan_tick`, :func:`backoff`, :class:`Pacer`); this module does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp.abc import AbstractResolver

from standby.deferred import callbacks as cb
from standby.deferred import policy
from standby.deferred.callbacks import verify_signature
from standby.deferred.policy import Scope, completion_id
from standby.errors import ClientError, Exhausted, InvalidRequest, StandbyError, UpstreamStatus
from standby.journal.store import DeferredRow, JournalStore
from standby.plan.model import JournalConfig
from standby.routing.attempts import AttemptSchedule, journal_attempts
from standby.routing.policy import ResolvedRoute
from standby.routing.router import Router
from standby.routing.sink import JournalSink

__all__ = ["Deferral", "DeferredRunner", "DeferredService", "completion_id", "verify_signature"]

_LEASE = 300.0  # seconds a claimed try is ours; longer than any sane request budget

log = logging.getLogger("standby.deferred")


@dataclass(frozen=True, slots=True)
class Deferral:
    """A request accepted for later: what its ``202 Accepted`` says."""

    completion_id: str  # where the answer will be: GET /v1/chat/completions/{id}
    created: int  # unix seconds
    model: str  # the model asked for
    retry_after: int  # seconds; a sensible polling interval
    expires_at: int  # unix seconds: given up after this

    def body(self) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "chat.completion.deferred",
            "status": "deferred",
            "created": self.created,
            "model": self.model,
            "retry_after": self.retry_after,
            "expires_at": self.expires_at,
        }


class DeferredService(Protocol):
    """What the runner needs of the journal service (``standby.journal.service``)."""

    @property
    def journal(self) -> JournalSink: ...

    @property
    def store(self) -> JournalStore: ...

    @property
    def config(self) -> JournalConfig: ...

    @property
    def callback_secret(self) -> str:
        """The plan's ``journal.callback_secret``, or the one generated beside the journal."""
        ...

    async def flush(self) -> None: ...


class DeferredRunner:
    """Defers what may be deferred (the wire's ``Deferrals``) and completes it later."""

    def __init__(
        self,
        router: Router,
        service: DeferredService,
        *,
        clock: Callable[[], float] = time.time,
        interval: float = 1.0,
        rate: float = 2.0,
        concurrency: int = 2,
        resolver: AbstractResolver | None = None,
        base_backoff: float = 1.0,
        batch: int = 50,
    ) -> None:
        self.router = router
        self.service = service
        self.clock = clock
        self.interval = interval
        self.concurrency = max(1, concurrency)
        self.base_backoff = base_backoff
        self.batch = batch
        self.pacer = policy.Pacer(rate, max(1.0, rate * interval), clock())
        self.callbacks = cb.CallbackSender(
            service.callback_secret,
            policy.CallbackHosts(service.config.callback_hosts),
            clock=clock,
            resolver=resolver,
        )
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._settled: dict[str, float] = {}  # final; maybe not in the database yet
        self._not_before: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (
            f"<DeferredRunner busy={len(self._busy)} waiting={len(self._not_before)} "
            f"{self.pacer!r}>"
        )

    @property
    def in_flight(self) -> list[str]:
        """Request ids being tried right now, in the order their tries started."""
        return list(self._busy)

    # -- the wire's side ---------------------------------------------------------------

    async def maybe_defer(
        self, rid: str, scope: Scope, body: dict[str, Any], route: ResolvedRoute
    ) -> Deferral | None:
        """Journal the deferral when route and caller allow, and say what to answer (the
        wire renders the 202); ``None``: not deferred.

        Raises ``InvalidRequest`` when the caller names a callback the plan does not allow.
        """
        config = self.service.config
        rule = self.router.route_config(route)
        if (
            not rule.defer.allowed
            or body.get("stream")
            or not str(scope.get("path", "")).endswith("/chat/completions")
            or not config.enabled
            or config.redact
            or not policy.opted_in(scope, body)
        ):
            return None
        callback = policy.callback_url(scope, body)
        if callback is not None:
            await self._check_callback(callback)
        now = self.clock()
        until = now + rule.defer.max_age
        self.service.journal.deferred(
            rid, until=until, callback=callback.url if callback is not None else None
        )
        log.info("deferred %s on route %s until %.0f", rid, route.name, until)
        return Deferral(
            completion_id=completion_id(rid),
            created=int(now),
            model=str(body.get("model")),
            retry_after=max(1, math.ceil(self.interval + self.base_backoff)),
            expires_at=int(until),
        )

    async def _check_callback(self, callback: policy.Callback) -> None:
        try:
            await self.callbacks.check(callback.url)
        except cb.CallbackRefused as refused:
            log.info("refused a deferred callback to %s: %s", cb.safe_url(callback.url), refused)
            raise InvalidRequest(
                f"The callback URL is not allowed: {refused}.",
                param=callback.param,
                code="callback_not_allowed",
            ) from None

    # -- the background loop -----------------------------------------------------------

    async def run(self) -> None:
        """Every ``interval``: flush the journal, then expire and retry due rows."""
        self._task = asyncio.current_task()
        failing, started = False, False
        try:
            while True:
                try:
                    await self.tick()
                except Exception as exc:  # the journal database is away, most likely
                    if not failing:  # once per outage (at start-up: while it gets ready)
                        log.log(
                            logging.WARNING if started else logging.INFO,
                            "deferred completion waits for the journal: %s: %s",
                            type(exc).__name__,
                            str(exc).split("\n", 1)[0][:300],
                        )
                    failing = True
                else:
                    if failing and started:
                        log.info("deferred completion resumed")
                    failing, started = False, True
                await asyncio.sleep(self.interval)
        finally:
            await self._shutdown()

    async def stop(self) -> None:
        """Stop the loop; tries in flight are cancelled and stay deferred for next time."""
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        else:
            await self._shutdown()

    async def tick(self) -> None:
        """One pass; returns once the tries it starts are under way (not finished)."""
        await self.service.flush()
        now = self.clock()
        rows = await self.service.store.pending_deferred(now, limit=self.batch)
        self._settled = policy.unconfirmed(self._settled, rows, self.batch)
        slots = min(self.concurrency - len(self._busy), self.pacer.available(now))
        work = policy.plan_tick(
            rows,
            now,
            busy=set(self._busy) | set(self._settled),
            not_before=self._not_before,
            slots=slots,
        )
        for row in work.expire:
            log.warning("deferred request %s expired unanswered", row.rid)
            self._fail(
                row,
                504,
                "The deferred request expired before any provider could answer it.",
                "deferred_expired",
            )
        for row in work.start:
            if self.pacer.take(now):
                self._start(row)
        # a pause that is over no longer restricts anything
        self._not_before = {r: t for r, t in self._not_before.items() if t > now}

    def _start(self, row: DeferredRow) -> None:
        task = asyncio.create_task(self._attempt(row), name=f"deferred {row.rid}")
        self._busy[row.rid] = task

        def done(_: asyncio.Task[None]) -> None:
            self._busy.pop(row.rid, None)

        task.add_done_callback(done)

    async def idle(self) -> None:
        """Wait until no try is in flight (for tests and orderly shutdown)."""
        while self._busy:
            await asyncio.wait(set(self._busy.values()))

    async def _attempt(self, row: DeferredRow) -> None:
        body = row.request
        plan: AttemptSchedule | None = None
        try:
            # several replicas may share one journal: only the one holding the claim tries
            if not await self.service.store.claim_deferred(row.rid, self.clock(), _LEASE):
                return
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                self._fail(
                    row, 500, "The deferred request's body was not kept.", "deferred_body_missing"
                )
                return
            route = self.router.resolve(body.get("model"))
            # no one is waiting for it: it takes a short target's capacity only as far
            # as low priority may, leaving the rest to live requests
            plan = self.router.attempt_schedule(route, priority="low")
            done = await self.router.complete("chat", body, route, plan)
        except Exhausted:
            await self._postpone(row)
            return
        except UpstreamStatus as error:  # a final verdict: content policy, bad request
            upstream = (
                error.body if error.body and isinstance(error.body.get("error"), dict) else None
            )
            self._fail(row, error.status, error.message, error.kind, upstream, plan)
            return
        except ClientError as error:  # e.g. the plan no longer has its model
            self._fail(row, error.status, error.message, error.code or "invalid_request")
            return
        except StandbyError as error:
            self._fail(row, 500, str(error), "server_error", None, plan)
            return
        except Exception:
            log.exception("deferred request %s: unexpected error; will retry", row.rid)
            self._pause(row)
            return
        cid = completion_id(row.rid)
        data = dict(done.reply.data)
        data["id"] = cid
        response = orjson.dumps(data)
        self.service.journal.completed(
            row.rid,
            completion_id=cid,
            provider=done.target.provider,
            model=done.reply.model or done.target.model,
            response=response,
            usage=done.reply.usage,
            attempts=journal_attempts(done.history),
        )
        self._settle(row)
        log.info(
            "deferred %s completed by %s after %d tries", row.rid, done.target.key, row.tries + 1
        )
        if row.callback:
            self.callbacks.send(row.callback, cb.COMPLETED_EVENT, response)

    def _pause(self, row: DeferredRow) -> float:
        next_at = self.clock() + policy.backoff(row.tries + 1, base=self.base_backoff)
        self._not_before[row.rid] = next_at
        return next_at

    async def _postpone(self, row: DeferredRow) -> None:
        next_at = self._pause(row)
        try:
            await self.service.store.note_deferred_try(row.rid, next_at)
        except Exception:  # the in-memory pause still holds; the count catches up later
            log.exception("could not record a try of deferred request %s", row.rid)

    def _fail(
        self,
        row: DeferredRow,
        status: int,
        message: str,
        code: str,
        upstream: dict[str, Any] | None = None,
        plan: AttemptSchedule | None = None,
    ) -> None:
        error = (upstream or {}).get("error") or {
            "message": message,
            "type": "server_error" if status >= 500 else "invalid_request_error",
            "param": None,
            "code": code,
        }
        self.service.journal.failed(
            row.rid,
            status=status,
            response=orjson.dumps({"error": error}),
            attempts=journal_attempts(plan.history if plan else []),
        )
        self._settle(row)
        if row.callback:
            notice = orjson.dumps(
                {
                    "id": completion_id(row.rid),
                    "object": "chat.completion.deferred",
                    "status": "failed",
                    "error": error,
                }
            )
            self.callbacks.send(row.callback, cb.FAILED_EVENT, notice)

    def _settle(self, row: DeferredRow) -> None:
        self._settled[row.rid] = row.received_at
        self._not_before.pop(row.rid, None)

    async def _shutdown(self) -> None:
        tries = list(self._busy.values())
        for task in tries:
            task.cancel()
        for task in tries:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.callbacks.aclose()
