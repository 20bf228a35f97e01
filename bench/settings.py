"""How long and how hard each phase runs (full run and ``--quick``)."""

from __future__ import annotations

from dataclasses import dataclass

PHASES = ("latency", "saturation", "stream", "memory")


@dataclass(frozen=True)
class Settings:
    """Phase sizes.  Durations in seconds; every loop is bounded by these."""

    reps: int = 3  # direct/standby pairs per measurement, order alternating
    rates: tuple[tuple[float, float], ...] = ((50, 12.0), (500, 8.0))  # (req/s, seconds)
    sat_connections: int = 32
    sat_duration: float = 5.0
    stream_rate: float = 20.0
    stream_duration: float = 8.0
    stream_chunk_delay: float = 0.005  # fast upstream: 20 chunks 5 ms apart
    memory_streams: int = 1000
    memory_chunk_delay: float = 0.5  # slow upstream: 20 chunks → a stream stays ~10 s open
    memory_ramp: float = 2.0
    warmup: float = 3.0
    timeout: float = 30.0  # per request (streams in the memory phase: 60 s)
    upstream: str = "sim"
    engine: str = "auto"  # saturation client: auto | wrk | aiohttp
    gateway_cpus: str = "1"
    load_cpus: str = "0"

    @classmethod
    def quick(cls, **overrides: object) -> Settings:
        """Short phases (~1 minute in all): one rep, a few seconds each, 3 s streams."""
        values: dict[str, object] = {
            "reps": 1,
            "rates": ((50, 3.0), (500, 3.0)),
            "sat_duration": 2.0,
            "stream_duration": 3.0,
            "memory_chunk_delay": 0.15,
            "memory_ramp": 1.0,
            "warmup": 1.0,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
