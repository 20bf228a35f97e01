"""The cluster as Redis sees it (``GET /standby/cluster``, ``standby cluster status``):
the replicas and when each last said it was here, who holds the singleton jobs' lease,
and whether the replicas agree on the breakers that are open."""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis import asyncio as aioredis

from standby.cluster.health import HEARTBEAT

STALE = 3 * HEARTBEAT  # a replica not heard of for this long is presumed gone


async def cluster_view(url: str, prefix: str, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    client: Any = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        roster = await client.hgetall(f"{prefix}:replicas")
        opened = await client.hgetall(f"{prefix}:breakers")
        holder = await client.get(f"{prefix}:lease:singletons")
        remaining = await client.pttl(f"{prefix}:lease:singletons")
        token = await client.get(f"{prefix}:lease:fence")
    finally:
        await client.aclose()
    replicas = []
    for raw in roster.values():
        beat = orjson.loads(raw)
        age = now - float(beat.get("at", 0.0))
        replicas.append({**beat, "last_seen_s": round(age, 1), "alive": age <= STALE})
    replicas.sort(key=lambda r: str(r.get("replica")))
    alive = [r for r in replicas if r["alive"]]
    breakers = {}
    for field, raw in opened.items():
        message = orjson.loads(raw)
        until = float(message.get("until", 0.0))
        if until <= now:
            continue  # an ejection that is over
        target = field.decode() if isinstance(field, bytes) else str(field)
        knows = [
            r["replica"]
            for r in alive
            if target in r.get("open", []) or target in r.get("held", [])
        ]
        breakers[target] = {
            "opened_by": message.get("replica"),
            "open_for_s": round(until - now, 1),
            "replicas_skipping": sorted(knows),
            "agree": len(knows) == len(alive),
        }
    return {
        "replicas": replicas,
        "lease": {
            "holder": holder.decode() if isinstance(holder, bytes) else holder,
            "expires_in_s": round(remaining / 1000, 1) if remaining and remaining > 0 else None,
            "token": int(token) if token is not None else None,
        },
        "breakers": breakers,
        "agree": all(b["agree"] for b in breakers.values()),
    }
