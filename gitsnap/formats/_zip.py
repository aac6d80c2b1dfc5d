"""Where each member's bytes sit inside a zip file, with bounds checks.

PyTorch checkpoints and ``.npz`` files are zip archives whose interesting
members (tensor storages, ``.npy`` arrays) are usually *stored*, not
compressed: their bytes appear verbatim in the file, so each can be a segment
of its own. The central directory is read by :mod:`zipfile` (pure parsing,
zip64 included); each member's local header is then read to find where its
data starts, because the local "extra" field (PyTorch pads it to align
storages to 64 bytes) may differ from the central directory's. Nothing is
decompressed here, except a small member a caller asks for
(:func:`read_member`, the pickle of a re-compressed checkpoint), inflated
with a size bound.

Hostile archives: the central directory's entry count is checked before
:mod:`zipfile` builds one object per entry (``MAX_MEMBERS``), any exception
:mod:`zipfile` raises on a malformed directory (a "version 25.5" entry, a
name that is not UTF-8, an overflowing zip64 field) becomes an
:class:`~gitsnap.errors.ArchiveError` naming the file, and inflation stops at
the bound the caller gives, whatever size the directory claims.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from gitsnap.errors import ArchiveError

ZIP_MAGIC = b"PK\x03\x04"
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # the 30-byte local file header
_LOCAL_SIG = 0x04034B50
MAX_MEMBERS = 200_000
MAX_EXTRACT_VERSION = 63  # zip specification 6.3, as zipfile checks when it opens a member
_HINT = "the file may be truncated, damaged or still being written; write it again"


def _bad(path: Path, what: str) -> ArchiveError:
    return ArchiveError(f"{path}: not a readable zip archive: {what}", hint=_HINT)


@dataclass(frozen=True)
class Member:
    name: str
    header_offset: int
    data_offset: int
    size: int  # bytes of the (possibly compressed) data in the file
    file_size: int  # bytes once decompressed
    compress_type: int

    @property
    def stored(self) -> bool:
        return self.compress_type == zipfile.ZIP_STORED and self.size == self.file_size

    @property
    def end(self) -> int:
        return self.data_offset + self.size


def sniff(head: bytes) -> bool:
    return head[:4] == ZIP_MAGIC


def _entry_count(f: object) -> int | None:
    """Entries the end-of-directory record claims (zip64 included), before zipfile reads them."""
    try:
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
    except Exception:
        return None
    if not end:
        return None
    return int(end[zipfile._ECD_ENTRIES_TOTAL])  # type: ignore[attr-defined]


def read_members(fd: int, path: Path) -> tuple[list[Member], int]:
    """All members in file order, and the offset where the central directory starts."""
    size = os.fstat(fd).st_size
    try:
        with open(os.dup(fd), "rb") as f:
            count = _entry_count(f)
            if count is not None and count > MAX_MEMBERS:
                raise _bad(path, f"{count} entries (more than {MAX_MEMBERS})")
            f.seek(0)
            zf = zipfile.ZipFile(f)
            infos = zf.infolist()
            cd_start = int(getattr(zf, "start_dir", size))
    except ArchiveError:
        raise
    except MemoryError:
        raise _bad(path, "its directory does not fit in memory") from None
    except Exception as exc:
        raise _bad(path, f"{type(exc).__name__}: {exc}") from None
    if len(infos) > MAX_MEMBERS:
        raise _bad(path, f"{len(infos)} entries (more than {MAX_MEMBERS})")
    if not 0 <= cd_start <= size:
        raise _bad(path, f"central directory offset {cd_start} is outside the {size}-byte file")
    members: list[Member] = []
    for info in infos:
        if info.extract_version > MAX_EXTRACT_VERSION:
            raise _bad(
                path,
                f"member {info.filename!r} needs zip version {info.extract_version / 10}, "
                f"newer than any zip specification ({MAX_EXTRACT_VERSION / 10})",
            )
        if info.flag_bits & 0x1:
            raise _bad(path, f"member {info.filename!r} is encrypted")
        off = info.header_offset
        if off < 0 or off + _LOCAL.size > cd_start:
            raise _bad(
                path, f"member {info.filename!r}: local header at {off} is outside the archive data"
            )
        raw = os.pread(fd, _LOCAL.size, off)
        if len(raw) != _LOCAL.size:
            raise _bad(path, f"member {info.filename!r}: truncated local header")
        sig, _v, _flag, _m, _t, _d, _crc, _cs, _us, name_len, extra_len = _LOCAL.unpack(raw)
        if sig != _LOCAL_SIG:
            raise _bad(path, f"member {info.filename!r}: no local header signature at offset {off}")
        data = off + _LOCAL.size + name_len + extra_len
        end = data + info.compress_size
        if info.compress_size < 0 or end > cd_start:
            raise _bad(
                path,
                f"member {info.filename!r}: data [{data}, {end}) runs past the archive data "
                f"(which ends at {cd_start})",
            )
        members.append(
            Member(info.filename, off, data, info.compress_size, info.file_size, info.compress_type)
        )
    members.sort(key=lambda m: m.header_offset)
    prev_end, prev_name = 0, None
    for m in members:
        if m.header_offset < prev_end:
            raise _bad(path, f"member {m.name!r} overlaps member {prev_name!r}")
        prev_end, prev_name = m.end, m.name
    return members, cd_start


def read_member(fd: int, member: Member, limit: int, path: Path) -> bytes:
    """A member's bytes, inflated if deflated, refusing more than ``limit`` bytes."""
    if member.file_size > limit or (member.stored and member.size > limit):
        raise ArchiveError(
            f"{path}: member {member.name!r} is {member.file_size} bytes once decompressed, "
            f"more than the {limit}-byte limit for it",
            hint="this is not what torch.save writes; save the checkpoint again with torch.save",
        )
    if member.compress_type == zipfile.ZIP_STORED:
        data = os.pread(fd, member.size, member.data_offset)
        if len(data) != member.size:
            raise _bad(path, f"member {member.name!r} is truncated")
        return data
    if member.compress_type != zipfile.ZIP_DEFLATED:
        raise ArchiveError(
            f"{path}: member {member.name!r} uses zip compression method "
            f"{member.compress_type}, which gitsnap does not read",
            hint="save the checkpoint again with torch.save (it writes stored members)",
        )
    inflater = zlib.decompressobj(-15)
    out = bytearray()
    pos, end = member.data_offset, member.end
    try:
        while pos < end and not inflater.eof:
            chunk = os.pread(fd, min(1 << 20, end - pos), pos)
            if not chunk:
                break
            pos += len(chunk)
            out += inflater.decompress(chunk, limit + 1 - len(out))
            if len(out) > limit or inflater.unconsumed_tail:
                raise ArchiveError(
                    f"{path}: member {member.name!r} inflates to more than {limit} bytes "
                    f"(its directory entry says {member.file_size})",
                    hint="the archive is damaged or crafted; do not load it",
                )
    except zlib.error as exc:
        raise _bad(path, f"member {member.name!r}: {exc}") from None
    return bytes(out)


def read_head(fd: int, member: Member, n: int) -> bytes:
    """Up to ``n`` leading bytes of a member, inflated if deflated; b"" if unreadable."""
    if member.compress_type == zipfile.ZIP_STORED:
        return os.pread(fd, min(n, member.size), member.data_offset)
    if member.compress_type != zipfile.ZIP_DEFLATED:
        return b""
    try:
        return zlib.decompressobj(-15).decompress(
            os.pread(fd, min(member.size, n + (1 << 16)), member.data_offset), n
        )
    except zlib.error:
        return b""
