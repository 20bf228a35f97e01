"""Who is calling, and whether an answer is stored: the pure parts of tenancy."""

from __future__ import annotations

from typing import Any

import pytest

from standby.errors import Unauthorized
from standby.plan.model import ClientKey, Plan, StorePolicy
from standby.web.clients import ADMIN, OPEN, Caller, ClientKeys, hash_key, stored

KEYS = {
    "alice": ClientKey(key=hash_key("sk-alice")),
    "bob": ClientKey(key=hash_key("sk-bob"), store="always"),
}


def scope(**headers: str) -> dict[str, Any]:
    return {"headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]}


@pytest.mark.parametrize(
    ("headers", "admin", "expected"),
    [
        ({"authorization": "Bearer sk-alice"}, False, Caller("alice")),
        ({"authorization": "bearer sk-alice"}, False, Caller("alice")),
        ({"x_api_key": "sk-alice"}, False, Caller("alice")),  # the anthropic SDK's header
        ({"authorization": "Bearer sk-bob"}, False, Caller("bob", store="always")),
        ({"authorization": "Bearer admin-secret"}, True, ADMIN),
        ({"authorization": "Bearer admin-secret"}, False, "Incorrect API key"),
        ({"authorization": "Bearer sk-carol"}, True, "Incorrect API key"),
        ({}, False, "didn't provide an API key"),
        ({"authorization": "Basic sk-alice"}, False, "didn't provide an API key"),
    ],
)
def test_identify(headers: dict[str, str], admin: bool, expected: Caller | str) -> None:
    keys = ClientKeys(KEYS, admin_token="admin-secret")
    request = scope(**headers)
    if isinstance(expected, str):
        with pytest.raises(Unauthorized, match=expected):
            keys.identify(request, admin=admin)
        return
    assert keys.identify(request, admin=admin) == expected
    if expected.name is not None:
        assert request["standby.client"] == expected.name  # for the access log


def test_an_open_gateway_has_one_tenant() -> None:
    keys = ClientKeys({})
    assert not keys.required
    assert keys.identify(scope()) == OPEN
    assert OPEN.owner is None and ADMIN.owner is None and Caller("alice").owner == "alice"


ON, ALWAYS, NEVER = "on_request", "always", "never"


@pytest.mark.parametrize(
    ("client", "route", "journal", "asked", "default", "expected"),
    [
        # OpenAI's chat completions: stored only when asked
        (None, None, ON, None, False, False),
        (None, None, ON, True, False, True),
        (None, None, ON, False, False, False),
        (None, None, ON, "yes", False, False),  # only a real true asks
        # OpenAI's Responses: stored unless told not to
        (None, None, ON, None, True, True),
        (None, None, ON, False, True, False),
        # the plan decides, the client's word first, then the route's, then the journal's
        (None, None, ALWAYS, False, False, True),
        (None, None, NEVER, True, True, False),
        (None, ALWAYS, NEVER, None, False, True),
        (None, NEVER, ALWAYS, True, False, False),
        (ALWAYS, NEVER, NEVER, False, False, True),
        (NEVER, ALWAYS, ALWAYS, True, True, False),
        (ON, ALWAYS, ALWAYS, None, False, False),
    ],
)
def test_store_policy(
    client: StorePolicy | None,
    route: StorePolicy | None,
    journal: StorePolicy,
    asked: object,
    default: bool,
    expected: bool,
) -> None:
    caller = Caller("alice", store=client)
    assert stored(caller, route, journal, asked, default=default) is expected


@pytest.mark.parametrize(
    ("written", "names"),
    [
        ({"alice": hash_key("a"), "bob": hash_key("b")}, ["alice", "bob"]),
        ([hash_key("a")], [f"key-{hash_key('a')[7:15]}"]),  # the list form: stable names
        ({"alice": {"key": hash_key("a"), "store": "always"}}, ["alice"]),
    ],
)
def test_client_keys_in_the_plan(written: Any, names: list[str]) -> None:
    plan = Plan.model_validate(
        {
            "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
            "routes": {"m": {"targets": ["p/m"]}},
            "server": {"client_keys": written},
        }
    )
    assert list(plan.server.client_keys) == names


@pytest.mark.parametrize(("old", "new"), [(True, "on_request"), (False, "never")])
def test_the_old_boolean_store_switch_still_reads(old: bool, new: str) -> None:
    plan = Plan.model_validate(
        {
            "providers": {"p": {"base_url": "http://127.0.0.1:9/v1"}},
            "routes": {"m": {"targets": ["p/m"]}},
            "journal": {"store": old},
        }
    )
    assert plan.journal.store == new
