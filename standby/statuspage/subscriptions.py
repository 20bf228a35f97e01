"""Visitors of the public status page who asked to be told: subscribing, confirming,
leaving, and telling them each update of the incidents they care about.

    POST /status/subscribe (statuspage.subscribe) ──▶ SubscriptionService.subscribe
       webhook: URL checked (statuspage.webhooks) ─▶ challenge POSTed ─▶ echoed: active
       email:   pending ─▶ confirmation mail (statuspage.mailer) ─▶ link followed: active
    run(): every interval, deliver(page view) ─▶ for every active subscriber, every
       update it has not had ─▶ a signed webhook POST, or a mail ─▶ recorded, once

**Tokens.** One token per subscriber confirms it (email) and ends it (both kinds). It is
derived from the service's ``key`` and the subscriber's id (HMAC-SHA256), so a mail sent
months later can carry the unsubscribe link, while the database keeps only its SHA-256:
reading the database is not enough to unsubscribe anyone.  The key must stay the same
across restarts (keep it beside the journal, like the callback secret).

**Once.** A delivery is claimed in the journal before it is sent (the unique index of
``subscription_deliveries``), as "failed, interrupted", and settled afterwards; a
restart, a second replica or an overlapping call never tells an update twice.  A gateway
killed mid-send leaves that one update untold (at most once, like deferred callbacks).
Receivers dedupe the retries of one delivery on ``X-Standby-Delivery``.

**A public form.** Webhooks may not reach the inside (``statuspage.webhooks``); requests
are limited per client address (``statuspage.ratelimit``); the number of subscribers is
capped; one address gets at most one confirmation mail per ``confirm_within``, so the
form cannot be used to flood an inbox, and the answer never says whether an address was
subscribed already.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from aiohttp.abc import AbstractResolver

from standby.errors import ClientError, InvalidRequest, StandbyError
from standby.journal.subscription_store import (
    ACTIVE,
    PENDING,
    UNSUBSCRIBED,
    DeliveryRecord,
    Subscriber,
    SubscriptionStore,
)
from standby.notify.delivery import Delivery, Sleep, Wiring
from standby.notify.http import Poster
from standby.notify.redact import Redactor, origin, url_secrets
from standby.notify.retry import Retry
from standby.notify.webhook import sign
from standby.plan.alerts import Subscriptions
from standby.plan.model import Plan
from standby.statuspage.mailer import Mailer
from standby.statuspage.messages import (
    confirmation_mail,
    delivery_id,
    update_mail,
    webhook_body,
)
from standby.statuspage.model import PageView, PublicIncident, Update
from standby.statuspage.ratelimit import TokenBucket, client_key
from standby.statuspage.webhooks import USER_AGENT, Webhooks

log = logging.getLogger("standby.statuspage")

PageSource = Callable[[], Awaitable[PageView]]

UPDATE_EVENT = "incident.update"
DELIVERY_INTERVAL = 2.0  # seconds between two rounds of telling subscribers
MAX_EMAIL = 254
INTERRUPTED = "interrupted: not known to be delivered"
ID = re.compile(r"sub_[0-9a-f]{24}")  # what a subscriber id looks like
# deliberately narrower than RFC 5321: nothing Apprise could split into two recipients
# or a mail header could carry further
_EMAIL = re.compile(
    r"[A-Za-z0-9._+-]{1,64}@(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,63}"
)


# -- errors ------------------------------------------------------------------------------------
class NotFound(ClientError):
    """No subscription with this id and token (or its link expired): 404."""

    status = 404
    code = "subscription_not_found"


class RateLimited(ClientError):
    """This client address asked too often: 429 with ``Retry-After``."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Full(ClientError):
    """The page has ``max_subscribers`` already: 403."""

    status = 403
    code = "subscriptions_full"


