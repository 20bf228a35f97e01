"""Redis for the cluster tests: the machine's (a database of the tests' own) and, where a
test stops and restarts it, a redis-server of its own on a free loopback port."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

from redis import asyncio as aioredis

REDIS = "redis://127.0.0.1:6379/15"


async def redis_up(url: str = REDIS) -> bool:
    """Whether a Redis answers at ``url`` (the tests skip when the machine has none)."""
    client = aioredis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


@contextlib.contextmanager
def private_redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server of the test's own, on loopback, keeping nothing, stopped by its PID."""
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen(
        [*argv, "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
