"""Who is calling: the client key a request presents, and what that client may see.

Every request on a wire presents a client key (``Authorization: Bearer …`` or
``x-api-key``); the plan keeps only their SHA-256 hashes, each under a name
(``server.client_keys: {alice: "sha256:…"}``).  ``ClientKeys.identify`` turns a request
into a ``Caller``: the name goes into the journal with the request, and every read of
stored data (stored completions, ``previous_response_id``, deferred results) is limited
to the rows of that name.  The admin token, where an endpoint accepts it, sees all.

With no client keys in the plan the gateway is open (it refuses a public bind then), and
there is one tenant: everyone sees everything.

The key is looked up by its hash in a dict: the lookup's timing can tell nothing useful
about a key, because an attacker controls the key, not its hash.  The admin token is
compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from standby.errors import Unauthorized
from standby.plan.model import ClientKey, StorePolicy
from standby.plan.scale import Priority
from standby.web.asgi import Scope, header

CLIENT_SCOPE_KEY = "standby.client"  # where the caller's name is left for the access log


@dataclass(frozen=True, slots=True)
class Caller:
    """The client behind one request."""

    name: str | None  # the client key's name; None on an open gateway or for the admin
    admin: bool = False
    store: StorePolicy | None = None  # the plan's store policy for this client, if any
    priority: Priority = "normal"  # who keeps a short target's capacity (``capacity``)

    @property
    def owner(self) -> str | None:
        """Whose rows this caller may read: ``None`` is everyone's (admin, open gateway)."""
        return None if self.admin else self.name


OPEN = Caller(None)
ADMIN = Caller(None, admin=True)


class ClientKeys:
    """The plan's client keys (and admin token): a request's key → its ``Caller``."""

    def __init__(self, keys: Mapping[str, ClientKey], admin_token: str = "") -> None:
        self._by_digest = {
            entry.key.removeprefix("sha256:"): Caller(
                name, store=entry.store, priority=entry.priority
            )
            for name, entry in keys.items()
        }
        self._admin = admin_token.encode()

    @property
    def required(self) -> bool:
        return bool(self._by_digest)

    def identify(self, scope: Scope, *, admin: bool = False) -> Caller:
        """The caller of ``scope``, or ``Unauthorized``; ``admin``: the token is accepted."""
        if not self._by_digest:
            return OPEN
        key = presented_key(scope)
        if key is None:
            raise Unauthorized(
                "You didn't provide an API key. Provide it in the Authorization "
                "header as 'Bearer YOUR_KEY'."
            )
        caller = self._by_digest.get(hashlib.sha256(key).hexdigest())
        if caller is None:
            if admin and self._admin and hmac.compare_digest(key, self._admin):
                return ADMIN
            raise Unauthorized("Incorrect API key provided.")
        scope[CLIENT_SCOPE_KEY] = caller.name
        return caller


def presented_key(scope: Scope) -> bytes | None:
    """The key a request presents: a bearer token, else ``x-api-key`` (Anthropic's SDK)."""
    auth = header(scope, b"authorization")
    if auth and auth[:7].lower() == b"bearer ":
        return auth[7:].strip()
    return header(scope, b"x-api-key")


def hash_key(key: str) -> str:
    """The form a client key takes in a plan: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def stored(
    caller: Caller,
    route: StorePolicy | None,
    journal: StorePolicy,
    asked: object,
    *,
    default: bool,
) -> bool:
    """Whether an answer is served back later (stored completions, ``previous_response_id``).

    The client's policy wins over the route's, which wins over the journal's.
    ``on_request`` follows OpenAI: ``asked`` is the request's ``store`` field, and
    ``default`` is the endpoint's own default when it is absent (chat completions: not
    stored; Responses: stored).
    """
    policy = caller.store or route or journal
    if policy == "always":
        return True
    if policy == "never":
        return False
    return asked is True or (asked is None and default)