class MailFailed(StandbyError):
    """The confirmation mail could not be sent (not the visitor's fault): 503."""

    status = 503
    type = "server_error"
    code = "mail_unavailable"
    param = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- configuration -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SubscriptionConfig:
    """What the service works with: the plan's ``status_page.subscriptions``, the page's
    public address, the key tokens derive from, and bounds the plan does not set."""

    rules: Subscriptions
    key: str = field(repr=False)  # stable across restarts; see the module's docstring
    base_url: str = ""  # ``status_page.url`` (an origin): links; "": relative, and no email
    email_url: str = field(default="", repr=False)  # the email channel's apprise URL
    challenge_timeout: float = 5.0  # the whole challenge POST, answer included
    send_timeout: float = 10.0  # one try of one delivery
    retry: Retry = field(default_factory=Retry)  # of a webhook delivery
    concurrency: int = 16  # subscribers told at once
    max_sends: int = 1000  # deliveries per deliver() call; the rest in the next one
    horizon: float = 86_400.0  # an update older than this is old news: never sent
    confirm_within: float = 86_400.0  # an email's confirmation link lasts this long

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("subscriptions need a key to derive their tokens from")
        if self.concurrency < 1 or self.max_sends < 1:
            raise ValueError("concurrency and max_sends must be at least 1")

    @classmethod
    def from_plan(cls, plan: Plan, key: str, **bounds: Any) -> SubscriptionConfig:
        """The plan's values: ``status_page.subscriptions``, ``status_page.url`` and the
        URL of the ``notify`` channel its ``email_channel`` names."""
        rules = plan.status_page.subscriptions
        channel = plan.notify.channels.get(rules.email_channel) if rules.email_channel else None
        return cls(
            rules=rules,
            key=key,
            base_url=plan.status_page.url,
            email_url=channel.url if channel is not None else "",
            **bounds,
        )


