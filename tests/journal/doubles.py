"""Write connections with faults, for the follower process to load by name.

A test points a store's ``writer_target()`` at one of these (``"factory":
"tests.journal.doubles:mangling"``); the follower process imports it and calls it with
the target.  What they log reaches the test through the follower's log relay.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from standby.journal import drivers
from standby.journal.batch import Batch
from standby.journal.drivers import Pause, Target, WriteConnection
from standby.journal.wal import Position

log = logging.getLogger("standby.journal.doubles")


def _real(target: Target) -> WriteConnection:
    return drivers.connect({**target, "factory": None})


class _Mangling:
    """A real connection handed one value no database driver can bind (a lone
    surrogate) for the request ``poison``."""

    def __init__(self, real: WriteConnection) -> None:
        self.real = real

    def cursor(self, wal_id: str) -> Position | None:
        return self.real.cursor(wal_id)

    def write(
        self,
        batch: Batch,
        *,
        wal_id: str,
        start: Position | None,
        end: Position | None,
        pause: Pause = lambda: None,
    ) -> bool:
        if "poison" in batch.deltas:
            batch.deltas["poison"] = ["\ud800"]
        return self.real.write(batch, wal_id=wal_id, start=start, end=end, pause=pause)

    def close(self) -> None:
        self.real.close()


def mangling(target: Target) -> WriteConnection:
    return _Mangling(_real(target))


_flaky = {"connections": 0, "broken": False}


def _breaking(batch: Batch) -> Iterator[tuple[str, Iterable[Sequence[Any]]]]:
    """``drivers._rows``, but the first batch of two statements or more loses its
    connection after the first one: mid-transaction."""
    for number, statement in enumerate(_rows(batch)):
        if number == 1 and not _flaky["broken"]:
            _flaky["broken"] = True
            raise ConnectionResetError("connection lost mid-batch")
        yield statement


_rows = drivers._rows


def flaky(target: Target) -> WriteConnection:
    """Refuses the first ``target["failures"]`` connections, then loses one mid-batch."""
    _flaky["connections"] += 1
    log.warning("double: connection %d", _flaky["connections"])
    if _flaky["connections"] <= int(target["failures"]):
        raise RuntimeError(f"boom {_flaky['connections']}")
    drivers._rows = _breaking  # this is the follower process: nobody else to mind
    return _real(target)
