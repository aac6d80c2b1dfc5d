"""``gitsnap.open`` / ``load`` / ``export``: any snapshot's tensors from code, lazily.

A :class:`Reader` is ``safetensors.safe_open``-like: :meth:`~Reader.keys`,
:meth:`~Reader.metadata`, :meth:`~Reader.get_tensor` and
:meth:`~Reader.get_slice`, plus :attr:`~Reader.commit` and
:attr:`~Reader.snapshot` for reproducibility. The revision is resolved by
:mod:`gitsnap.revisions` (git revisions and registry references); the
pointer is read from that commit (or the work tree) and the work tree is never
written. A tensor's bytes are its own object in the store (DESIGN D1), so a
read touches that object only; an object the local store lacks is downloaded
alone from the default DVC remote, verified (:meth:`gitsnap.remote.Remote.download`),
and every object is re-hashed as it is read (D9).

Tensor names are the pointer's. In a folder checkpoint a name that more than
one file holds is keyed ``FILE/NAME`` (``model-00001-of-00002.safetensors/x``)
for each of them; a name held by one file keeps its own name.

dtypes: numpy has no bfloat16 nor float8, so with ``framework="np"`` BF16 and
the F8 formats are widened exactly to float32; with ``framework="pt"`` they
are the exact torch dtypes. A dtype the framework cannot hold is a
:class:`~gitsnap.errors.FormatError`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitsnap import revisions
from gitsnap.errors import (
    FormatError,
    ObjectMissing,
    PathError,
    PointerError,
    RemoteError,
    UsageError,
)
from gitsnap.formats.base import contiguous_strides
from gitsnap.hashing import hasher
from gitsnap.pointer.peek import SUFFIX, is_pointer
from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from types import TracebackType
    from typing import TypeAlias

    import numpy.typing as npt
    import torch

    from gitsnap.pointer import Entry, Pointer
    from gitsnap.remote import Remote
    from gitsnap.remote.packs import RemotePacks

if TYPE_CHECKING:
    Tensor: TypeAlias = npt.NDArray[Any] | torch.Tensor  # numpy for "np", torch for "pt"

FRAMEWORKS = ("np", "pt")
_CHUNK = 8 * 1024 * 1024

# dtype name -> (little-endian numpy dtype, bytes per element); BF16/F8 are read as
# integers and widened (numpy has no such type).
_NP = {
    "BOOL": ("u1", 1), "U8": ("u1", 1), "I8": ("i1", 1), "U16": ("<u2", 2), "I16": ("<i2", 2),
    "U32": ("<u4", 4), "I32": ("<i4", 4), "U64": ("<u8", 8), "I64": ("<i8", 8),
    "F16": ("<f2", 2), "F32": ("<f4", 4), "F64": ("<f8", 8), "BF16": ("<u2", 2),
    "F8_E4M3": ("u1", 1), "F8_E5M2": ("u1", 1), "F8_E8M0": ("u1", 1),
}  # fmt: skip
_WIDENED = frozenset({"BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0"})
_TORCH = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16",
    "U32": "uint32", "I32": "int32", "U64": "uint64", "I64": "int64", "F16": "float16",
    "F32": "float32", "F64": "float64", "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu",
}  # fmt: skip


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote: the checkpoint at ``target``, byte-identical to the snapshot."""

    path: str  # repository-relative checkpoint path
    target: str
    snapshot: str
    commit: str | None  # None: the work tree's pointer
    size: int


