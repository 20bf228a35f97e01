"""Subscriptions to the public status page: the store on SQLite and PostgreSQL, and the
service against real receivers on loopback (a webhook server, an SMTP server through
Apprise), with incidents opened by the real incident manager and an injected clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from standby.errors import InvalidRequest
from standby.journal.migrate import migrate
from standby.journal.schema import subscribers, subscription_deliveries
from standby.journal.sql import open_engine
from standby.journal.subscription_store import DeliveryRecord, Subscriber, SubscriptionStore
from standby.notify.webhook import verify
from standby.statuspage.mailer import mail_url
from standby.statuspage.ratelimit import TokenBucket, client_key
from standby.statuspage.subscriptions import (
    Full,
    NotFound,
    RateLimited,
    Receipt,
    SubscriptionConfig,
    SubscriptionService,
)
from tests.deferred.doubles import Resolver  # DNS as scripted
from tests.journal.conftest import pg_database  # noqa: F401  (the PostgreSQL fixture)
from tests.statuspage.subscription_doubles import (
    KEY,
    T0,
    Clock,
    Page,
    Pauses,
    Received,
    echo_json,
    hook,
    journal,
    link_in,
    mailbox,
    plan,
    service,
    text_of,
)
from tests.watch.official.payloads import FIXTURES

CLIENT = "203.0.113.7"


# -- the store ---------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    url: str = request.getfixturevalue("pg_database")  # skips when there is no server
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SubscriptionStore]:
    engine = open_engine(database_url)
    await migrate(engine)
    async with engine.begin() as conn:  # the PostgreSQL database is per module
        await conn.execute(sa.delete(subscription_deliveries))
        await conn.execute(sa.delete(subscribers))
    yield SubscriptionStore(engine)
    await engine.dispose()


def subscriber(subscriber_id: str, at: float, **values: object) -> Subscriber:
    fields: dict[str, object] = {
        "id": subscriber_id,
        "kind": "webhook",
        "address": "https://hooks.example/x",
        "token_hash": "ab" * 32,
        "state": "pending",
        "created_at": at,
        **values,
    }
    return Subscriber(**fields)  # type: ignore[arg-type]


async def test_a_subscriber_goes_pending_active_unsubscribed_and_never_back(
    store: SubscriptionStore,
) -> None:
    await store.add(subscriber("s1", T0, components=("Search",), secret="whsec_x"))
    await store.add(subscriber("s2", T0 - 100, kind="email", address="a@b.example"))
    assert await store.count(pending_since=T0 - 10) == 1  # s2's link has expired
    assert await store.confirm("s2", T0, created_after=T0 - 10) is False
    assert await store.confirm("s1", T0 + 1) is True
    assert await store.confirm("s1", T0 + 2) is False  # once
    [active] = await store.active()
    assert (active.id, active.state, active.confirmed_at) == ("s1", "active", T0 + 1)
    assert active.components == ("Search",) and active.secret == "whsec_x"
    assert "whsec_x" not in repr(active) and "hooks.example" not in repr(active)
    assert [s.id for s in await store.find("email", "a@b.example")] == ["s2"]
    assert await store.end("s1", T0 + 3) is True
    assert await store.end("s1", T0 + 4) is False
    assert await store.confirm("s1", T0 + 5) is False  # an ended one stays ended
    ended = await store.get("s1")
    assert ended is not None and (ended.state, ended.ended_at) == ("unsubscribed", T0 + 3)
    assert await store.active() == [] and await store.get("nobody") is None


async def test_a_delivery_is_recorded_once_per_subscriber_and_update(
    store: SubscriptionStore,
) -> None:
    first = DeliveryRecord("s1", "u1", "i1", T0, "failed", 0, "interrupted")
    assert await store.record(first) is True
    assert await store.record(first) is False  # a no-op, whoever tries
    assert await store.record(DeliveryRecord("s2", "u1", "i1", T0, "delivered", 1)) is True
    await store.settle(DeliveryRecord("s1", "u1", "i1", T0 + 1, "delivered", 2))
    [settled] = await store.deliveries("s1")
    assert (settled.outcome, settled.attempts, settled.detail, settled.at) == (
        "delivered",
        2,
        None,
        T0 + 1,
    )
    assert await store.updates_told("s1") == {"u1"}
    assert await store.told(["u1", "u2"]) == {"u1": {"s1", "s2"}, "u2": set()}


# -- the service -------------------------------------------------------------------------------
@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await journal(tmp_path)
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def signed(received: Received, secret: str, clock: Clock) -> bool:
    headers = received.headers
    return verify(
        secret,
        headers["X-Standby-Timestamp"],
        received.body,
        headers["X-Standby-Signature"],
        now=clock(),
    )


REAL = orjson.loads((FIXTURES / "statuspage_webhook_incident_update.json").read_bytes())


def assert_statuspage_shaped(body: dict[str, Any]) -> None:
    """The fields of a real Statuspage incident webhook, where a consumer looks."""
    assert set(body) == set(REAL) == {"meta", "page", "incident"}
    assert set(body["meta"]) == set(REAL["meta"]) and set(body["page"]) == set(REAL["page"])
    incident = {"id", "name", "status", "impact", "created_at", "updated_at", "resolved_at"}
    incident |= {"monitoring_at", "shortlink", "page_id", "incident_updates", "components"}
    assert incident <= set(body["incident"]) & set(REAL["incident"])
    update = {"id", "incident_id", "status", "body", "created_at", "updated_at", "display_at"}
    update |= {"affected_components", "deliver_notifications", "custom_tweet"}
    ours, real = body["incident"]["incident_updates"][0], REAL["incident"]["incident_updates"][0]
    assert update <= set(ours) & set(real)
    assert set(ours["affected_components"][0]) == set(real["affected_components"][0])


async def test_a_webhook_answers_the_challenge_then_hears_each_update_once_signed(
    engine: AsyncEngine, clock: Clock
) -> None:
    page = Page(engine, plan(), clock)
    async with hook() as receiver:
        subs = service(engine, page, clock=clock)
        receipt = await subs.subscribe("webhook", receiver.url, None, CLIENT)
        assert receipt.state == "active" and receipt.id and receipt.secret
        assert receipt.unsubscribe_url == subs.unsubscribe_url(receipt.id)
        assert receipt.unsubscribe_url.startswith("https://status.acme.example/status/")
        [challenge] = receiver.challenges
        assert challenge.json["subscriber"] == receipt.id
        assert challenge.headers["X-Standby-Event"] == "subscription.challenge"

        clock.now += 10
        incident = await page.manager.open("Chat assistant", "Answers fail", message="Broken.")
        assert await subs.deliver(await page.view()) == 1
        clock.now += 10
        await page.manager.update(incident.id, "Fixed, watching.", status="monitoring")
        view = await page.view()
        assert await subs.deliver(view) == 1
        assert await subs.deliver(view) == 0  # told already

        first, second = receiver.deliveries
        for delivery in (first, second):
            assert signed(delivery, receipt.secret, clock)
            assert delivery.headers["X-Standby-Event"] == "incident.update"
        assert first.headers["X-Standby-Delivery"] != second.headers["X-Standby-Delivery"]
        assert not signed(first, "whsec_someone_else", clock)
        body = second.json
        assert_statuspage_shaped(body)
        assert body["meta"]["unsubscribe"] == receipt.unsubscribe_url
        assert body["page"]["status_indicator"] == "critical"
        told = body["incident"]["incident_updates"]
        assert [u["status"] for u in told] == ["monitoring", "investigating"]  # newest first
        assert told[0]["body"] == "Fixed, watching."
        assert first.json["incident"]["incident_updates"][0]["body"] == "Broken."
        assert body["incident"]["components"][0]["name"] == "Chat assistant"
        await subs.aclose()

        # a restart: a new service over the same database tells nothing twice
        again = service(engine, page, clock=clock)
        assert await again.deliver(view) == 0
        assert len(receiver.deliveries) == 2

        # after unsubscribing, nothing more
        token = dict(parse_qsl(urlsplit(receipt.unsubscribe_url).query))["token"]
        left = await again.unsubscribe(receipt.id, token, CLIENT)
        assert left.state == "unsubscribed"
        clock.now += 10
        await page.manager.resolve(incident.id, "All good.")
        assert await again.deliver(await page.view()) == 0
        assert len(receiver.deliveries) == 2
        records = await again.store.deliveries(receipt.id)
        assert [(r.outcome, r.attempts) for r in records] == [("delivered", 1)] * 2
        await again.aclose()


@pytest.mark.parametrize(
    "answer",
    [
        lambda r: web.Response(text=r.json.get("challenge", "")),  # the bare value
        lambda r: web.json_response(r.json.get("challenge", "")),  # a JSON string
    ],
    ids=["bare", "json-string"],
)
async def test_a_challenge_may_be_echoed_bare(
    engine: AsyncEngine, clock: Clock, answer: object
) -> None:
    page = Page(engine, plan(), clock)
    async with hook(answer) as receiver:  # type: ignore[arg-type]
        subs = service(engine, page, clock=clock)
        assert (await subs.subscribe("webhook", receiver.url, None, CLIENT)).state == "active"
        await subs.aclose()


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (lambda r: web.json_response({"challenge": "guessed"}), "did not echo"),
        (lambda r: web.Response(status=404), "HTTP 404"),
        (lambda r: web.Response(status=302, headers={"Location": "/ok"}), "HTTP 302"),
        (lambda r: web.Response(text=r.json["challenge"] + " " * 5000), "longer than 4096"),
    ],
    ids=["wrong", "404", "redirect", "too-long"],
)
async def test_a_webhook_that_does_not_echo_the_challenge_stays_inactive(
    engine: AsyncEngine, clock: Clock, answer: object, why: str
) -> None:
    page = Page(engine, plan(), clock)
    async with hook(answer) as receiver:  # type: ignore[arg-type]
        subs = service(engine, page, clock=clock)
        with pytest.raises(InvalidRequest, match=why) as refused:
            await subs.subscribe("webhook", receiver.url, None, CLIENT)
        assert refused.value.code == "challenge_failed" and refused.value.param == "url"
        assert await subs.store.active() == []
        assert await subs.store.count(pending_since=0) == 0  # takes no place either
        await page.manager.open("Chat assistant", "Answers fail")
        assert await subs.deliver(await page.view()) == 0
        assert receiver.deliveries == []
        await subs.aclose()


@pytest.mark.parametrize(
    ("url", "answers", "why"),
    [
        ("http://127.0.0.1:{port}/hook", (), "loopback"),
        ("http://[::1]:{port}/hook", (), "loopback"),
        ("http://10.1.2.3/hook", (), "private"),
        ("http://169.254.169.254/latest/meta-data", (), "link-local"),
        ("http://224.0.0.1/hook", (), "multicast"),
        ("http://localhost:{port}/hook", (), "loopback name"),
        ("http://hooks.test:{port}/hook", ("10.0.0.5",), "resolves to 10.0.0.5"),
        ("http://hooks.test:{port}/hook", ("93.184.215.14", "127.0.0.1"), "resolves to 127"),
        ("ftp://hooks.example/hook", (), "http:// or https://"),
        ("http:///nohost", (), "http:// or https://"),
    ],
)
async def test_private_addresses_are_refused_unless_the_plan_allows_them(
    engine: AsyncEngine, clock: Clock, url: str, answers: tuple[str, ...], why: str
) -> None:
    page = Page(engine, plan({"allow_private_webhooks": False}), clock)
    async with hook() as receiver:
        port = urlsplit(receiver.url).port
        # the last case resolves to a public address when checked, then to loopback when
        # connecting (DNS rebinding): the connection's own lookup refuses it
        resolver = Resolver(*(answers or ("93.184.215.14",)))
        subs = service(engine, page, clock=clock, resolver=resolver)
        with pytest.raises(InvalidRequest, match=why) as refused:
            await subs.subscribe("webhook", url.format(port=port), None, CLIENT)
        assert refused.value.param == "url"
        assert receiver.received == []  # nothing reached the inside
        await subs.aclose()


async def test_components_are_checked_and_filter_what_is_told(
    engine: AsyncEngine, clock: Clock
) -> None:
    page = Page(engine, plan(), clock)
    async with hook() as chat, hook() as search, hook() as everything:
        subs = service(engine, page, clock=clock)
        with pytest.raises(InvalidRequest, match=r"Unknown component.*'Mail'.*Search") as bad:
            await subs.subscribe("webhook", chat.url, ["Search", "Mail"], CLIENT)
        assert bad.value.param == "components"
        await subs.subscribe("webhook", chat.url, ["Chat assistant"], CLIENT)
        await subs.subscribe("webhook", search.url, ["Search"], CLIENT)
        await subs.subscribe("webhook", everything.url, [], CLIENT)
        clock.now += 1
        await page.manager.open("Chat assistant", "Answers fail")
        assert await subs.deliver(await page.view()) == 2
        assert (len(chat.deliveries), len(search.deliveries), len(everything.deliveries)) == (
            1,
            0,
            1,
        )
        await subs.aclose()


async def test_updates_from_before_the_confirmation_are_not_told(
    engine: AsyncEngine, clock: Clock
) -> None:
    page = Page(engine, plan(), clock)
    incident = await page.manager.open("Chat assistant", "Answers fail")
    clock.now += 5
    async with hook() as receiver:
        subs = service(engine, page, clock=clock)
        await subs.subscribe("webhook", receiver.url, None, CLIENT)
        assert await subs.deliver(await page.view()) == 0
        clock.now += 5
        await page.manager.update(incident.id, "Still on it.")
        assert await subs.deliver(await page.view()) == 1
        assert receiver.deliveries[0].json["incident"]["incident_updates"][0]["body"] == (
            "Still on it."
        )
        await subs.aclose()


async def test_deliveries_are_retried_and_a_410_unsubscribes(
    engine: AsyncEngine, clock: Clock
) -> None:
    page = Page(engine, plan(), clock)
    answers = [web.Response(status=503), web.Response(status=200), web.Response(status=410)]

    def scripted(request: Received) -> web.Response:
        if request.json.get("type") == "subscription.challenge":
            return echo_json(request)
        return answers.pop(0)

    pauses = Pauses()
    async with hook(scripted) as receiver:
        subs = service(engine, page, clock=clock, sleep=pauses)
        receipt = await subs.subscribe("webhook", receiver.url, None, CLIENT)
        assert receipt.id is not None
        clock.now += 1
        incident = await page.manager.open("Chat assistant", "Answers fail")
        assert await subs.deliver(await page.view()) == 1
        first, retry = receiver.deliveries
        assert first.headers["X-Standby-Delivery"] == retry.headers["X-Standby-Delivery"]
        assert len(pauses.asked) == 1  # one backoff, through the injected sleep
        clock.now += 1
        await page.manager.update(incident.id, "More.")
        assert await subs.deliver(await page.view()) == 0  # 410: gone
        stored = await subs.store.get(receipt.id)
        assert stored is not None and stored.state == "unsubscribed"
        records = await subs.store.deliveries(receipt.id)
        assert [(r.outcome, r.attempts) for r in records] == [("delivered", 2), ("failed", 1)]
        assert records[1].detail is not None and "410" in records[1].detail
        clock.now += 1
        await page.manager.update(incident.id, "Even more.")
        assert await subs.deliver(await page.view()) == 0
        assert len(receiver.deliveries) == 3
        await subs.aclose()


async def test_the_work_of_one_call_is_bounded(engine: AsyncEngine, clock: Clock) -> None:
    page = Page(engine, plan(), clock)
    async with hook() as receiver:
        subs = service(engine, page, clock=clock, concurrency=2, max_sends=3)
        for n in range(5):
            await subs.subscribe("webhook", receiver.url, None, f"198.51.100.{n}")
        clock.now += 1
        await page.manager.open("Chat assistant", "Answers fail")
        view = await page.view()
        receiver.gate = asyncio.Event()
        round_one = asyncio.create_task(subs.deliver(view))
        await receiver.wait_for(lambda r: r.in_flight == 2)
        receiver.gate.set()
        assert await round_one == 3  # max_sends
        assert receiver.most_in_flight == 2  # concurrency
        assert await subs.deliver(view) == 2  # the rest in the next call
        assert await subs.deliver(view) == 0
        await subs.aclose()


async def test_subscribing_is_rate_limited_per_client_and_capped_in_total(
    engine: AsyncEngine, clock: Clock
) -> None:
    page = Page(engine, plan({"per_minute": 2, "max_subscribers": 3}), clock)
    async with hook() as receiver:
        subs = service(engine, page, clock=clock)
        await subs.subscribe("webhook", receiver.url, None, "2001:db8:1:2::1")
        await subs.subscribe("webhook", receiver.url, None, "2001:db8:1:2::99")  # same /64
        with pytest.raises(RateLimited) as limited:
            await subs.subscribe("webhook", receiver.url, None, "2001:db8:1:2::abc")
        assert limited.value.status == 429 and limited.value.retry_after == pytest.approx(30)
        await subs.subscribe("webhook", receiver.url, None, "2001:db8:1:3::1")  # another site
        clock.now += 30
        with pytest.raises(Full):
            await subs.subscribe("webhook", receiver.url, None, "2001:db8:1:2::1")
        await subs.aclose()


async def test_a_wrong_token_is_a_404_and_too_many_are_limited(
    engine: AsyncEngine, clock: Clock
) -> None:
    page = Page(engine, plan({"per_minute": 3}), clock)
    async with hook() as receiver:
        subs = service(engine, page, clock=clock)
        receipt = await subs.subscribe("webhook", receiver.url, None, "198.51.100.1")
        assert receipt.id is not None
        for _ in range(3):
            with pytest.raises(NotFound):
                await subs.unsubscribe(receipt.id, "guess", CLIENT)
        with pytest.raises(RateLimited):
            await subs.unsubscribe(receipt.id, subs.token(receipt.id), CLIENT)
        # right tokens cost nothing: a mail provider's one-click comes from few addresses
        for _ in range(5):
            await subs.unsubscribe(receipt.id, subs.token(receipt.id), "198.51.100.2")
        with pytest.raises(NotFound):
            await subs.confirm("sub_../../etc", "x", "198.51.100.3")
        await subs.aclose()


async def test_email_is_double_opt_in_through_apprise(engine: AsyncEngine, clock: Clock) -> None:
    async with mailbox() as box:
        page = Page(engine, plan(email_url=box.url(to="ops@acme.example")), clock)
        subs = service(engine, page, clock=clock)
        assert subs.kinds == ("webhook", "email")
        receipt = await subs.subscribe("email", " Ann@Example.ORG ", ["Search"], CLIENT)
        assert (receipt.state, receipt.id, receipt.secret) == ("pending", None, None)
        await box.wait_for(1)
        [(recipients, confirmation)] = box.messages
        assert recipients == ["Ann@example.org"]  # the visitor alone, never the channel's own
        assert "Confirm your subscription to Acme AI status" in confirmation["Subject"]
        confirm = link_in(text_of(confirmation), "confirm")
        subscriber_id = confirm.split("/")[-2]

        # asked again: the same answer, and no second mail
        again = await subs.subscribe("email", "Ann@example.org", None, "198.51.100.1")
        assert again == Receipt("email", "pending", None)

        clock.now += 1
        incident = await page.manager.open("Search", "Search is slow", severity="minor")
        assert await subs.deliver(await page.view()) == 0  # not confirmed yet
        clock.now += 1
        token = dict(parse_qsl(urlsplit(confirm).query))["token"]
        confirmed = await subs.confirm(subscriber_id, token, CLIENT)
        assert confirmed.state == "active"
        assert (await subs.confirm(subscriber_id, token, CLIENT)).state == "active"  # again
        clock.now += 1
        await page.manager.update(incident.id, "Indexes are being rebuilt.")
        assert await subs.deliver(await page.view()) == 1
        await box.wait_for(2)
        recipients, update = box.messages[1]
        assert recipients == ["Ann@example.org"] and len(box.messages) == 2
        text = text_of(update)
        assert "Indexes are being rebuilt." in text and "Search is slow" in update["Subject"]
        unsubscribe = link_in(text, "unsubscribe")
        assert update["List-Unsubscribe"] == f"<{unsubscribe}>"
        assert update["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        await subs.unsubscribe(subscriber_id, token, CLIENT)
        clock.now += 1
        await page.manager.resolve(incident.id)
        assert await subs.deliver(await page.view()) == 0
        await subs.aclose()


async def test_a_confirmation_link_expires(engine: AsyncEngine, clock: Clock) -> None:
    async with mailbox() as box:
        page = Page(engine, plan(email_url=box.url()), clock)
        subs = service(engine, page, clock=clock, confirm_within=3600.0)
        await subs.subscribe("email", "bob@example.org", None, CLIENT)
        await box.wait_for(1)
        confirm = link_in(text_of(box.messages[0][1]), "confirm")
        token = dict(parse_qsl(urlsplit(confirm).query))["token"]
        clock.now += 3601
        with pytest.raises(NotFound, match="expired"):
            await subs.confirm(confirm.split("/")[-2], token, CLIENT)
        # and the address may subscribe again: a new link
        await subs.subscribe("email", "bob@example.org", None, CLIENT)
        await box.wait_for(2)
        await subs.aclose()


@pytest.mark.parametrize(
    "address", ["nobody", "a@b", "a,b@example.org", "a@example.org,b@example.org", "a b@x.org"]
)
async def test_only_plain_mail_addresses_are_written_to(
    engine: AsyncEngine, clock: Clock, address: str
) -> None:
    page = Page(engine, plan(email_url="mailto://127.0.0.1:1?from=s@acme.example"), clock)
    subs = service(engine, page, clock=clock)
    with pytest.raises(InvalidRequest) as refused:
        await subs.subscribe("email", address, None, CLIENT)
    assert refused.value.param == "address"


async def test_email_is_not_offered_without_a_channel_or_the_page_s_address(
    engine: AsyncEngine, clock: Clock
) -> None:
    # (a plan naming a mail channel without the page's address is refused when it is
    # read: tests/plan/test_check.py)
    for chosen in (plan(),):
        subs = service(engine, Page(engine, chosen, clock), clock=clock)
        assert subs.kinds == ("webhook",)
        with pytest.raises(InvalidRequest, match="by webhook"):
            await subs.subscribe("email", "ann@example.org", None, CLIENT)


async def test_run_delivers_every_interval_and_survives_a_failed_round(
    engine: AsyncEngine, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    page = Page(engine, plan(), clock)
    rounds = asyncio.Queue[float]()

    class Ticks:
        async def __call__(self, seconds: float) -> None:
            await rounds.put(seconds)

    calls = 0

    async def source() -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database is away")
        return await page.view()

    async with hook() as receiver:
        subs = service(engine, page, clock=clock, sleep=Ticks())
        await subs.subscribe("webhook", receiver.url, None, CLIENT)
        clock.now += 1
        await page.manager.open("Chat assistant", "Answers fail")
        with caplog.at_level(logging.ERROR, "standby.statuspage"):
            task = asyncio.create_task(subs.run(source, 7.0))  # type: ignore[arg-type]
            assert await asyncio.wait_for(rounds.get(), 5) == 7.0  # the failed round
            assert await asyncio.wait_for(rounds.get(), 5) == 7.0  # the one that told
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert "a round of subscription deliveries failed" in caplog.text
        assert len(receiver.deliveries) == 1
        await subs.aclose()


# -- pure parts --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("steps", "waits"),
    [
        # (seconds since the last step, taken?) with 2 a minute: a burst of 2, then 1 per 30 s
        ([0, 0, 0], [0.0, 0.0, 30.0]),
        ([0, 0, 15], [0.0, 0.0, 15.0]),
        ([0, 0, 30, 0], [0.0, 0.0, 0.0, 30.0]),
        ([0, 600, 0, 0], [0.0, 0.0, 0.0, 30.0]),  # never more than the burst saved up
    ],
)
def test_the_token_bucket(steps: list[float], waits: list[float]) -> None:
    bucket = TokenBucket(2)
    now = 0.0
    got = []
    for step in steps:
        now += step
        got.append(bucket.take("a", now))
    assert got == pytest.approx(waits)
    assert bucket.wait("b", now) == 0.0  # keys are apart


def test_the_token_bucket_keeps_a_bounded_number_of_clients() -> None:
    bucket = TokenBucket(1, max_keys=3)
    for n in range(10):
        bucket.take(f"c{n}", 0.0)
    assert "keys=3" in repr(bucket)
    assert bucket.wait("c9", 0.0) == pytest.approx(60.0)  # the most recent are kept


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        (None, "?"),
    ],
)
def test_clients_are_told_apart_by_address_and_ipv6_by_site(host: str | None, key: str) -> None:
    assert client_key(host) == key


def test_the_mail_goes_to_the_visitor_alone() -> None:
    url = mail_url(
        "mailtos://user:pw@smtp.example/ops@acme.example?from=s@acme.example&To=x@y.z&cc=c@d.e",
        "ann+status@example.org",
        {"List-Unsubscribe": "<https://s.example/u?token=a&b>"},
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("mailtos", "user:pw@smtp.example", "")
    query = parse_qsl(parts.query)
    assert query == [
        ("from", "s@acme.example"),
        ("to", "ann+status@example.org"),
        (" List-Unsubscribe", "<https://s.example/u?token=a&b>"),  # "+" is apprise's header
    ]


def test_tokens_derive_from_the_key_and_only_their_hash_is_stored() -> None:
    config = SubscriptionConfig.from_plan(plan(), KEY)
    one = SubscriptionService(SubscriptionStore(None), config, None)  # type: ignore[arg-type]
    other = SubscriptionService(
        SubscriptionStore(None),  # type: ignore[arg-type]
        SubscriptionConfig.from_plan(plan(), "another key"),
        None,  # type: ignore[arg-type]
    )
    assert one.token("sub_1") == one.token("sub_1") != one.token("sub_2")
    assert one.token("sub_1") != other.token("sub_1")
    assert KEY not in repr(config)
    with pytest.raises(ValueError, match="key"):
        SubscriptionConfig.from_plan(plan(), "")
