"""gitsnap.pack: immutable packs of small objects, their index, and their atomic rewrite."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitsnap import codec, pack
from gitsnap.errors import ObjectCorrupt, ObjectMissing
from gitsnap.hashing import oid_of


def small_objects(n: int, size: int, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        x = (rng.standard_normal(size // 4) * 0.02).astype(np.float32).tobytes()
        out[oid_of(x + i.to_bytes(4, "little"))] = x + i.to_bytes(4, "little")
    return out


def write(root: Path, objects: dict[str, bytes], max_pack: int = pack.MAX_PACK) -> None:
    with pack.PackWriter(root, max_pack=max_pack) as w:
        for oid, data in objects.items():
            w.add(oid, codec.bytes_reader(data), len(data), dtype=12)
        w.finish()


def files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_file())


def test_twenty_thousand_small_objects_make_a_few_packs(tmp_path: Path) -> None:
    objects = small_objects(20_000, 1024)
    write(tmp_path, objects, max_pack=4 << 20)
    names = files(tmp_path)
    assert 4 <= len(names) <= 30, names  # pairs of .pack + .idx, not 20,000 files
    assert all(n.startswith("pack-") for n in names)
    with pack.PackStore(tmp_path) as store:
        assert store.oids() == set(objects)
        for oid, data in objects.items():
            assert store.read(oid) == data
        assert store.verify() == []
        assert sum(e.raw_size for e in store.entries()) == sum(map(len, objects.values()))


def test_pack_name_is_its_hash_and_nothing_is_visible_before_finish(tmp_path: Path) -> None:
    objects = small_objects(10, 4096)
    w = pack.PackWriter(tmp_path)
    for oid, data in objects.items():
        w.add(oid, codec.bytes_reader(data), len(data), dtype=12)
    assert not list(tmp_path.glob("pack-*"))
    ((name, count),) = w.finish()
    assert oid_of((tmp_path / f"pack-{name}.pack").read_bytes()) == name
    assert count == len(objects)
    idx_name, entries = pack.read_index(tmp_path / f"pack-{name}.idx")
    assert idx_name == name
    assert sorted(e.oid for e in entries) == sorted(objects)
    w2 = pack.PackWriter(tmp_path)
    w2.add(*next(iter((o, codec.bytes_reader(d), len(d)) for o, d in objects.items())))
    w2.abort()
    assert files(tmp_path) == [f"pack-{name}.idx", f"pack-{name}.pack"]
    assert not list((tmp_path / "tmp").iterdir())


def _only(root: Path, suffix: str) -> Path:
    (p,) = root.glob(f"pack-*{suffix}")
    return p


@pytest.mark.parametrize(
    "damage",
    ["index byte", "index truncated", "index count", "pack truncated", "pack magic", "idx name"],
)
def test_a_damaged_index_or_pack_is_named(tmp_path: Path, damage: str) -> None:
    write(tmp_path, small_objects(50, 2048))
    idx, pk = _only(tmp_path, ".idx"), _only(tmp_path, ".pack")
    if damage == "index byte":
        b = bytearray(idx.read_bytes())
        b[100] ^= 1
        idx.write_bytes(bytes(b))
    elif damage == "index truncated":
        idx.write_bytes(idx.read_bytes()[:-7])
    elif damage == "index count":
        b = bytearray(idx.read_bytes())
        b[8:16] = (1 << 40).to_bytes(8, "little")
        idx.write_bytes(bytes(b))
    elif damage == "pack truncated":
        pk.write_bytes(pk.read_bytes()[:-10])
    elif damage == "pack magic":
        b = bytearray(pk.read_bytes())
        b[0] ^= 1
        pk.write_bytes(bytes(b))
    else:
        idx.rename(tmp_path / ("pack-" + "0" * 64 + ".idx"))
    # The damaged pack is named and set aside: its objects read as missing, never as data.
    with pack.PackStore(tmp_path) as store:
        [exc] = store.damaged
        assert not store.packs and not store.oids()
    assert exc.message.startswith("pack file pack-")
    assert "delete" in exc.hint


def test_a_damaged_member_is_named_and_never_returned(tmp_path: Path) -> None:
    objects = small_objects(20, 8192)
    write(tmp_path, objects)
    pk = _only(tmp_path, ".pack")
    with pack.PackStore(tmp_path) as store:
        victim = sorted(objects)[7]
        e = store.entry(victim)
    b = bytearray(pk.read_bytes())
    b[e.offset + e.length - 3] ^= 0x10
    pk.write_bytes(bytes(b))
    with pack.PackStore(tmp_path) as store:
        with pytest.raises(ObjectCorrupt, match=victim[:12]):
            store.read(victim)
        for oid in objects:
            if oid != victim:
                assert store.read(oid) == objects[oid]
        problems = store.verify()
        assert any(victim[:12] in p.message for p in problems)
        assert any("do not match its name" in p.message for p in problems)


def _delta_store(root: Path) -> tuple[dict[str, bytes], str, str, str]:
    """A base packed in one pack, a delta of it and an unrelated object in another."""
    base_raw = small_objects(1, 64 * 1024, seed=9)
    ((b_oid, base),) = base_raw.items()
    write(root, base_raw)
    arr = np.frombuffer(base, np.uint8).copy()
    arr[::4] ^= 1
    new = arr.tobytes()
    n_oid = oid_of(new)
    other = small_objects(1, 4096, seed=10)
    ((o_oid, odata),) = other.items()
    with pack.PackStore(root) as store, pack.PackWriter(root) as w:
        b = codec.base_from(store, b_oid)
        e = w.add(n_oid, codec.bytes_reader(new), len(new), dtype=12, base=b)
        assert e is not None and e.codec == codec.XOR and e.base == b_oid
        w.add(o_oid, codec.bytes_reader(odata), len(odata), dtype=12)
        w.finish()
    return {b_oid: base, n_oid: new, o_oid: odata}, b_oid, n_oid, o_oid


def test_a_corrupt_delta_base_in_another_pack_is_named(tmp_path: Path) -> None:
    _, b_oid, n_oid, _ = _delta_store(tmp_path)
    with pack.PackStore(tmp_path) as store:
        e = store.entry(b_oid)
        path = store._where[b_oid].path
    b = bytearray(path.read_bytes())
    b[e.offset + e.length - 5] ^= 0x01
    path.write_bytes(bytes(b))
    with pack.PackStore(tmp_path) as store, pytest.raises(ObjectCorrupt) as exc:
        store.read(n_oid)
    assert n_oid[:12] in exc.value.message
    assert f"delta base {b_oid[:12]}" in exc.value.message


def test_rewrite_drops_the_unreachable_and_keeps_bases_of_kept_deltas(tmp_path: Path) -> None:
    objects, b_oid, n_oid, _ = _delta_store(tmp_path)
    keepers = small_objects(30, 4096, seed=11)
    write(tmp_path, keepers)
    with pack.PackStore(tmp_path) as store:
        before = {p.name for p in store.packs}
        result = pack.rewrite(store, set(keepers) | {n_oid})
        assert store.oids() == set(keepers) | {n_oid, b_oid}
        assert result.bases_kept == {b_oid}
        assert result.objects_dropped == 1
        assert store.read(n_oid) == objects[n_oid]
        # The untouched packs stay as they were; only the one with o_oid was rewritten.
        after = {p.name for p in store.packs}
        assert len(before - after) == 1 and len(result.packs_written) == 1
        assert store.verify() == []
        result = pack.rewrite(store, set())
        assert store.oids() == set() and files(tmp_path) == []
        assert result.bytes_freed > 0


def test_clean_removes_orphans_only_after_the_grace(tmp_path: Path) -> None:
    write(tmp_path, small_objects(3, 4096))
    idx = _only(tmp_path, ".idx")
    idx.unlink()
    assert pack.clean(tmp_path) == []  # young: maybe a commit in progress
    gone = pack.clean(tmp_path, grace=0)
    assert [p.suffix for p in gone] == [".pack"]
    assert files(tmp_path) == []


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from gitsnap import pack

    steps = int(sys.argv[2])
    count = 0
    def dies(real):
        def wrapper(*args, **kwargs):
            global count
            count += 1
            if count > steps:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return wrapper
    # Every rename and delete is a point where kill -9 may strike.
    Path.replace = dies(Path.replace)
    Path.unlink = dies(Path.unlink)
    keep = set(Path(sys.argv[3]).read_text().split())
    with pack.PackStore(Path(sys.argv[1])) as store:
        pack.rewrite(store, keep)
    print("DONE")
    """
)


