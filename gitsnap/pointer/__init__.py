"""The ``.snap`` pointer file: parse and dump, in exactly one canonical encoding.

A pointer records one snapshot of a checkpoint. It lives next to the
checkpoint as ``<checkpoint path>.snap`` and is committed to git; the weight
bytes live in the object store. The full specification is
``docs/pointer-format.md``; this docstring is its short form.

Encoding
    UTF-8 YAML, LF line ends, within the limits of :mod:`gitsnap.pointer.limits`
    (64 MiB; 2 MiB if not canonical; 32 levels; 250,000 entries; no aliases).
    The first line is always ``gitsnap: 1`` (the format version). The
    remaining top-level keys follow in sorted order. ``tensors`` and
    ``blobs`` are block sequences with one flow mapping per line
    (``- {name: ..., dtype: F32, ...}``) so that ``git diff`` shows one
    changed line per changed tensor. Other values are written by PyYAML's
    safe dumper with sorted keys in block style. Floats in stats are rounded
    to 7 significant digits. Saving the same checkpoint with the same
    message, metrics and params yields identical bytes.

Keys
    gitsnap   int, format version (this reader understands 1)
    id        hex BLAKE3 of the layout (see :func:`layout_id`): the snapshot id
    parent    id of the previous snapshot at the same path, or null (lineage)
    path      repository-relative path of the checkpoint when it was saved
    format    the reader that segmented the file (``safetensors``, ``raw``, ...)
    size      total bytes of the checkpoint
    hash      object hash algorithm, ``blake3``
    created   UTC time of the save, ISO 8601 (``SOURCE_DATE_EPOCH`` honoured)
    message   free text (``-m``), may be empty
    metrics   mapping of flat dotted names to numbers/strings/bools
    params    same, for hyper-parameters
    tool      mapping: gitsnap, python and torch versions at save time
    env       optional mapping, the environment of the save: ``python``,
              ``packages`` (the ML stack's installed versions), ``installed``
              (how many distributions) and ``digest`` (BLAKE3 of the whole set)
    metadata  format-level metadata (e.g. safetensors ``__metadata__``)
    files     only for a folder checkpoint: one ``{path, size, format}`` per
              file, sorted by path (POSIX, relative to the folder, no ``..``)
    blobs     segments that are not tensors: ``{[file,] offset, size, oid, role}``
    tensors   one per tensor, in file order: ``{name, [file,] dtype, shape,
              offset, size, oid, [view, stride]}`` then stats ``count,
              nonfinite, mean, std, min, max, l2`` (stats absent for empty or
              all-non-finite tensors)

Reassembly: the union of ``blobs`` and ``tensors`` sorted by ``offset`` tiles
``[0, size)`` exactly; concatenating their objects rebuilds the file byte for
byte. In a folder pointer every entry names its ``file`` and the entries of
each file tile ``[0, file size)``; ``size`` is the sum of the file sizes.
A tensor entry with ``view: true`` takes no part in the layout: its bytes are
``[offset, offset + size)`` of its file, held by other segments (a tensor
sharing a PyTorch storage with another), ``stride`` gives its element strides
when it is not contiguous, and its ``oid`` is the BLAKE3 of those bytes, not
a stored object. Keys this version does not know, at top level or inside a
tensor or blob entry, are kept and written back unchanged (sorted after the
known ones).

The package
    ``peek``      cheap looks at bytes (is it gitsnap's, its id, its objects); no YAML
    ``model``     the dataclasses and the snapshot id
    ``validate``  one set of rules for what either reader produced
    ``write``     the canonical writer
    ``read``      ``loads``: limits, then ``fast`` (the line reader), else ``safeyaml``
    ``limits``    the hard limits on hostile input
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gitsnap.errors import PointerError  # callers catch it where they load

if TYPE_CHECKING:
    from gitsnap.pointer.limits import MAX_POINTER_BYTES
    from gitsnap.pointer.model import (
        HASH_ALGO,
        PICKLE_KINDS,
        STAT_KEYS,
        VERSION,
        Entry,
        FileEntry,
        PickleRecord,
        Pointer,
        colliding_names,
        layout_id,
        qualified_name,
        round_stat,
        safe_relpath,
    )
    from gitsnap.pointer.peek import (
        HEAD,
        NOTES_REF,
        SUFFIX,
        checkpoint_path_for,
        is_pointer,
        peek_id,
        pointer_path_for,
        scan_oids,
    )
    from gitsnap.pointer.read import load_yaml, loads
    from gitsnap.pointer.validate import from_dict
    from gitsnap.pointer.write import dumps

# The names below load their module on first use (PEP 562): a hook that only
# peeks (gitsnap.pointer.peek, imported by gitio) pays for the peek alone.
_HOME = {
    "MAX_POINTER_BYTES": "limits",
    **dict.fromkeys(
        (
            "HASH_ALGO", "PICKLE_KINDS", "STAT_KEYS", "VERSION",
            "Entry", "FileEntry", "PickleRecord", "Pointer", "layout_id", "round_stat",
            "safe_relpath", "colliding_names", "qualified_name",
        ),
        "model",
    ),
    **dict.fromkeys(
        (
            "HEAD", "NOTES_REF", "SUFFIX", "checkpoint_path_for", "is_pointer", "peek_id",
            "pointer_path_for", "scan_oids",
        ),
        "peek",
    ),
    "load_yaml": "read",
    "loads": "read",
    "from_dict": "validate",
    "dumps": "write",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'gitsnap.pointer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"gitsnap.pointer.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "HASH_ALGO",
    "HEAD",
    "MAX_POINTER_BYTES",
    "NOTES_REF",
    "PICKLE_KINDS",
    "STAT_KEYS",
    "SUFFIX",
    "VERSION",
    "Entry",
    "FileEntry",
    "PickleRecord",
    "Pointer",
    "PointerError",
    "checkpoint_path_for",
    "colliding_names",
    "dumps",
    "from_dict",
    "is_pointer",
    "layout_id",
    "load_yaml",
    "loads",
    "peek_id",
    "pointer_path_for",
    "qualified_name",
    "round_stat",
    "safe_relpath",
    "scan_oids",
]
