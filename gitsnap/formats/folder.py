"""A folder as one checkpoint: Hugging Face sharded safetensors, or any set of files.

``save_pretrained`` writes a model as a folder: ``config.json``, tokenizer
files, and the weights split into shards (``model-00001-of-00004.safetensors``
...) named by ``model.safetensors.index.json``. Such a folder is one
snapshot: every file is read by the reader its content selects (safetensors
shards get one segment per tensor, small files are whole-file blobs, big
unknown files CDC chunks), and the pointer lists each file once and each
tensor once, with the file it lives in.

Which files belong to the folder: every regular file below it, and every
symlink to a regular file (the Hugging Face cache links snapshot files to
blobs; the link's target bytes are what is saved, and a restore writes a
regular file). Left out, and never touched by a restore (:func:`foreign_entries`):
``.git`` and ``.dvc`` folders in any spelling git refuses (a cloned model
repository's git objects are not the checkpoint, and a pointer may never
name a path inside one), names ending in gitsnap's temp suffixes, and
anything that is neither a regular file nor a folder (a fifo, a socket, a
dangling symlink, a symlink to a folder).

A Trainer's ``trainer_state.json`` is saved as bytes like any small file; its
scalars (global_step, epoch, best_metric, the last log entry) are also recorded
in the pointer's metadata (:func:`trainer_state`), so that a diff shows them.

An index (``*.index.json`` with a ``weight_map``) is checked against the
shards: every tensor it names must be in the shard it names. A mismatch is
what a folder looks like while a training job is still writing it, so it is
an error rather than a snapshot nobody can load.
"""

from __future__ import annotations

import functools
import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from gitsnap.errors import FormatError, PathError
from gitsnap.formats.base import Layout
from gitsnap.paths import reserved_component

TEMP_SUFFIXES = (".gitsnap-tmp", ".gitsnap-old")
MAX_INDEX = 64 * 1024 * 1024


@dataclass(frozen=True)
class FolderLayout:
    format: str  # "sharded-safetensors", "sharded-torch" or "folder"
    files: list[tuple[str, Layout]]  # (POSIX path relative to the folder, its layout), sorted
    metadata: dict[str, Any]

    @property
    def size(self) -> int:
        return sum(layout.size for _, layout in self.files)


def list_files(folder: Path) -> list[str]:
    """POSIX paths, relative to ``folder``, of the files that make up the checkpoint; sorted."""
    return _walk(folder)[0]


def foreign_entries(folder: Path) -> list[str]:
    """POSIX paths, relative to ``folder``, of entries that are not part of the checkpoint.

    The top-most ones: a nested ``.git`` is one entry. A restore keeps them
    (they are not gitsnap's to delete); see the module docstring.
    """
    return _walk(folder)[1]


def _walk(folder: Path) -> tuple[list[str], list[str]]:
    files: list[str] = []
    foreign: list[str] = []

    def visit(directory: Path, rel: PurePosixPath | None) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except NotADirectoryError:
            return
        for entry in entries:
            child = PurePosixPath(entry.name) if rel is None else rel / entry.name
            if entry.name.endswith(TEMP_SUFFIXES) or reserved_component([entry.name]):
                foreign.append(child.as_posix())
                continue
            if entry.is_dir(follow_symlinks=False):
                visit(Path(entry.path), child)
                continue
            try:
                st = Path(entry.path).stat()  # follows a symlink
            except (FileNotFoundError, NotADirectoryError):
                foreign.append(child.as_posix())  # a dangling symlink holds no bytes
                continue
            if stat.S_ISREG(st.st_mode):
                files.append(child.as_posix())
            else:
                foreign.append(child.as_posix())

    visit(folder, None)
    return sorted(files), sorted(foreign)


def fingerprint(folder: Path, stats: dict[str, os.stat_result] | None = None) -> os.stat_result:
    """A stat result standing for the whole folder, for the stat cache.

    ``st_size`` is the total of the files, ``st_mtime_ns`` the newest mtime
    of any file or sub-folder, and ``st_ino`` a hash of every file's path,
    size, mtime, inode and execute bit: it changes when any file is added, removed,
    replaced or touched, which a folder's own stat would not show.
    ``stats`` (relative path -> stat) are stats already taken, e.g. before a
    save read the files; without it the files are listed and stat'ed now.
    """
    import hashlib

    h = hashlib.blake2b(digest_size=8)
    total = 0
    newest = folder.stat().st_mtime_ns
    if stats is None:
        stats = {rel: (folder / rel).stat() for rel in list_files(folder)}
    for rel, st in sorted(stats.items()):
        total += st.st_size
        newest = max(newest, st.st_mtime_ns)
        # chmod +x changes what a save records (FileEntry.executable), not the mtime.
        x = "\0x" if st.st_mode & stat.S_IXUSR else ""
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{st.st_dev}{x}\n".encode())
    base = folder.stat()
    ino = int.from_bytes(h.digest(), "little") >> 1
    secs = newest // 1_000_000_000
    full: list[Any] = [base.st_mode, ino, base.st_dev, base.st_nlink, base.st_uid, base.st_gid,
                       total, secs, secs, secs]  # fmt: skip
    full += [None] * (os.stat_result.n_fields - len(full))
    # The float and _ns fields live past the sequence part of the tuple.
    order = _extra_field_order()
    for name in ("st_atime", "st_mtime", "st_ctime"):
        full[order[name]] = newest / 1e9
    for name in ("st_atime_ns", "st_mtime_ns", "st_ctime_ns"):
        full[order[name]] = newest
    return os.stat_result(full)


