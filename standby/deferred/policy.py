"""Pure decisions of deferred completion: who opted in, which rows to try now, how long
to wait after a failed try, how fast to start tries when providers recover, and where a
callback may go.

Nothing here does I/O or reads a clock: the time comes in as an argument, so every
decision is tested directly (``tests/journal_deferred``).  ``standby.deferred.runner``
does the I/O around them.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from yarl import URL

from standby.journal.store import DeferredRow

Scope = MutableMapping[str, Any]

MAX_BACKOFF = 60.0


def completion_id(rid: str) -> str:
    """The completion id promised in the 202: ``req_<hex>`` → ``chatcmpl-<hex>``."""
    return "chatcmpl-" + rid.removeprefix("req_")


def backoff(tries: int, *, base: float = 1.0, cap: float = MAX_BACKOFF) -> float:
    """Pause before the next try after ``tries`` failed ones: base, 2 base, 4 base … cap."""
    if tries <= 0:
        return 0.0
    return min(cap, base * 2.0 ** min(tries - 1, 32))


@dataclass(frozen=True, slots=True)
class Tick:
    """What one pass of the runner does: fail ``expire``, try ``start`` (in this order)."""

    expire: list[DeferredRow]
    start: list[DeferredRow]


def plan_tick(
    rows: Iterable[DeferredRow],
    now: float,
    *,
    busy: Iterable[str],
    not_before: Mapping[str, float],
    slots: int,
) -> Tick:
    """Pick, oldest first, the rows to expire and at most ``slots`` rows to try now.

    Rows being tried (``busy``) are left alone; a row still pausing after a failed try
    (``not_before``) waits, even when the database does not filter on it.
    """
    skip = set(busy)
    expire: list[DeferredRow] = []
    start: list[DeferredRow] = []
    for row in sorted(rows, key=lambda r: (r.received_at, r.rid)):
        if row.rid in skip:
            continue
        if row.until <= now:
            expire.append(row)
        elif len(start) < slots and not_before.get(row.rid, 0.0) <= now:
            start.append(row)
    return Tick(expire=expire, start=start)


def unconfirmed(
    settled: Mapping[str, float], rows: Sequence[DeferredRow], limit: int
) -> dict[str, float]:
    """The finished rows (rid → arrival) the store may still show as pending.

    The database trails the journal by a batch, so a row answered a moment ago may be
    offered again; it is kept out until a store answer proves it final: absent from a
    page that was not full, or absent though older than the page's newest row.
    """
    seen = {row.rid for row in rows}
    horizon = rows[-1].received_at if len(rows) >= limit and rows else math.inf
    return {
        rid: at
        for rid, at in settled.items()
        if rid in seen or (len(rows) >= limit and at >= horizon)
    }


class Pacer:
    """Token bucket: ``rate`` starts per second on average, at most ``burst`` at once."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def __repr__(self) -> str:
        return f"<Pacer rate={self.rate}/s tokens={self.tokens:.2f}/{self.burst:g}>"

    def available(self, now: float) -> int:
        """Whole starts allowed at ``now``."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)
        return int(self.tokens)

    def take(self, now: float) -> bool:
        if self.available(now) < 1:
            return False
        self.tokens -= 1.0
        return True


def opted_in(scope: Scope, body: Mapping[str, Any]) -> bool:
    """The caller allows deferral: ``Standby-Defer: allow`` or ``metadata.standby_defer``."""
    value = _header(scope, b"standby-defer")
    if value is not None:
        return value.strip().lower() in (b"allow", b"true", b"1")
    metadata = body.get("metadata")
    flag = metadata.get("standby_defer") if isinstance(metadata, dict) else None
    return flag is True or (isinstance(flag, str) and flag.strip().lower() == "true")


@dataclass(frozen=True, slots=True)
class Callback:
    """A callback URL a caller asked for, and where it asked (for a 400's ``param``)."""

    url: str
    param: str


HEADER_PARAM = "Standby-Callback-URL"
METADATA_PARAM = "metadata.standby_callback"


def callback_url(scope: Scope, body: Mapping[str, Any]) -> Callback | None:
    """``Standby-Callback-URL`` or else ``metadata.standby_callback``, as given.

    Whether the URL may be called is :func:`url_refusal`'s question, not this one's.
    """
    raw = _header(scope, b"standby-callback-url")
    if raw is not None:
        url: Any = raw.decode("latin-1").strip()
        param = HEADER_PARAM
    else:
        metadata = body.get("metadata")
        url = metadata.get("standby_callback") if isinstance(metadata, dict) else None
        param = METADATA_PARAM
    if not isinstance(url, str) or not url.strip():
        return None
    return Callback(url.strip(), param)


# -- where a callback may go -------------------------------------------------------------
#
# A callback URL is chosen by the caller, so an unchecked one lets any client make the
# gateway POST into its own network: loopback services, the cloud metadata endpoint
# (169.254.169.254), private ranges.  The rule, judged here without I/O:
#
# * ``journal.callback_hosts`` empty: any public host; an IP address (a literal, or what
#   a name resolves to) that is not public is refused.
# * ``journal.callback_hosts`` set: only the hosts it lists, whatever they resolve to
#   (listing a host is the operator's explicit choice).
#
# ``standby.deferred.callbacks`` applies it twice: at request time (a clear 400), and at
# delivery time on the very addresses the connection may use, so a name that resolves
# differently later (DNS rebinding) still cannot reach a refused address.

_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOOPBACK_NAMES = ("localhost", ".localhost")  # RFC 6761: always loopback

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackHosts:
    """The plan's ``journal.callback_hosts``: exact names or ``*.example.com`` patterns.

    A pattern matches names under the domain at any depth (``a.example.com``,
    ``a.b.example.com``) but not the domain itself, and never an IP address.  Names are
    compared in lower case without a trailing dot (international names in punycode); IP
    addresses in their canonical form (``::1``, not ``0:0::1``).
    """

    __slots__ = ("names", "suffixes")

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        names: set[str] = set()
        suffixes: list[str] = []
        for pattern in patterns:
            host = normalise_host(pattern)
            if host.startswith("*.") and len(host) > 2:
                suffixes.append(host[1:])
            elif host:
                names.add(host)
        self.names = frozenset(names)
        self.suffixes = tuple(suffixes)

    def __repr__(self) -> str:
        shown = sorted(self.names) + ["*" + s for s in self.suffixes]
        return f"<CallbackHosts {', '.join(shown) or 'public hosts only'}>"

    @property
    def restricted(self) -> bool:
        """True when only listed hosts may be called back."""
        return bool(self.names or self.suffixes)

    def listed(self, host: str) -> bool:
        name = normalise_host(host)
        if name in self.names:
            return True
        if _ip(name) is not None:
            return False
        return any(name.endswith(suffix) for suffix in self.suffixes)


def normalise_host(host: str) -> str:
    """Lower case, no trailing dot, no IPv6 brackets, IP addresses in canonical form."""
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    address = _ip(name)
    return str(address) if address is not None else name


def url_host(url: URL) -> str:
    """The host a connection to ``url`` looks up, normalised ("" when there is none).

    International names are in their ASCII (punycode) form, as DNS sees them.
    """
    if not url.host:
        return ""
    decoded = normalise_host(url.host)
    return decoded if _ip(decoded) is not None else normalise_host(url.raw_host or "")


def url_refusal(url: str, hosts: CallbackHosts) -> str | None:
    """Why a callback may not go to ``url``, judged from the URL alone; None if it may.

    A host name that passes still has its addresses judged, by :func:`address_refusal`,
    once it is resolved.
    """
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return "the callback URL cannot be parsed"
    if parsed.scheme not in ("http", "https"):
        return "the callback URL must start with http:// or https://"
    host = url_host(parsed)
    if not host:
        return "the callback URL has no host"
    if hosts.listed(host):
        return None
    if hosts.restricted:
        return f"{host!r} is not one of the hosts this gateway may call back"
    address = _ip(host)
    if address is not None:
        kind = address_kind(address)
        return f"{host} is {kind}" if kind else None
    if _NUMERIC_HOST.fullmatch(host):
        return f"{host!r} is not a canonical IP address"
    if len(host) > 253 or not all(0 < len(label) < 64 for label in host.split(".")):
        return "the callback URL's host is not a valid host name"
    if host == _LOOPBACK_NAMES[0] or host.endswith(_LOOPBACK_NAMES[1]):
        return f"{host!r} is a loopback name"
    return None


def address_refusal(host: str, address: str, hosts: CallbackHosts) -> str | None:
    """Why a callback to ``host`` may not connect to ``address`` (an IP it resolved to)."""
    if hosts.listed(host):
        return None
    if hosts.restricted:
        return f"{normalise_host(host)!r} is not one of the hosts this gateway may call back"
    ip = _ip(address)
    if ip is None:
        return f"{normalise_host(host)!r} resolved to {address!r}, not an IP address"
    kind = address_kind(ip)
    return f"{normalise_host(host)!r} resolves to {ip}, {kind}" if kind else None


def address_kind(ip: IPAddress) -> str | None:
    """What makes ``ip`` unfit for a callback (e.g. ``"a loopback address"``); None if public.

    IPv6 forms that carry an IPv4 address (mapped ``::ffff:a.b.c.d``, 6to4, Teredo,
    NAT64) are judged by the IPv4 address they carry.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return address_kind(embedded)
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None
