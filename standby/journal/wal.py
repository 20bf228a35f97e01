"""The journal's write-ahead log: numbered, append-only segment files of JSON lines.

``append`` is one ``os.write`` on an ``O_APPEND`` descriptor: the bytes are in the
kernel's page cache when it returns, so a ``kill -9`` of the gateway loses nothing that
was appended (a power cut may lose what the disk had not flushed; ``fsync=True`` trades
throughput for that).  A reader (``journal.writer``) follows the log by ``Position`` and
the segments wholly behind the database's committed position are deleted.

Segments are ``wal-<8-digit number>.jsonl`` in one directory; a new one starts when the
current one passes ``segment_bytes``.  A torn last line (a crash mid-write) is skipped
by the reader.
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


class WriteAheadLog:
    def __init__(
        self, directory: str | Path, *, segment_bytes: int = 64 * 1024 * 1024, fsync: bool = False
    ) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.directory.mkdir(parents=True, exist_ok=True)
        segments = self.segments()
        self._segment = segments[-1] if segments else 1
        self._fd = self._open(self._segment)
        self._size = os.fstat(self._fd).st_size
        self._end_torn_line()

    def _end_torn_line(self) -> None:
        # a crash mid-append leaves a line without its newline; close it so the next
        # append starts a line of its own (the reader skips the torn one as undecodable)
        if self._size:
            with open(self._path(self._segment), "rb") as handle:
                handle.seek(self._size - 1)
                torn = handle.read(1) != b"\n"
            if torn:
                os.write(self._fd, b"\n")
                self._size += 1

    def _path(self, segment: int) -> Path:
        return self.directory / f"{_PREFIX}{segment:08d}{_SUFFIX}"

    def _open(self, segment: int) -> int:
        return os.open(self._path(segment), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def segments(self) -> list[int]:
        found = []
        for path in self.directory.glob(f"{_PREFIX}*{_SUFFIX}"):
            number = path.name[len(_PREFIX) : -len(_SUFFIX)]
            if number.isdigit():
                found.append(int(number))
        return sorted(found)

    @property
    def end(self) -> Position:
        return Position(self._segment, self._size)

    def append(self, data: bytes) -> Position:
        """Append whole lines; returns the position just after them."""
        if self._size >= self.segment_bytes:
            self._rotate()
        written = os.write(self._fd, data)
        while written < len(data):  # a short write to a regular file is rare but legal
            written += os.write(self._fd, data[written:])
        if self.fsync:
            os.fsync(self._fd)
        self._size += len(data)
        return Position(self._segment, self._size)

    def _rotate(self) -> None:
        os.close(self._fd)
        self._segment += 1
        self._fd = self._open(self._segment)
        self._size = 0

    def read(
        self, start: Position, max_bytes: int = 4 * 1024 * 1024
    ) -> tuple[list[bytes], Position]:
        """Complete lines from ``start`` (at most about ``max_bytes``) and where they end.

        Moves on to the next segment when one is exhausted; a partial last line is left
        for the next call (it is still being written, or was torn by a crash).
        """
        position = start
        for segment in self.segments():
            if segment < position.segment:
                continue
            if segment > position.segment:
                position = Position(segment, 0)
            try:
                with open(self._path(segment), "rb") as handle:
                    handle.seek(position.offset)
                    data = handle.read(max_bytes)
                    while b"\n" not in data and len(data) >= max_bytes:
                        more = handle.read(max_bytes)  # one event larger than a read
                        if not more:
                            break
                        data += more
            except FileNotFoundError:
                continue
            cut = data.rfind(b"\n") + 1
            if cut:
                lines = data[:cut].split(b"\n")[:-1]
                return lines, Position(segment, position.offset + cut)
            if segment == self._segment:
                return [], position  # the line is still being written
            # a finished segment ending in a torn line: skip to the next segment
        return [], position

    def bytes_after(self, position: Position) -> int:
        """How many bytes of the log lie beyond ``position`` (a reader's lag)."""
        total = 0
        for segment in self.segments():
            if segment >= position.segment:
                try:
                    total += self._path(segment).stat().st_size
                except FileNotFoundError:
                    continue
                if segment == position.segment:
                    total -= min(position.offset, total)
        return total

    def prune(self, before: Position) -> int:
        """Delete segments entirely behind ``before``; returns how many."""
        removed = 0
        for segment in self.segments():
            if segment < before.segment and segment != self._segment:
                self._path(segment).unlink(missing_ok=True)
                removed += 1
        return removed

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