@functools.cache
def _extra_field_order() -> dict[str, int]:
    """Index of each named stat field in the full tuple that ``os.stat_result`` accepts."""
    probe = os.stat_result(list(range(os.stat_result.n_fields)))
    order = {}
    for name in dir(probe):
        if name.startswith("st_"):
            value = getattr(probe, name)
            if isinstance(value, int) and value >= os.stat_result.n_sequence_fields:
                order[name] = value
    return order


def read_folder(folder: Path, read_layout: Any) -> FolderLayout:
    """Read every file of ``folder`` with ``read_layout`` (the registry's) and check any index."""
    rels = list_files(folder)
    if not rels:
        raise PathError(
            f"{folder}: the folder holds no files", hint="give a folder with a checkpoint in it"
        )
    files = [(rel, read_layout(folder / rel)) for rel in rels]
    by_rel = dict(files)
    fmt = "folder"
    for rel in rels:
        if rel.endswith(".index.json"):
            kind = _check_index(folder, rel, by_rel)
            if kind is not None and fmt == "folder":
                fmt = f"sharded-{kind}"
    metadata: dict[str, Any] = {}
    for rel, layout in files:
        for key, value in layout.metadata.items():
            metadata[f"{rel}:{key}"] = value
        if PurePosixPath(rel).name == "trainer_state.json":
            for key, value in trainer_state(folder / rel).items():
                metadata[f"{rel}:{key}"] = value
    return FolderLayout(fmt, files, dict(sorted(metadata.items())))


def trainer_state(path: Path) -> dict[str, Any]:
    """The scalars a reviewer compares in a Trainer's ``trainer_state.json``.

    ``global_step``, ``epoch``, ``max_steps``, ``num_train_epochs``, ``best_metric``,
    ``best_model_checkpoint``, and the scalars of the last ``log_history`` entry as
    ``last_log.<key>`` (loss, learning_rate, ...). Bounded: a file over
    ``MAX_TRAINER_STATE`` bytes, or not JSON, records nothing (it is still saved as bytes);
    strings are cut at ``MAX_STATE_STR`` characters, at most ``MAX_LOG_KEYS`` log keys.
    """
    try:
        if path.stat().st_size > MAX_TRAINER_STATE:
            return {}
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, Any] = {}
    for key in _TRAINER_KEYS:
        value = _state_scalar(data.get(key, _MISSING))
        if value is not _MISSING:
            out[key] = value
    log = data.get("log_history")
    if isinstance(log, list) and log and isinstance(log[-1], dict):
        for key, raw in sorted(log[-1].items())[:MAX_LOG_KEYS]:
            value = _state_scalar(raw)
            if value is not _MISSING and isinstance(key, str) and len(key) <= MAX_STATE_STR:
                out[f"last_log.{key}"] = value
    return out


MAX_TRAINER_STATE = 16 * 1024 * 1024
MAX_STATE_STR = 256
MAX_LOG_KEYS = 32
_TRAINER_KEYS = (
    "global_step",
    "epoch",
    "max_steps",
    "num_train_epochs",
    "best_metric",
    "best_model_checkpoint",
)
_MISSING: Any = object()


def _state_scalar(v: Any) -> Any:
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v if -(2**63) <= v < 2**63 else _MISSING
    if isinstance(v, float):
        return v if math.isfinite(v) else _MISSING
    if isinstance(v, str):
        return v[:MAX_STATE_STR]
    return _MISSING


def _check_index(folder: Path, rel: str, layouts: dict[str, Layout]) -> str | None:
    """Validate a Hugging Face index; return the shards' format, or None if it is not an index."""
    path = folder / rel
    if path.stat().st_size > MAX_INDEX:
        return None
    try:
        index = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        return None
    base = PurePosixPath(rel).parent
    names: dict[str, set[str]] = {}
    kinds: set[str] = set()
    for tensor, shard in sorted(weight_map.items()):
        if (
            not isinstance(shard, str)
            or not shard
            or ".." in PurePosixPath(shard).parts
            or shard.startswith("/")
        ):
            raise _bad(rel, f"tensor {tensor!r} names an invalid shard {shard!r}")
        shard_rel = (base / shard).as_posix()
        layout = layouts.get(shard_rel)
        if layout is None:
            raise _bad(rel, f"tensor {tensor!r} is in shard {shard!r}, which is not in the folder")
        if shard_rel not in names:
            names[shard_rel] = {s.tensor.name for s in layout.segments if s.tensor is not None}
            names[shard_rel] |= {v.tensor.name for v in layout.views}
            kinds.add(layout.format)
        if tensor not in names[shard_rel]:
            raise _bad(rel, f"tensor {tensor!r} is not in its shard {shard!r}")
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _bad(rel: str, what: str) -> FormatError:
    return FormatError(
        f"{rel}: the shard index does not match the shards: {what}",
        hint="the checkpoint may still be being written; wait for the save to finish "
        "(or re-save it with save_pretrained) and try again",
    )
