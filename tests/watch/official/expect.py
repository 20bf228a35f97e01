"""What a table case expects of a reading."""

from __future__ import annotations

from dataclasses import dataclass, field

from standby.watch.official import Level, Reading


@dataclass(frozen=True)
class Expect:
    indicator: Level
    components: dict[str, Level] | None = None  # None: not checked
    incidents: int = 0
    maintenances: int = 0
    error: str | None = None  # a part of the error; None: no error
    worst: Level | None = None  # reading.worst() over every component read
    names: tuple[str, ...] = field(default=())  # names of the incidents, in order

    def check(self, reading: Reading) -> None:
        if self.error is None:
            assert reading.error is None, reading.error
        else:
            assert reading.error is not None and self.error in reading.error, reading.error
            assert reading.indicator is Level.UNKNOWN  # never down for not knowing
            assert reading.worst() is Level.UNKNOWN
        assert reading.indicator is self.indicator
        if self.components is not None:
            assert reading.components == self.components
        assert len(reading.incidents) == self.incidents
        assert len(reading.maintenances) == self.maintenances
        if self.worst is not None:
            assert reading.worst() is self.worst
        if self.names:
            assert tuple(i.name for i in reading.incidents) == self.names
