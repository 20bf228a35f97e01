"""The subscription endpoints served by a real uvicorn on loopback, driven with httpx: JSON
for machines (errors in OpenAI's shape), small escaped HTML pages for people, bounded
bodies, 429s with Retry-After, the email double opt-in through a loopback SMTP server, and
RFC 8058 one-click unsubscribing."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from standby.statuspage.subscribe import MAX_BODY, routes
from standby.statuspage.subscriptions import SubscriptionService
from tests.statuspage.subscription_doubles import (
    Clock,
    Hook,
    Mailbox,
    Page,
    hook,
    journal,
    link_in,
    mailbox,
    plan,
    service,
    text_of,
)


@dataclass
class Site:
    root: str
    client: httpx.AsyncClient
    service: SubscriptionService
    page: Page
    receiver: Hook
    box: Mailbox


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path,
    *,
    email: bool = True,
    components: dict[str, Any] | None = None,
    **subscriptions: Any,
) -> AsyncIterator[Site]:
    """The routes on a real uvicorn; the plan's page address is the server's own."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections wait in the backlog until uvicorn accepts: no race
    root = f"http://127.0.0.1:{sock.getsockname()[1]}"
    engine = await journal(tmp_path)
    clock = Clock()
    async with mailbox() as box, hook() as receiver:
        mail = box.url() if email else ""
        chosen = plan(subscriptions, email_url=mail, url=root, components=components)
        page = Page(engine, chosen, clock)
        subs = service(engine, page, clock=clock)
        config = uvicorn.Config(Starlette(routes=routes(subs)), log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            async with httpx.AsyncClient(base_url=root, timeout=10) as client:
                yield Site(root, client, subs, page, receiver, box)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            await subs.aclose()
            sock.close()
            await engine.dispose()


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_a_webhook_subscribes_in_json_and_sees_its_secret_once(tmp_path: Path) -> None:
    async with serving(tmp_path) as site:
        answer = await site.client.post(
            "/status/subscribe",
            json={"kind": "webhook", "url": site.receiver.url, "components": ["Search"]},
        )
        assert answer.status_code == 201, answer.text
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["referrer-policy"] == "no-referrer"
        body = answer.json()
        assert body["state"] == "active" and body["components"] == ["Search"]
        assert body["secret"].startswith("whsec_")
        assert body["unsubscribe_url"].startswith(f"{site.root}/status/subscriptions/")
        [challenge] = site.receiver.challenges
        assert challenge.json["subscriber"] == body["id"]
        stored = await site.service.store.get(body["id"])
        assert stored is not None and stored.token_hash not in body["unsubscribe_url"]

        left = await site.client.post(
            path_of(body["unsubscribe_url"]), headers={"accept": "application/json"}
        )
        assert left.status_code == 200 and left.json() == {
            "id": body["id"],
            "state": "unsubscribed",
        }


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"kind": "webhook", "url": "{hook}", "components": ["Mail"]}, 400, "components", None),
        ({"kind": "webhook", "url": "{hook}", "components": "Search"}, 400, "components", None),
        ({"kind": "webhook", "url": "http://10.0.0.1/x"}, 400, "url", None),
        ({"kind": "webhook", "url": "file:///etc/passwd"}, 400, "url", None),
        ({"kind": "webhook", "url": 42}, 400, "url", None),
        ({"kind": "pigeon", "url": "{hook}"}, 400, "kind", None),
        ({"components": []}, 400, "kind", None),
        ({"kind": "email", "address": "a@example.org"}, 400, "kind", None),  # not offered
        (b"[1, 2]", 400, None, None),
        (b"{not json", 400, None, None),
        (b"{" + b" " * MAX_BODY + b"}", 413, None, "request_too_large"),
    ],
)
async def test_json_errors_are_in_openai_s_shape(
    tmp_path: Path, body: Any, status: int, param: str | None, code: str | None
) -> None:
    async with serving(tmp_path, email=False, allow_private_webhooks=False, per_minute=100) as site:
        if isinstance(body, dict):
            if body.get("url") == "{hook}":
                body["url"] = site.receiver.url
            answer = await site.client.post("/status/subscribe", json=body)
        else:
            answer = await site.client.post(
                "/status/subscribe", content=body, headers={"content-type": "application/json"}
            )
        assert answer.status_code == status, answer.text
        error = error_of(answer)
        assert (error["param"], error["type"]) == (param, "invalid_request_error")
        if code is not None:
            assert error["code"] == code
        assert site.receiver.challenges == []


