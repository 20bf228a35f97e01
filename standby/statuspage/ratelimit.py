"""How often one client may use the status page's public forms: a token bucket per client
address.  Pure: the time is passed in, nothing here reads a clock or does I/O."""

from __future__ import annotations

import ipaddress


class TokenBucket:
    """Per key, up to ``per_minute`` requests at once, refilled at ``per_minute`` a minute.

    At most ``max_keys`` keys are kept: full buckets are forgotten first (a full bucket
    is the same as none), then the least recently used, so a flood of addresses costs
    bounded memory (and at worst forgives a few clients).
    """

    __slots__ = ("_buckets", "burst", "max_keys", "rate")

    def __init__(self, per_minute: int, *, max_keys: int = 10_000) -> None:
        if per_minute < 1 or max_keys < 1:
            raise ValueError("per_minute and max_keys must be at least 1")
        self.burst = float(per_minute)
        self.rate = per_minute / 60.0  # tokens a second
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at); LRU order

    def __repr__(self) -> str:
        return f"<TokenBucket {self.burst:g}/min keys={len(self._buckets)}>"

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + max(0.0, now - at) * self.rate)

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may make a request (0.0: now); takes nothing."""
        level = self._level(key, now)
        return 0.0 if level >= 1.0 else (1.0 - level) / self.rate

    def take(self, key: str, now: float) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there is one."""
        level = self._level(key, now)
        self._buckets.pop(key, None)  # re-inserted last: the dict's order is recency
        if level < 1.0:
            self._buckets[key] = (level, now)
            return (1.0 - level) / self.rate
        self._buckets[key] = (level - 1.0, now)
        if len(self._buckets) > self.max_keys:
            self._forget(now)
        return 0.0

    def _forget(self, now: float) -> None:
        for key in [key for key in self._buckets if self._level(key, now) >= self.burst]:
            del self._buckets[key]
        while len(self._buckets) > self.max_keys:
            del self._buckets[next(iter(self._buckets))]


def client_key(host: str | None) -> str:
    """The bucket of a client address: an IPv6 client's /64 (one site holds the whole
    network), an IPv4 client's address (also when written IPv4-mapped)."""
    if not host:
        return "?"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