def subscription_key(callback_secret: str) -> str:
    """The key subscribers' tokens derive from: stable across restarts and shared by
    every process of one journal (the gateway's replicas, the page's own process),
    because it derives from the callback secret (which they share), without being it."""
    secret = callback_secret.encode()
    return hmac.new(secret, b"standby status-page subscriptions", hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Runtime:
    """The service's clock (unix time), waits, jitter and DNS; tests inject them."""

    clock: Callable[[], float] = time.time
    sleep: Sleep = asyncio.sleep
    jitter: Callable[[], float] = random.random
    resolver: AbstractResolver | None = None  # None: aiohttp's default resolver


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a visitor is told after subscribing.  An email subscription's id and links
    travel only in its confirmation mail (the requester may not own the address)."""

    kind: str
    state: str  # active (a webhook) | pending (an email, until confirmed)
    components: tuple[str, ...] | None
    id: str | None = None
    secret: str | None = field(default=None, repr=False)  # shown once
    unsubscribe_url: str | None = field(default=None, repr=False)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- the service -------------------------------------------------------------------------------
class SubscriptionService:
    """Subscriptions to the public status page, over the journal's database.

    ``page`` builds the page as it is now (its components are what a visitor may
    choose).  ``aclose()`` releases the HTTP session.
    """

    def __init__(
        self,
        store: SubscriptionStore,
        config: SubscriptionConfig,
        page: PageSource,
        runtime: Runtime | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.runtime = runtime or Runtime()
        self.page = page
        self._clock = self.runtime.clock
        self._bucket = TokenBucket(config.rules.per_minute)
        self.webhooks = Webhooks(
            allow_private=config.rules.allow_private_webhooks,
            limit=config.concurrency,
            challenge_timeout=config.challenge_timeout,
            resolver=self.runtime.resolver,
        )
        self._mailer = Mailer(config.email_url, clock=self._clock, timeout=config.send_timeout)
        self._wiring = Wiring(
            clock=self._clock,
            # the one guarded session of the webhooks; a Poster borrows it, never closes it
            session_factory=self.webhooks.session,
            retry=config.retry,
            sleep=self.runtime.sleep,
            random=self.runtime.jitter,
            timeout=config.send_timeout,
        )
        self._told: dict[str, set[str]] = {}  # update id → subscribers with a record of it
        self._ended: set[str] = set()  # unsubscribed by this process: never told again
        self._round = asyncio.Lock()
        if config.rules.email_channel and not (config.email_url and config.base_url):
            log.warning(
                "status page: email subscriptions need status_page.url (the links in the "
                "mails) and the email channel's URL; they are not offered"
            )

    def __repr__(self) -> str:
        return f"<SubscriptionService {'+'.join(self.kinds) or 'closed'} {self._bucket!r}>"

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of subscription offered."""
        rules = self.config.rules
        if not rules.enabled:
            return ()
        email = bool(rules.email_channel and self.config.email_url and self.config.base_url)
        return tuple(k for k, on in (("webhook", rules.webhook), ("email", email)) if on)

    async def components(self) -> tuple[str, ...]:
        """The public component names a visitor may choose from."""
        return tuple(c.name for c in (await self.page()).components)

    # -- links -----------------------------------------------------------------------------
    def token(self, subscriber_id: str) -> str:
        digest = hmac.new(self.config.key.encode(), subscriber_id.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()

    def _link(self, subscriber_id: str, action: str) -> str:
        base = self.config.base_url.rstrip("/")
        token = self.token(subscriber_id)
        return f"{base}/status/subscriptions/{subscriber_id}/{action}?token={token}"

    def unsubscribe_url(self, subscriber_id: str) -> str:
        return self._link(subscriber_id, "unsubscribe")

    def confirm_url(self, subscriber_id: str) -> str:
        return self._link(subscriber_id, "confirm")

    # -- subscribing -----------------------------------------------------------------------
    async def subscribe(
        self, kind: str, address: str, components: Sequence[str] | None, client: str
    ) -> Receipt:
        """A visitor's request from ``client`` (its address): a webhook is challenged
        before this returns; an email gets its confirmation mail."""
        wait = self._bucket.take(client_key(client), self._clock())
        if wait:
            raise RateLimited("Too many subscription requests; try again later.", retry_after=wait)
        if not self.kinds:
            raise NotFound("This status page takes no subscriptions.")
        if kind not in self.kinds:
            offered = " or ".join(self.kinds)
            raise InvalidRequest(f"This page offers subscriptions by {offered}.", param="kind")
        chosen = await self._chosen(components)
        if kind == "webhook":
            return await self._webhook(address, chosen)
        return await self._email(address, chosen)

    async def _chosen(self, requested: Sequence[str] | None) -> tuple[str, ...] | None:
        if not requested:
            return None
        known = await self.components()
        unknown = [name for name in requested if name not in known]
        if unknown:
            raise InvalidRequest(
                f"Unknown component(s): {', '.join(repr(n[:100]) for n in unknown[:10])} "
                f"(components: {', '.join(known)}).",
                param="components",
            )
        return tuple(dict.fromkeys(requested))

    async def _room(self, now: float) -> None:
        taken = await self.store.count(pending_since=now - self.config.confirm_within)
        if taken >= self.config.rules.max_subscribers:
            raise Full(
                "This page has all the subscribers it can take; follow its RSS or Atom "
                "feed instead, or try again later."
            )

    def _new(
        self, kind: str, address: str, chosen: tuple[str, ...] | None, secret: str | None
    ) -> Subscriber:
        subscriber_id = "sub_" + secrets.token_hex(12)
        return Subscriber(
            id=subscriber_id,
            kind=kind,
            address=address,
            token_hash=_hash(self.token(subscriber_id)),
            state=PENDING,
            created_at=self._clock(),
            components=chosen,
            secret=secret,
        )

    async def _webhook(self, url: str, chosen: tuple[str, ...] | None) -> Receipt:
        url = await self.webhooks.check(url.strip())
        await self._room(self._clock())
        subscriber = self._new("webhook", url, chosen, "whsec_" + secrets.token_urlsafe(32))
        await self.store.add(subscriber)
        why = await self.webhooks.challenge(url, subscriber.id)
        if why is not None:
            await self.store.end(subscriber.id, self._clock())
            raise InvalidRequest(
                f"The webhook was not confirmed: {why}. It must answer the POSTed challenge "
                'with {"challenge": <the value>} or the value alone, within '
                f"{self.config.challenge_timeout:g} s.",
                param="url",
                code="challenge_failed",
            )
        await self.store.confirm(subscriber.id, self._clock())
        log.info("status page: webhook subscriber %s at %s confirmed", subscriber.id, origin(url))
        return Receipt(
            "webhook",
            ACTIVE,
            chosen,
            subscriber.id,
            subscriber.secret,
            self.unsubscribe_url(subscriber.id),
        )

    async def _email(self, address: str, chosen: tuple[str, ...] | None) -> Receipt:
        address = address.strip()
        if len(address) > MAX_EMAIL or not _EMAIL.fullmatch(address):
            raise InvalidRequest(
                "This is not a mail address this page can write to.", param="address"
            )
        local, _, domain = address.rpartition("@")
        address = f"{local}@{domain.lower()}"
        now = self._clock()
        pending = Receipt("email", PENDING, chosen)
        for existing in await self.store.find("email", address):
            # subscribed already, or a confirmation is on its way: the same answer, and
            # no second mail (nobody learns who subscribed; no inbox is flooded)
            if existing.state == ACTIVE or existing.created_at >= now - self.config.confirm_within:
                return pending
            await self.store.end(existing.id, now)  # its link has expired
        await self._room(now)
        subscriber = self._new("email", address, chosen, None)
        await self.store.add(subscriber)
        subject, text = confirmation_mail(
            await self.page(), chosen, self.confirm_url(subscriber.id)
        )
        sent = await self._mailer.send(address, subject, text)
        if not sent.ok:
            await self.store.end(subscriber.id, self._clock())
            log.warning("status page: confirmation mail not sent: %s", sent.error)
            raise MailFailed("The confirmation mail could not be sent; try again later.")
        return pending

    # -- confirming and leaving ------------------------------------------------------------
    async def check(self, subscriber_id: str, token: str, client: str) -> Subscriber:
        """The subscriber this id and token name, or a 404.  A client whose tries fail
        is limited like one that subscribes too often; one whose tries succeed is not
        (a mail provider's one-click unsubscribe comes from few addresses)."""
        key = client_key(client)
        wait = self._bucket.wait(key, self._clock())
        if wait:
            raise RateLimited("Too many wrong links; try again later.", retry_after=wait)
        subscriber = await self.store.get(subscriber_id) if ID.fullmatch(subscriber_id) else None
        given = _hash(token[:256])
        if subscriber is None or not hmac.compare_digest(given, subscriber.token_hash):
            self._bucket.take(key, self._clock())
            raise NotFound("No subscription has this id and token.")
        return subscriber

    async def confirm(self, subscriber_id: str, token: str, client: str) -> Subscriber:
        """Follow an email's confirmation link: active from now on (again: a no-op)."""
        subscriber = await self.check(subscriber_id, token, client)
        if subscriber.state == ACTIVE:
            return subscriber
        if subscriber.state == UNSUBSCRIBED or subscriber.kind != "email":
            raise NotFound("This subscription has ended; subscribe again.")
        now = self._clock()
        if not await self.store.confirm(
            subscriber_id, now, created_after=now - self.config.confirm_within
        ):
            raise NotFound("This confirmation link has expired; subscribe again.")
        log.info("status page: email subscriber %s confirmed", subscriber_id)
        return replace(subscriber, state=ACTIVE, confirmed_at=now)

    async def unsubscribe(self, subscriber_id: str, token: str, client: str) -> Subscriber:
        """End a subscription (again: a no-op); nothing is delivered to it afterwards."""
        subscriber = await self.check(subscriber_id, token, client)
        self._ended.add(subscriber_id)
        if subscriber.state == UNSUBSCRIBED:
            return subscriber
        now = self._clock()
        await self.store.end(subscriber_id, now)
        log.info("status page: subscriber %s unsubscribed", subscriber_id)
        return replace(subscriber, state=UNSUBSCRIBED, ended_at=now)

    # -- telling ---------------------------------------------------------------------------
    async def deliver(self, view: PageView) -> int:
        """Tell every active subscriber each update of ``view`` it has not had: of an
        incident of its components, made since it was confirmed and within ``horizon``,
        oldest first.  At most ``max_sends`` deliveries, ``concurrency`` subscribers at a
        time; returns how many were delivered."""
        async with self._round:
            now = self._clock()
            news = [
                (incident, update)
                for incident in view.incidents
                for update in incident.updates
                if update.at >= now - self.config.horizon
            ]
            news.sort(key=lambda pair: (pair[1].at, pair[1].id))
            current = {update.id for _, update in news}
            self._told = {k: v for k, v in self._told.items() if k in current}
            if not news:
                return 0
            subscribers = await self.store.active()
            self._ended &= {subscriber.id for subscriber in subscribers}  # the rest are gone
            if not subscribers:
                return 0
            missing = current - self._told.keys()
            if missing:
                self._told.update(await self.store.told(missing))
            work = list(self._due(subscribers, news))
            gate = asyncio.Semaphore(self.config.concurrency)

            async def tell(subscriber: Subscriber, due: list[tuple[PublicIncident, Update]]) -> int:
                async with gate:
                    return await self._tell_all(view, subscriber, due)

            return sum(await asyncio.gather(*(tell(s, due) for s, due in work)))

    def _due(
        self, subscribers: Iterable[Subscriber], news: list[tuple[PublicIncident, Update]]
    ) -> Iterable[tuple[Subscriber, list[tuple[PublicIncident, Update]]]]:
        budget = self.config.max_sends
        for subscriber in subscribers:
            if budget <= 0:
                return
            since = subscriber.confirmed_at
            if since is None or subscriber.id in self._ended:
                continue
            due = [
                (incident, update)
                for incident, update in news
                if update.at >= since
                and subscriber.wants(incident.components)
                and subscriber.id not in self._told.get(update.id, ())
            ][:budget]
            if due:
                budget -= len(due)
                yield subscriber, due

    async def _tell_all(
        self, view: PageView, subscriber: Subscriber, due: list[tuple[PublicIncident, Update]]
    ) -> int:
        delivered = 0
        try:
            for incident, update in due:
                if subscriber.id in self._ended:
                    break
                delivered += await self._tell(view, subscriber, incident, update)
        except Exception:  # one subscriber's trouble (the database away) stops only it
            log.exception("status page: telling subscriber %s failed", subscriber.id)
        return delivered

    async def _tell(
        self, view: PageView, subscriber: Subscriber, incident: PublicIncident, update: Update
    ) -> bool:
        claim = DeliveryRecord(
            subscriber.id, update.id, incident.id, self._clock(), "failed", 0, INTERRUPTED
        )
        claimed = await self.store.record(claim)
        self._told.setdefault(update.id, set()).add(subscriber.id)
        if not claimed:
            return False  # another process (or a previous run) has it
        if subscriber.kind == "webhook":
            sent = await self._post(view, subscriber, incident, update)
        else:
            sent = await self._mail_update(view, subscriber, incident, update)
        await self.store.settle(
            replace(
                claim,
                at=sent.at,
                outcome="delivered" if sent.ok else "failed",
                attempts=sent.attempts,
                detail=sent.error,
            )
        )
        if not sent.ok:
            log.warning(
                "status page: update %s not delivered to subscriber %s: %s",
                update.id,
                subscriber.id,
                sent.error,
            )
        if sent.status == 410:  # Gone: the receiver asks to be forgotten
            self._ended.add(subscriber.id)
            await self.store.end(subscriber.id, self._clock())
            log.info("status page: subscriber %s answered 410 Gone: unsubscribed", subscriber.id)
        return sent.ok

    async def _post(
        self, view: PageView, subscriber: Subscriber, incident: PublicIncident, update: Update
    ) -> Delivery:
        url = subscriber.address
        channel = f"subscriber {subscriber.id}"
        refusal = self.webhooks.refusal(url)  # judged again: the plan may have changed
        if refusal is not None:
            return Delivery(channel, False, 0, None, f"refused: {refusal}", self._clock())
        unsubscribe = self.unsubscribe_url(subscriber.id)
        body = orjson.dumps(webhook_body(view, incident, update, unsubscribe, self._clock()))
        secret = subscriber.secret or ""
        identity = delivery_id(subscriber.id, update.id)

        def headers() -> Mapping[str, str]:
            timestamp = int(self._clock())
            return {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Standby-Event": UPDATE_EVENT,
                "X-Standby-Delivery": identity,
                "X-Standby-Timestamp": str(timestamp),
                "X-Standby-Signature": sign(secret, timestamp, body),
            }

        redact = Redactor([secret, *url_secrets(url)])
        return await Poster(channel, url, self._wiring, redact).post(body, headers)

    async def _mail_update(
        self, view: PageView, subscriber: Subscriber, incident: PublicIncident, update: Update
    ) -> Delivery:
        unsubscribe = self.unsubscribe_url(subscriber.id)
        link = f"{self.config.base_url.rstrip('/')}/status#incident-{incident.id}"
        subject, text = update_mail(view, incident, update, link, unsubscribe)
        # RFC 2369 and RFC 8058: mail programs show an unsubscribe button that POSTs
        headers = {
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        return await self._mailer.send(subscriber.address, subject, text, headers)

    async def run(
        self,
        source: PageSource,
        interval: float,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        """``deliver(await source())`` every ``interval`` seconds until cancelled, while
        ``leading()`` (one replica tells the subscribers); a failed round is logged, and
        the next one tries again."""
        while True:
            try:
                if leading():
                    await self.deliver(await source())
            except Exception:
                log.exception("status page: a round of subscription deliveries failed")
            await self.runtime.sleep(interval)

    async def aclose(self) -> None:
        """Close the webhooks' connections."""
        await self.webhooks.aclose()