def resolve(ws: Workspace, path: str | os.PathLike[str] | None, rev: str | None) -> tuple[
    str, str | None, Pointer
]:  # fmt: skip
    """(checkpoint path, commit or None, pointer) of ``path`` at ``rev`` (None: the work tree).

    ``path`` may be left out with a registry reference: the model's own path.
    """
    from gitsnap.pointer import loads

    model = revisions.model_ref(ws, rev)
    if path is None:
        if model is None:
            raise UsageError(
                "no checkpoint path given", hint="gitsnap.open('models/model.safetensors', rev=...)"
            )
        rel = model.path
    else:
        rel = ws.relpath(path)
    if rev is None:
        ptr = ws.read_pointer(rel)
        if ptr is None:
            raise PathError(
                f"{ws.display(rel)} has no snapshot in the work tree (no {rel}{SUFFIX})",
                hint=f"git snap save {ws.display(rel)} records one; git snap ls lists checkpoints",
            )
        return rel, None, ptr
    if model is not None:
        commit: str | None = model.commit
    else:
        commit = revisions.commit_or_none(ws.root, rev)
        if commit is None:
            raise UsageError(
                f"unknown revision: {rev}",
                hint="give a commit, branch or tag (git log), or NAME@VERSION / NAME#STAGE "
                "(git snap ls)",
            )
    assert commit is not None
    raw = revisions.blob_at(ws, commit, rel)
    if raw is None or not is_pointer(raw):
        raise PathError(
            f"{ws.display(rel)} has no snapshot at {rev}",
            hint=f"git snap log {ws.display(rel)} lists the commits that have one",
        )
    return rel, commit, loads(raw, source=f"{rev}:{rel}{SUFFIX}")


class TensorSlice:
    """``safe_open(...).get_slice(name)``'s counterpart: shape and dtype without reading.

    Indexing reads the tensor's object (one object per tensor: there is no
    cheaper read) and slices it.
    """

    def __init__(self, reader: Reader, key: str, entry: Entry) -> None:
        self._reader, self._key, self._entry = reader, key, entry

    def get_shape(self) -> list[int]:
        return list(self._entry.shape or ())

    def get_dtype(self) -> str:
        return self._entry.dtype or ""

    def __getitem__(self, index: Any) -> Tensor:
        return self._reader.get_tensor(self._key)[index]