async def test_a_body_too_large_is_refused_before_it_is_all_read(tmp_path: Path) -> None:
    async with serving(tmp_path) as site:

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length to refuse it by
            for _ in range(3 * MAX_BODY // 1024):
                yield b"x" * 1024

        answer = await site.client.post(
            "/status/subscribe", content=chunked(), headers={"content-type": "application/json"}
        )
        assert answer.status_code == 413
        assert error_of(answer)["code"] == "request_too_large"


async def test_too_many_requests_get_a_429_with_retry_after(tmp_path: Path) -> None:
    async with serving(tmp_path, per_minute=1) as site:
        first = await site.client.post("/status/subscribe", json={"url": site.receiver.url})
        assert first.status_code == 201
        again = await site.client.post("/status/subscribe", json={"url": site.receiver.url})
        assert again.status_code == 429 and again.headers["retry-after"] == "60"
        assert error_of(again)["code"] == "rate_limit_exceeded"
        form = await site.client.post("/status/subscribe", data={"url": site.receiver.url})
        assert form.status_code == 429 and form.headers["retry-after"] == "60"
        assert form.headers["content-type"].startswith("text/html")
        assert "Too many requests" in form.text


async def test_email_by_form_is_confirmed_by_its_link_and_left_by_its_button(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as site:
        form = await site.client.get("/status/subscribe")
        assert form.status_code == 200 and "By email" in form.text and "By webhook" in form.text
        assert 'value="Search"' in form.text
        assert "form-action 'self'" in form.headers["content-security-policy"]

        done = await site.client.post(
            "/status/subscribe",
            data={"kind": "email", "address": "ann@example.org", "components": ["Search"]},
        )
        assert done.status_code == 200 and "Check your inbox" in done.text
        await site.box.wait_for(1)
        [(recipients, mail)] = site.box.messages
        assert recipients == ["ann@example.org"]
        confirm = link_in(text_of(mail), "confirm")
        assert confirm.startswith(f"{site.root}/status/subscriptions/")

        wrong = await site.client.get(path_of(confirm).replace("token=", "token=x"))
        assert wrong.status_code == 404 and "No subscription has this id and token." in wrong.text
        confirmed = await site.client.get(path_of(confirm))
        assert confirmed.status_code == 200 and "Subscription confirmed" in confirmed.text
        subscriber_id = urlsplit(confirm).path.split("/")[-2]
        stored = await site.service.store.get(subscriber_id)
        assert stored is not None and stored.state == "active"

        unsubscribe = path_of(confirm).replace("/confirm?", "/unsubscribe?")
        asking = await site.client.get(unsubscribe)
        assert asking.status_code == 200 and "ann@example.org" in asking.text
        assert '<button type="submit">Unsubscribe</button>' in asking.text
        stored = await site.service.store.get(subscriber_id)
        assert stored is not None and stored.state == "active"  # a GET changes nothing
        token = dict(httpx.QueryParams(urlsplit(confirm).query))["token"]
        left = await site.client.post(
            f"/status/subscriptions/{subscriber_id}/unsubscribe", data={"token": token}
        )
        assert left.status_code == 200 and "Unsubscribed" in left.text
        stored = await site.service.store.get(subscriber_id)
        assert stored is not None and stored.state == "unsubscribed"


@pytest.mark.parametrize("multipart", [False, True])
async def test_one_click_unsubscribe_from_a_mail_program(tmp_path: Path, multipart: bool) -> None:
    async with serving(tmp_path) as site:
        body = (await site.client.post("/status/subscribe", json={"url": site.receiver.url})).json()
        one_click = {"List-Unsubscribe": "One-Click"}
        if multipart:  # RFC 8058's SHOULD; the token is in the URL either way
            left = await site.client.post(
                path_of(body["unsubscribe_url"]), files={"List-Unsubscribe": (None, "One-Click")}
            )
        else:
            left = await site.client.post(path_of(body["unsubscribe_url"]), data=one_click)
        assert left.status_code == 200, left.text
        stored = await site.service.store.get(body["id"])
        assert stored is not None and stored.state == "unsubscribed"


async def test_a_webhook_by_form_shows_its_secret_and_every_page_is_escaped(
    tmp_path: Path,
) -> None:
    weird = "<script>alert(1)</script>"
    async with serving(tmp_path, components={weird: {"routes": ["chat"]}}) as site:
        form = await site.client.get("/status/subscribe")
        assert weird not in form.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in form.text

        bad = await site.client.post(
            "/status/subscribe", data={"url": site.receiver.url, "components": "<b>x</b>"}
        )
        assert bad.status_code == 400 and "<b>x</b>" not in bad.text
        assert "&lt;b&gt;x&lt;/b&gt;" in bad.text

        done = await site.client.post(
            "/status/subscribe", data={"url": site.receiver.url, "components": weird}
        )
        assert done.status_code == 200 and "The webhook is subscribed." in done.text
        assert "whsec_" in done.text and "/unsubscribe?token=" in done.text
        assert weird not in done.text