def test_kill_9_during_rewrite_leaves_every_kept_object(tmp_path: Path) -> None:
    objects, b_oid, n_oid, _ = _delta_store(tmp_path / "template")
    more = small_objects(40, 4096, seed=12)
    write(tmp_path / "template", more, max_pack=64 * 1024)
    objects.update(more)
    keep = {n_oid} | set(sorted(more)[::2])
    (tmp_path / "keep").write_text("\n".join(keep))
    for steps in range(40):
        root = tmp_path / f"run{steps}"
        subprocess.run(["cp", "-a", str(tmp_path / "template"), str(root)], check=True)
        proc = subprocess.run(
            [sys.executable, "-c", KILLER, str(root), str(steps), str(tmp_path / "keep")],
            capture_output=True,
            text=True,
            env={**os.environ},
            check=False,
        )
        finished = proc.returncode == 0
        assert finished or proc.returncode == -signal.SIGKILL, proc.stderr
        with pack.PackStore(root) as store:
            for oid in keep | {b_oid}:
                assert store.read(oid) == objects[oid], (steps, oid)
            # A re-run completes and leaves exactly the new state.
            pack.rewrite(store, keep)
            assert store.oids() == keep | {b_oid}
            assert store.verify() == []
        pack.clean(root, grace=0)
        assert not list((root / "tmp").iterdir())
        if finished:
            break
    else:
        pytest.fail("the rewrite never finished within 40 steps")
    assert steps > 3  # it was killed at several points before it finished


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    flips=st.lists(
        st.tuples(st.booleans(), st.integers(0, 1 << 30), st.integers(1, 255)),
        min_size=1,
        max_size=4,
    )
)
def test_property_a_mutated_pack_or_index_never_gives_wrong_bytes(
    tmp_path_factory: pytest.TempPathFactory, flips: list[tuple[bool, int, int]]
) -> None:
    root = tmp_path_factory.mktemp("p")
    objects = small_objects(12, 2048, seed=13)
    write(root, objects)
    idx, pk = _only(root, ".idx"), _only(root, ".pack")
    for in_index, pos, mask in flips:
        target = idx if in_index else pk
        b = bytearray(target.read_bytes())
        b[pos % len(b)] ^= mask
        target.write_bytes(bytes(b))
    try:
        store = pack.PackStore(root)
    except ObjectCorrupt:
        return
    with store:
        if store.damaged:
            assert not store.packs  # the one pack was set aside, named
        for oid, data in objects.items():
            if not store.has(oid):
                continue
            try:
                got = store.read(oid)
            except ObjectCorrupt:
                continue
            assert got == data


