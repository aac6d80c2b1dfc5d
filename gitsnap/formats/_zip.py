"""Where each member's bytes sit inside a zip file, with bounds checks.

PyTorch checkpoints and ``.npz`` files are zip archives whose interesting
members (tensor storages, ``.npy`` arrays) are usually *stored*, not
compressed: their bytes appear verbatim in the file, so each can be a segment
of its own. The central directory is read by :mod:`zipfile` (pure parsing,
zip64 included); each member's local header is then read to find where its
data starts, because the local "extra" field (PyTorch pads it to align
storages to 64 bytes) may differ from the central directory's. Nothing is
decompressed here.
"""

from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass

ZIP_MAGIC = b"PK\x03\x04"
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # the 30-byte local file header
_LOCAL_SIG = 0x04034B50


class BadZip(Exception):
    """The archive's structure is not what it claims (the caller turns this into a FormatError)."""


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


def read_members(fd: int) -> tuple[list[Member], int]:
    """All members in file order, and the offset where the central directory starts."""
    size = os.fstat(fd).st_size
    try:
        with open(os.dup(fd), "rb") as f:
            zf = zipfile.ZipFile(f)
            infos = zf.infolist()
            cd_start = int(getattr(zf, "start_dir", size))
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        ValueError,
        EOFError,
        struct.error,
    ) as exc:
        raise BadZip(f"not a readable zip archive ({exc})") from None
    if not 0 <= cd_start <= size:
        raise BadZip(f"central directory offset {cd_start} is outside the {size}-byte file")
    members: list[Member] = []
    for info in infos:
        off = info.header_offset
        if off < 0 or off + _LOCAL.size > cd_start:
            raise BadZip(
                f"member {info.filename!r}: local header at {off} is outside the archive data"
            )
        raw = os.pread(fd, _LOCAL.size, off)
        if len(raw) != _LOCAL.size:
            raise BadZip(f"member {info.filename!r}: truncated local header")
        sig, _v, _flag, _m, _t, _d, _crc, _cs, _us, name_len, extra_len = _LOCAL.unpack(raw)
        if sig != _LOCAL_SIG:
            raise BadZip(f"member {info.filename!r}: no local header signature at offset {off}")
        data = off + _LOCAL.size + name_len + extra_len
        end = data + info.compress_size
        if info.compress_size < 0 or end > cd_start:
            raise BadZip(
                f"member {info.filename!r}: data [{data}, {end}) runs past the archive data "
                f"(which ends at {cd_start})"
            )
        members.append(
            Member(info.filename, off, data, info.compress_size, info.file_size, info.compress_type)
        )
    members.sort(key=lambda m: m.header_offset)
    prev_end, prev_name = 0, None
    for m in members:
        if m.header_offset < prev_end:
            raise BadZip(f"member {m.name!r} overlaps member {prev_name!r}")
        prev_end, prev_name = m.end, m.name
    return members, cd_start