class Reader:
    """One snapshot's tensors, read on demand. Use as a context manager (see the module doc)."""

    def __init__(
        self, ws: Workspace, rel: str, commit: str | None, pointer: Pointer, framework: str
    ) -> None:
        if framework not in FRAMEWORKS:
            raise UsageError(
                f"unknown framework {framework!r}", hint="framework='np' (numpy) or 'pt' (torch)"
            )
        if framework == "pt":
            from gitsnap._optional import require_torch

            require_torch("framework='pt'")
        self.path = rel
        self.commit = commit
        self.pointer = pointer
        self.snapshot = pointer.id
        self.framework = framework
        self._ws = ws
        self._store = ws.store
        self._remote: Remote | None = None
        self._packs: RemotePacks | None = None  # the remote's pack indexes, read on first need
        self.fetched = 0  # objects downloaded by this reader
        self._entries = _keyed(pointer)

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._remote = None

    def keys(self) -> list[str]:
        return list(self._entries)

    def metadata(self) -> dict[str, Any]:
        """The checkpoint's format metadata (safetensors ``__metadata__``, a ``.pt``'s scalars)."""
        return dict(self.pointer.metadata)

    def get_slice(self, name: str) -> TensorSlice:
        return TensorSlice(self, name, self._entry(name))

    def get_tensor(self, name: str) -> Tensor:
        """Tensor ``name`` as a numpy array (``framework="np"``) or a torch tensor (``"pt"``)."""
        e = self._entry(name)
        dtype = e.dtype or ""
        if dtype not in _NP:
            raise FormatError(
                f"{self._label(e)}: dtype {dtype!r} cannot be handed to "
                f"{'torch' if self.framework == 'pt' else 'numpy'}",
                hint="gitsnap.export(...) writes the checkpoint itself; read it with its own tool",
            )
        shape = tuple(e.shape or ())
        item = _NP[dtype][1]
        count = 1
        for d in shape:
            count *= d
        strides = e.stride if e.stride is not None else contiguous_strides(shape)
        if len(strides) != len(shape) or any(s < 0 for s in strides):
            raise PointerError(f"{self._label(e)}: stride {strides} does not fit shape {shape}")
        span = (
            0 if count == 0 else 1 + sum((d - 1) * s for d, s in zip(shape, strides, strict=True))
        )
        if span * item > e.size or (e.stride is None and not e.view and count * item != e.size):
            raise PointerError(
                f"{self._label(e)}: shape {list(shape)} of {dtype} does not fit its {e.size} bytes",
                hint="restore the pointer from git or re-save the checkpoint",
            )
        data = self._bytes(e) if count else bytearray()
        if self.framework == "pt":
            return _to_torch(data, dtype, shape, strides)
        return _to_numpy(data, dtype, shape, strides)

    # ------------------------------------------------------------ bytes

    def _entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise PathError(
                f"no tensor {name!r} in {self.path} (snapshot {self.snapshot[:12]})",
                hint="reader.keys() lists its tensors",
            ) from None

    def _label(self, e: Entry) -> str:
        return f"{e.label} of {self.path}"

    def _bytes(self, e: Entry) -> bytearray:
        """The tensor's bytes: its own object, or a view's span of the segments that hold it."""
        if not e.view:
            return self._object(e.oid, e.size, self._label(e))
        end = e.offset + e.size
        parts = [
            s for s in self.pointer.segments()
            if s.file == e.file and s.offset < end and s.offset + s.size > e.offset
        ]  # fmt: skip
        held = sum(min(s.offset + s.size, end) - max(s.offset, e.offset) for s in parts)
        if held != e.size:
            raise PointerError(
                f"{self._label(e)}: its bytes [{e.offset}, {end}) are not all held "
                "by the snapshot's segments",
                hint="restore the pointer from git or re-save the checkpoint",
            )
        out = bytearray(e.size)
        for s in parts:
            data = self._object(s.oid, s.size, f"{s.label} (holding {self._label(e)})")
            lo, hi = max(s.offset, e.offset), min(s.offset + s.size, end)
            out[lo - e.offset : hi - e.offset] = data[lo - s.offset : hi - s.offset]
        # Each segment was verified; the view's own id checks that the pointer placed it right.
        h = hasher(e.size)
        h.update(out)
        if h.hexdigest() != e.oid:
            raise PointerError(
                f"{self._label(e)}: the bytes at [{e.offset}, {end}) do not match its id",
                hint="restore the pointer from git or re-save the checkpoint",
            )
        return out

    def _object(self, oid: str, size: int, label: str) -> bytearray:
        """One object's bytes, fetched alone if missing, re-hashed as read (an error if not)."""
        store = self._store
        if not store.has(oid):
            if self._remote is None:
                from gitsnap.remote import open_remote

                try:
                    self._remote = open_remote(self._ws.require_dvc(), None, 1)
                except RemoteError as exc:
                    raise ObjectMissing(
                        f"{label} is missing from the local store and cannot be fetched: "
                        f"{exc.message}",
                        hint=exc.hint,
                    ) from None
            from gitsnap.remote import packs

            if self._packs is None:
                self._packs = packs.load(self._remote, store, 1)
            packs.fetch_one(self._remote, store, self._packs, oid, size=size, label=label)
            self.fetched += 1
        # A size no object has is the pointer's fault, said before anything is allocated.
        store.check_sizes([(oid, size, label)])
        out = bytearray(size)
        pos = 0
        for chunk in store.iter_verified(oid, size, label, bytearray(min(size, _CHUNK) or 1)):
            n = min(len(chunk), size - pos)
            out[pos : pos + n] = chunk[:n]
            pos += len(chunk)
        return out


def _keyed(ptr: Pointer) -> dict[str, Entry]:
    """Key -> tensor entry; names that several files of a folder hold become ``FILE/NAME``."""
    tensors = [e for e in ptr.tensors if e.name is not None]
    seen: dict[str, int] = {}
    for e in tensors:
        assert e.name is not None
        seen[e.name] = seen.get(e.name, 0) + 1
    out: dict[str, Entry] = {}
    for e in tensors:
        assert e.name is not None
        key = f"{e.file}/{e.name}" if seen[e.name] > 1 and e.file else e.name
        out.setdefault(key, e)
    return out