def test_an_index_that_lies_under_a_valid_checksum_is_caught(tmp_path: Path) -> None:
    import blake3

    objects = small_objects(5, 4096, seed=14)
    write(tmp_path, objects)
    idx = _only(tmp_path, ".idx")
    b = bytearray(idx.read_bytes())
    # Entry 0's raw size (offset 48 + 48), then the trailer resealed: only fsck's
    # comparison with the object's own header can tell.
    b[96:104] = (5000).to_bytes(8, "little")  # the object has 4100
    b[-32:] = blake3.blake3(bytes(b[:-32])).digest()
    idx.write_bytes(bytes(b))
    with pack.PackStore(tmp_path) as store:
        first = min(objects)
        with pytest.raises(ObjectCorrupt, match="shorter than its entry"):
            store.read(first)
        problems = store.verify()
        assert [p.message for p in problems if "disagrees" in p.message]
        assert first[:12] in problems[0].message


def test_a_multi_block_object_streams_from_a_pack(tmp_path: Path) -> None:
    big = small_objects(1, 9 << 20, seed=15)
    write(tmp_path, big)
    ((oid, data),) = big.items()
    with pack.PackStore(tmp_path) as store:
        assert store.entry(oid).codec == codec.PLANES
        got = b"".join(bytes(c) for c in store.iter_raw(oid, bytearray(1 << 20)))
        assert got == data


