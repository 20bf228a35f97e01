"""The journal's write-ahead log: numbered, append-only segment files of JSON lines.

``write`` is one ``os.write`` on an ``O_APPEND`` descriptor: the bytes are in the
kernel's page cache when it returns, so a ``kill -9`` of the gateway loses nothing that
was appended (a power cut may lose what the disk had not flushed; ``fsync=True`` trades
throughput for that).  A reader (``LogReader``, in the journal's follower process)
follows the log by ``Position``, and the segments wholly behind the database's committed
position are deleted.

Segments are ``wal-<8-digit number>.jsonl`` in one directory, numbered without gaps; a
new one starts when the current one passes ``segment_bytes``, and the old one is never
written again.  So a reader at the end of a segment knows it is finished when the next
one exists, and finds it by its number: reading never lists the directory.  A torn last
line (a crash mid-write) is skipped by the reader.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PREFIX, _SUFFIX = "wal-", ".jsonl"


@dataclass(frozen=True, slots=True, order=True)
class Position:
    segment: int
    offset: int

    def __str__(self) -> str:
        return f"{self.segment}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Position:
        """The position ``str()`` wrote (``segment:offset``)."""
        segment, offset = text.split(":")
        return cls(int(segment), int(offset))


class LogReader:
    """Reads a log directory that a ``WriteAheadLog`` (maybe in another process) appends
    to; deletes the segments a reader is done with."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, segment: int) -> Path:
        return self.directory / f"{_PREFIX}{segment:08d}{_SUFFIX}"

    def segments(self) -> list[int]:
        """The segment numbers on disk, listed from the directory."""
        found = []
        for path in self.directory.glob(f"{_PREFIX}*{_SUFFIX}"):
            number = path.name[len(_PREFIX) : -len(_SUFFIX)]
            if number.isdigit():
                found.append(int(number))
        return sorted(found)

    def read(
        self, start: Position, max_bytes: int = 4 * 1024 * 1024
    ) -> tuple[list[bytes], Position]:
        """Complete lines from ``start`` (at most about ``max_bytes``) and where they end.

        Moves on to the next segment when one is exhausted; a partial last line is left
        for the next call (it is still being written, or was torn by a crash).
        """
        position = start
        while True:
            try:
                lines, end = self._read_segment(position, max_bytes)
            except FileNotFoundError:  # the first read of a log, or a segment deleted
                later = [s for s in self.segments() if s > position.segment]
                if not later:
                    return [], position
                position = Position(later[0], 0)
                continue
            if lines:
                return lines, end
            if not self.path(position.segment + 1).exists():
                return [], position  # the current segment: the line is still being written
            # the next segment exists, so this one is finished: what was appended to it
            # before the switch is all there will ever be
            lines, end = self._read_segment(position, max_bytes)
            if lines:
                return lines, end
            position = Position(position.segment + 1, 0)  # done, or ended by a torn line

    def _read_segment(self, position: Position, max_bytes: int) -> tuple[list[bytes], Position]:
        with open(self.path(position.segment), "rb") as handle:
            handle.seek(position.offset)
            data = handle.read(max_bytes)
            while b"\n" not in data and len(data) >= max_bytes:
                more = handle.read(max_bytes)  # one event larger than a read
                if not more:
                    break
                data += more
        cut = data.rfind(b"\n") + 1
        if not cut:
            return [], position
        return data[:cut].split(b"\n")[:-1], Position(position.segment, position.offset + cut)

    def bytes_after(self, position: Position, last: int | None = None) -> int:
        """How many bytes of the log lie beyond ``position`` (a reader's lag), counting
        segments up to ``last`` (default: as far as they exist)."""
        segment = position.segment
        if not self.path(segment).exists():  # before the log's first segment (or pruned)
            later = [s for s in self.segments() if s > segment]
            if not later:
                return 0
            segment = later[0]
        total = 0
        while last is None or segment <= last:
            try:
                size = self.path(segment).stat().st_size
            except FileNotFoundError:
                break
            total += size - (min(position.offset, size) if segment == position.segment else 0)
            segment += 1
        return total

    def prune(self, before: Position, keep: int | None = None) -> int:
        """Delete segments entirely behind ``before`` (never ``keep``); returns how many."""
        removed = 0
        for segment in self.segments():
            if segment < before.segment and segment != keep:
                self.path(segment).unlink(missing_ok=True)
                removed += 1
        return removed


class WriteAheadLog:
    def __init__(
        self, directory: str | Path, *, segment_bytes: int = 64 * 1024 * 1024, fsync: bool = False
    ) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.directory.mkdir(parents=True, exist_ok=True)
        self.reader = LogReader(self.directory)
        segments = self.reader.segments()
        self._segment = segments[-1] if segments else 1
        self._fd = self._open(self._segment)
        self._size = os.fstat(self._fd).st_size
        self._end_torn_line()

    def _end_torn_line(self) -> None:
        # a crash mid-append leaves a line without its newline; close it so the next
        # append starts a line of its own (the reader skips the torn one as undecodable)
        if self._size:
            with open(self.reader.path(self._segment), "rb") as handle:
                handle.seek(self._size - 1)
                torn = handle.read(1) != b"\n"
            if torn:
                os.write(self._fd, b"\n")
                self._size += 1

    def _open(self, segment: int) -> int:
        return os.open(self.reader.path(segment), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def segments(self) -> list[int]:
        """The segment numbers on disk, listed from the directory."""
        return self.reader.segments()

    @property
    def end(self) -> Position:
        return Position(self._segment, self._size)

    def write(self, data: bytes) -> None:
        """Append whole lines (``end`` is the position just after them)."""
        if self._size >= self.segment_bytes:
            self._rotate()
        written = os.write(self._fd, data)
        while written < len(data):  # a short write to a regular file is rare but legal
            written += os.write(self._fd, data[written:])
        if self.fsync:
            os.fsync(self._fd)
        self._size += len(data)

    def _rotate(self) -> None:
        os.close(self._fd)
        self._segment += 1
        self._fd = self._open(self._segment)
        self._size = 0

    def read(
        self, start: Position, max_bytes: int = 4 * 1024 * 1024
    ) -> tuple[list[bytes], Position]:
        """Complete lines from ``start``; see ``LogReader.read``."""
        return self.reader.read(start, max_bytes)

    def bytes_after(self, position: Position) -> int:
        """How many bytes of the log lie beyond ``position`` (a reader's lag)."""
        return self.reader.bytes_after(position, last=self._segment)

    def prune(self, before: Position) -> int:
        """Delete segments entirely behind ``before``; returns how many."""
        return self.reader.prune(before, keep=self._segment)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
