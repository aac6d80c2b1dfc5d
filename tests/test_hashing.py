"""gitsnap.hashing: the one verify-while-streaming loop, and re-hashing bytes in a file."""

from __future__ import annotations

import io
import os
from pathlib import Path

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitsnap.hashing import (
    Digest,
    digest_stream,
    fd_reader,
    file_reader,
    hash_range,
    oid_of,
    verified,
)


def _oid(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=5000), bufsize=st.integers(1, 700))
def test_verified_yields_every_byte_through_one_buffer(data: bytes, bufsize: int) -> None:
    buf = bytearray(bufsize)
    seen: list[Digest] = []
    out = bytearray()
    counted: list[int] = []
    for chunk in verified(file_reader(io.BytesIO(data)), buf, seen.append, on_bytes=counted.append):
        assert chunk.obj is buf  # a view of the caller's buffer: no copy per chunk
        out += chunk
    assert bytes(out) == data
    assert seen == [Digest(_oid(data), len(data))] and sum(counted) == len(data)


def test_verified_checks_only_after_the_last_chunk() -> None:
    class Bad(Exception):
        pass

    def check(found: Digest) -> None:
        if not found.matches(_oid(b"expected"), 8):
            raise Bad(found)

    stream = verified(file_reader(io.BytesIO(b"tampered!")), bytearray(4), check)
    assert bytes(next(stream)) == b"tamp"  # the consumer gets data first...
    with pytest.raises(Bad):
        list(stream)  # ...and the verdict at the end


def test_limit_stops_reading_at_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"headerTENSORtrailer")
    fd = os.open(path, os.O_RDONLY)
    try:
        found = digest_stream(fd_reader(fd, 6), bytearray(4), limit=6)
    finally:
        os.close(fd)
    assert found == Digest(_oid(b"TENSOR"), 6) and found.matches(oid_of(b"TENSOR"))


def test_a_stream_without_readinto_is_read_too() -> None:
    class Plain:
        def __init__(self, data: bytes) -> None:
            self.f = io.BytesIO(data)

        def read(self, n: int) -> bytes:
            return self.f.read(n)

    data = os.urandom(10_000)
    assert digest_stream(file_reader(Plain(data)), bytearray(999)) == Digest(_oid(data), 10_000)


@pytest.mark.parametrize("offset", [0, 1, 4095, 4096, 5 * 1024 * 1024 + 3])
def test_hash_range_matches_the_bytes_at_any_offset(tmp_path: Path, offset: int) -> None:
    data = os.urandom(9 * 1024 * 1024 + 17)  # more than two 4 MiB windows
    path = tmp_path / "obj"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = len(data) - offset - 5
        assert hash_range(fd, offset, size) == (_oid(data[offset : offset + size]), size)
        # past the end of the file: what is there, and how many bytes that was
        assert hash_range(fd, offset, len(data)) == (_oid(data[offset:]), len(data) - offset)
    finally:
        os.close(fd)


def test_hash_range_reads_what_cannot_be_mapped() -> None:
    # A /proc file says it is empty and cannot be mapped: the pread fallback answers.
    fd = os.open("/proc/self/cmdline", os.O_RDONLY)
    try:
        data = Path("/proc/self/cmdline").read_bytes()
        digest, n = hash_range(fd, 0, 1 << 20)
    finally:
        os.close(fd)
    assert data and (digest, n) == (_oid(data), len(data))