def test_a_packed_delta_of_a_loose_v1_object(tmp_path: Path) -> None:
    """v1 stores keep working mixed with v2: a loose raw object serves as a delta base."""
    ((b_oid, base),) = small_objects(1, 64 * 1024, seed=16).items()
    loose = tmp_path / "store"
    (loose / b_oid[:2]).mkdir(parents=True)
    (loose / b_oid[:2] / b_oid[2:]).write_bytes(base)
    arr = np.frombuffer(base, np.uint8).copy()
    arr[1::4] ^= 3
    new = arr.tobytes()
    n_oid = oid_of(new)
    objects = pack.LooseObjects(loose)
    try:
        with pack.PackWriter(loose / "packs") as w:
            b = codec.base_from(objects, b_oid)
            e = w.add(n_oid, codec.bytes_reader(new), len(new), dtype=12, base=b)
            assert e is not None and e.codec == codec.XOR
            w.finish()
        with pack.PackStore(loose / "packs", fallback=objects) as store:
            assert store.read(n_oid) == new
            assert pack.needed_closure(store, {n_oid})[2] == {b_oid}  # keep it loose
            assert codec.chain_depth(store, n_oid) == 1
            (loose / b_oid[:2] / b_oid[2:]).chmod(0o644)
            damaged = bytearray(base)
            damaged[9] ^= 1
            (loose / b_oid[:2] / b_oid[2:]).write_bytes(bytes(damaged))
            with pytest.raises(ObjectCorrupt, match=f"delta base {b_oid[:12]}"):
                store.read(n_oid)
    finally:
        objects.close()


# -- groups: small objects encoded together (codec.GROUP index entries) -----------------


def _group_pack(root: Path, objects: dict[str, bytes]) -> bytes:
    """One pack holding ``objects`` in one group member; returns the member."""
    member = codec.encode_group(list(objects.items()), dtype=12)
    assert member is not None
    starts, at = [], 0
    for oid, data in objects.items():
        starts.append((oid, at, len(data), None, 0))
        at += len(data)
    with pack.PackWriter(root) as w:
        w.add_group(member, starts, 12)
        w.finish()
    return b"".join(member)


def test_grouped_objects_read_back_verified_and_the_index_says_version_2(tmp_path: Path) -> None:
    objects = small_objects(12, 16 * 1024, seed=20)
    member = _group_pack(tmp_path, objects)
    assert len(member) < 0.95 * sum(map(len, objects.values()))  # one frame, planes shrink
    idx = _only(tmp_path, ".idx")
    assert int.from_bytes(idx.read_bytes()[4:8], "little") == pack.GROUP_VERSION
    _, entries = pack.read_index(idx)
    assert {e.codec for e in entries} == {codec.GROUP} and len({e.offset for e in entries}) == 1
    assert sorted(e.start for e in entries) == [
        i * len(next(iter(objects.values()))) for i in range(12)
    ]
    # each object's share of the member: together, the member
    assert abs(sum(e.share for e in entries) - len(member)) < len(entries)
    with pack.PackStore(tmp_path) as store:
        for oid, data in objects.items():
            assert store.read(oid) == data
        assert store.verify() == []