def _to_numpy(
    data: bytearray, dtype: str, shape: tuple[int, ...], strides: tuple[int, ...]
) -> npt.NDArray[Any]:
    import numpy as np

    code, item = _NP[dtype]
    flat = np.frombuffer(data, dtype=np.dtype(code))
    if not flat.size:
        arr = np.zeros(shape, dtype=np.dtype(code))
    elif strides == contiguous_strides(shape):
        arr = flat[: math.prod(shape)].reshape(shape)  # no copy: the array owns ``data``
    else:
        arr = np.lib.stride_tricks.as_strided(
            flat, shape=shape, strides=tuple(s * item for s in strides), writeable=False
        ).copy()
    if dtype == "BOOL":  # any non-zero byte is True, as torch and numpy read it
        return np.not_equal(arr, 0)
    if dtype not in _WIDENED:
        return arr.astype(np.dtype(code).newbyteorder("="), copy=False)
    from gitsnap.stats import BLOCK, widener

    # Widened exactly, a block at a time: the widener's result is a reused scratch buffer.
    _raw, widen = widener(dtype)
    src = arr.reshape(-1)
    out = np.empty(src.size, dtype=np.float32)
    for i in range(0, src.size, BLOCK):
        out[i : i + BLOCK] = widen(src[i : i + BLOCK])
    return out.reshape(shape)


def _to_torch(
    data: bytearray, dtype: str, shape: tuple[int, ...], strides: tuple[int, ...]
) -> torch.Tensor:
    import torch

    tdtype = getattr(torch, _TORCH[dtype], None)
    if tdtype is None:
        raise FormatError(
            f"this torch ({torch.__version__}) has no {_TORCH[dtype]} for dtype {dtype}",
            hint="use framework='np' (widened to float32) or a newer torch",
        )
    if not data:
        return torch.zeros(shape, dtype=tdtype)
    if dtype == "BOOL":  # any non-zero byte is True
        return torch.frombuffer(data, dtype=torch.uint8).as_strided(shape, strides).ne(0)
    return torch.frombuffer(data, dtype=tdtype).as_strided(shape, strides).clone()


def open(
    path: str | os.PathLike[str] | None,
    rev: str | None = None,
    *,
    framework: str = "np",
    cwd: Path | None = None,
) -> Reader:
    """A lazy reader of checkpoint ``path``'s snapshot at ``rev`` (None: the work tree's pointer).

    Example::

        with gitsnap.open("models/model.safetensors", rev="classifier@v1.2.0") as f:
            w = f.get_tensor("head.weight")
            print(f.commit, f.snapshot)
    """
    ws = Workspace.discover(cwd)
    rel, commit, ptr = resolve(ws, path, rev)
    return Reader(ws, rel, commit, ptr, framework)


def load(
    path: str | os.PathLike[str] | None,
    rev: str | None = None,
    *,
    framework: str = "pt",
    cwd: Path | None = None,
) -> dict[str, Tensor]:
    """Every tensor of the snapshot, name -> tensor: a state dict for ``model.load_state_dict``.

    Example::

        model.load_state_dict(gitsnap.load("models/model.safetensors", rev="HEAD~1"))
    """
    with open(path, rev, framework=framework, cwd=cwd) as f:
        if not f.keys():
            # An empty dict would load "successfully" into nothing (strict=False) or fail
            # far from here: a checkpoint stored as opaque chunks has no tensor list.
            raise FormatError(
                f"the snapshot of {f.path} ({f.pointer.format}) lists no tensors",
                hint="gitsnap.export(PATH, rev=..., to=DIR) writes the file itself",
            )
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a Reader is no dict)


def export(
    path: str | os.PathLike[str] | None,
    rev: str | None = None,
    *,
    to: str | os.PathLike[str],
    force: bool = False,
    cwd: Path | None = None,
) -> ExportResult:
    """Write the snapshot's checkpoint byte-exactly below folder ``to``, at its repository path
    (``to/models/model.safetensors``, as ``checkout --to``); the work tree is untouched.

    Example::

        gitsnap.export("models/model.safetensors", rev="v1.0.0", to="/tmp/v1")
    """
    from gitsnap.commands.checkout import restore_selected, select

    ws = Workspace.discover(cwd)
    rel, commit, _ptr = resolve(ws, path, rev)
    selected = [s for s in select(ws, rev, [rel], revisions.Parser()) if s.path == rel]
    [done] = restore_selected(ws, selected, to=to, force=force)
    return ExportResult(rel, done.target, done.snapshot_id, commit, done.size)
