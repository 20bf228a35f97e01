"""Reading one member of an export's zip file, within bounds.

An export is a file someone downloaded, maybe from a stranger: its member is inflated
in chunks and refused (``ExportTooLarge``) as soon as it grows past ``member_bytes``,
whatever its header claims, and refused before any inflating when its header claims more
than that or a compression ratio no real export has (a zip bomb).  Every other problem
(not a zip, no such member, encrypted, corrupt) is an ``ExportUnreadable`` saying which.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from standby.errors import ExportTooLarge, ExportUnreadable

_CHUNK = 1 << 20
# what ``zipfile`` inflates (exports use deflate; stored and the others cost nothing)
_METHODS = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    member_bytes: int = 1 << 30  # the member once inflated (a heavy user's is ~200 MiB)
    max_ratio: float = 200.0  # inflated / compressed: text and JSON stay far below


DEFAULT_LIMITS = ArchiveLimits()


def _member(archive: zipfile.ZipFile, name: str, path: Path) -> zipfile.ZipInfo:
    """``name`` at the top of the archive, else the shallowest one of that name (some
    tools wrap the export in a folder)."""
    found = [
        info
        for info in archive.infolist()
        if not info.is_dir() and PurePosixPath(info.filename).name == name
    ]
    if not found:
        raise ExportUnreadable(f"{path} has no {name}: is it a data export?")
    return min(found, key=lambda info: (info.filename.count("/"), info.filename))


def read_member(path: Path, name: str, limits: ArchiveLimits = DEFAULT_LIMITS) -> bytes:
    """The bytes of the member ``name`` of the zip file at ``path``."""
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ExportUnreadable(f"no file at {path}") from None
    except IsADirectoryError:
        raise ExportUnreadable(f"{path} is a directory, not the export's zip file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ExportUnreadable(f"{path} is not a zip file ({exc})") from exc
    with archive:
        info = _member(archive, name, path)
        where = f"{path}: {info.filename}"
        if info.file_size > limits.member_bytes:
            raise ExportTooLarge(
                f"{where} is {info.file_size:,} bytes uncompressed, over the limit of "
                f"{limits.member_bytes:,} bytes"
            )
        if info.file_size > _CHUNK and info.file_size > limits.max_ratio * info.compress_size:
            raise ExportTooLarge(
                f"{where} claims {info.file_size:,} bytes from {info.compress_size:,} "
                "compressed: refused as a zip bomb"
            )
        if info.flag_bits & 0x1:
            raise ExportUnreadable(f"{where} is encrypted: export it again without a password")
        if info.compress_type not in _METHODS:
            raise ExportUnreadable(
                f"{where} uses compression method {info.compress_type}, which is not read here"
            )
        parts: list[bytes] = []
        size = 0
        try:
            with archive.open(info) as member:
                while chunk := member.read(_CHUNK):
                    size += len(chunk)
                    if size > limits.member_bytes:  # the header lied
                        raise ExportTooLarge(
                            f"{where} inflates past the limit of {limits.member_bytes:,} bytes"
                        )
                    parts.append(chunk)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
            raise ExportUnreadable(f"{where} cannot be read: {exc}") from exc
        return b"".join(parts)


def conversation_list(data: bytes, where: str) -> list[Any]:
    """The list of conversations a ``conversations.json`` holds."""
    try:
        found = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ExportUnreadable(f"{where} is not JSON: {exc}") from None
    if isinstance(found, dict) and isinstance(found.get("conversations"), list):
        found = found["conversations"]
    if not isinstance(found, list):
        raise ExportUnreadable(f"{where} is not a list of conversations")
    return found