@pytest.mark.parametrize("where", ["frame header", "mid-frame"])
def test_a_damaged_group_member_fails_the_objects_it_damages_by_name(
    tmp_path: Path, where: str
) -> None:
    objects = small_objects(8, 16 * 1024, seed=21)
    _group_pack(tmp_path, objects)
    path = _only(tmp_path, ".pack")
    b = bytearray(path.read_bytes())
    # a byte of a zstd-compressed plane (the exponents): every object has bytes in it
    pos = 16 + codec.HEADER_SIZE  # after the pack's header and the member's
    while True:
        word = int.from_bytes(b[pos : pos + 4], "little")
        if not word & (1 << 31):
            break
        pos += 4 + (word & ~(1 << 31))
    b[pos + 4 + (1 if where == "frame header" else word // 2)] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(b))
    failed = set()
    with pack.PackStore(tmp_path) as store:
        for oid, data in objects.items():
            try:
                got = store.read(oid)
            except ObjectCorrupt as exc:
                assert oid[:12] in exc.message and exc.hint
                failed.add(oid)
                continue
            assert got == data  # what is served is verified: never wrong bytes
        bad: set[str] = set()
        store.verify(bad)
    assert bad == failed and failed
    if where == "frame header":  # the frame does not decode: no object of it can be read
        assert failed == set(objects)


def test_an_index_with_group_entries_must_say_version_2(tmp_path: Path) -> None:
    import blake3

    _group_pack(tmp_path, small_objects(3, 16 * 1024, seed=22))
    idx = _only(tmp_path, ".idx")
    b = bytearray(idx.read_bytes())
    for version, why in [(1, "inconsistent"), (3, "upgrade")]:
        b[4:8] = version.to_bytes(4, "little")
        b[-32:] = blake3.blake3(bytes(b[:-32])).digest()
        idx.chmod(0o644)
        idx.write_bytes(bytes(b))
        with pytest.raises(ObjectCorrupt) as info:
            pack.read_index(idx)
        assert why in info.value.message + (info.value.hint or "")


def test_a_group_start_past_its_member_is_caught(tmp_path: Path) -> None:
    import blake3

    objects = small_objects(3, 16 * 1024, seed=23)
    _group_pack(tmp_path, objects)
    idx = _only(tmp_path, ".idx")
    b = bytearray(idx.read_bytes())
    # entry 0's start (the reserved bytes at 48 + 59), moved past the group's end
    b[48 + 59 : 48 + 64] = (3 * 16 * 1024).to_bytes(5, "little")
    b[-32:] = blake3.blake3(bytes(b[:-32])).digest()
    idx.chmod(0o644)
    idx.write_bytes(bytes(b))
    _, entries = pack.read_index(idx)
    first = min(objects)
    with pack.PackStore(tmp_path) as store, pytest.raises(ObjectCorrupt, match=first[:12]):
        store.read(first)
    assert entries[0].oid == first


def test_encode_group_takes_whole_elements_and_declines_noise() -> None:
    rng = np.random.default_rng(24)
    noise = [(oid_of(d), d) for d in (rng.bytes(4096) for _ in range(4))]
    assert codec.encode_group(noise, dtype=12) is None  # random bytes: nothing to gain
    with pytest.raises(ValueError, match="whole elements"):
        codec.encode_group([(oid_of(b"abc"), b"abc")], dtype=12)
    too_big = [(oid_of(d), d) for d in (bytes(codec.GROUP_MAX // 2 + 4) for _ in range(2))]
    with pytest.raises(ValueError, match="GROUP_MAX"):
        codec.encode_group(too_big, dtype=12)


def test_a_group_entry_on_a_member_that_is_no_group_is_refused(tmp_path: Path) -> None:
    """An index may point grouped entries at any member: one that is not a single
    planes+zstd block (here a raw one) is damage, named, and nothing is returned."""
    ((oid, data),) = small_objects(1, 16 * 1024, seed=25).items()
    with pack.PackWriter(tmp_path) as w:
        w.add_group([pack.raw_header(len(data)), data], [(oid, 0, len(data), None, 0)], 12)
        w.finish()
    with pack.PackStore(tmp_path) as store:
        with pytest.raises(ObjectCorrupt, match="not one planes\\+zstd block") as info:
            store.read(oid)
        assert oid[:12] in info.value.message
        assert store.verify()  # fsck names it too


def test_grouped_deltas_read_back_through_their_bases(tmp_path: Path) -> None:
    bases = small_objects(6, 16 * 1024, seed=26)
    _group_pack(tmp_path, bases)
    rng = np.random.default_rng(27)
    tuned = {}
    for oid, data in bases.items():  # a dense fine-tune: every weight a little off
        x = np.frombuffer(data, np.float32) * (1 + rng.standard_normal(len(data) // 4) * 1e-4)
        new = x.astype(np.float32).tobytes()
        tuned[oid_of(new)] = (new, oid)
    items = [(o, codec.xor(d, bases[b])) for o, (d, b) in tuned.items()]
    member = codec.encode_group(items, dtype=12)
    assert member is not None
    assert sum(map(len, member)) < 0.6 * sum(len(d) for d, _ in tuned.values())
    rows, at = [], 0
    for o, (d, b) in tuned.items():
        rows.append((o, at, len(d), b, 1))
        at += len(d)
    with pack.PackWriter(tmp_path) as w:
        w.add_group(member, rows, 12)
        w.finish()
    with pack.PackStore(tmp_path) as store:
        for o, (d, b) in tuned.items():
            e = store.entry(o)
            assert (e.codec, e.base, e.depth) == (codec.GROUP, b, 1)
            assert store.read(o) == d
        assert store.verify() == []


def test_grouped_deltas_that_loop_are_refused_not_followed_forever(tmp_path: Path) -> None:
    (a, da), (b, db) = small_objects(2, 16 * 1024, seed=28).items()
    member = codec.encode_group([(a, da), (b, db)], dtype=12)
    assert member is not None
    with pack.PackWriter(tmp_path) as w:  # a hostile index: a's base is b, b's is a
        w.add_group(member, [(a, 0, len(da), b, 1), (b, len(da), len(db), a, 1)], 12)
        w.finish()
    with pack.PackStore(tmp_path) as store:
        for oid in (a, b):
            with pytest.raises(ObjectCorrupt) as info:
                store.read(oid)
            assert "delta" in info.value.message and info.value.hint


def _grouped_pack(root: Path) -> dict[str, bytes]:
    """A pack of one plain group and one group of deltas on it; returns every object."""
    bases = small_objects(6, 4096, seed=29)
    objects = dict(bases)
    rng = np.random.default_rng(30)
    deltas: list[tuple[str, int, int, str | None, int]] = []
    xored: list[tuple[str, bytes]] = []
    at = 0
    for b_oid, data in bases.items():
        x = np.frombuffer(data, np.float32) * (1 + rng.standard_normal(len(data) // 4) * 1e-4)
        new = x.astype(np.float32).tobytes()
        o = oid_of(new)
        objects[o] = new
        xored.append((o, codec.xor(new, data)))
        deltas.append((o, at, len(new), b_oid, 1))
        at += len(new)
    plain = codec.encode_group(list(bases.items()), dtype=12)
    member = codec.encode_group(xored, dtype=12)
    assert plain is not None and member is not None
    starts = list(itertools.accumulate((len(d) for d in bases.values()), initial=0))
    with pack.PackWriter(root) as w:
        w.add_group(
            plain,
            [(o, s, len(d), None, 0) for (o, d), s in zip(bases.items(), starts, strict=False)],
            12,
        )
        w.add_group(member, deltas, 12)
        w.finish()
    return objects


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    flips=st.lists(
        st.tuples(st.booleans(), st.booleans(), st.integers(0, 1 << 30), st.integers(1, 255)),
        min_size=1,
        max_size=4,
    )
)
def test_property_a_mutated_pack_of_groups_never_gives_wrong_bytes(
    tmp_path_factory: pytest.TempPathFactory, flips: list[tuple[bool, bool, int, int]]
) -> None:
    """Groups and grouped deltas, their pack or index damaged -- the index resealed under
    a valid checksum too, so that only its entries' own checks stand: every object read
    is exact or an ObjectCorrupt / ObjectMissing naming it, never another error."""
    import blake3

    root = tmp_path_factory.mktemp("g")
    objects = _grouped_pack(root)
    idx, pk = _only(root, ".idx"), _only(root, ".pack")
    for in_index, reseal, pos, mask in flips:
        target = idx if in_index else pk
        target.chmod(0o644)
        b = bytearray(target.read_bytes())
        b[pos % len(b)] ^= mask
        if in_index and reseal:
            b[-32:] = blake3.blake3(bytes(b[:-32])).digest()
        target.write_bytes(bytes(b))
    try:
        store = pack.PackStore(root)
    except ObjectCorrupt:
        return
    with store:
        for oid, data in objects.items():
            if not store.has(oid):
                continue
            try:
                got = store.read(oid)
            except (ObjectCorrupt, ObjectMissing) as exc:
                assert exc.hint
                continue
            assert got == data
