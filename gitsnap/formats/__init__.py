"""Format registry: pick a reader by content (magic bytes / structure), then by extension.

========================  ==============================================  ===============
content                   reader                                          format name
========================  ==============================================  ===============
a folder                  :mod:`~gitsnap.formats.folder` (each file below  ``sharded-*`` /
                          read by the rules of this table)                 ``folder``
8-byte length + ``{``     :mod:`~gitsnap.formats.safetensors`              ``safetensors``
zip with ``*/data.pkl``   :mod:`~gitsnap.formats.torch_zip`                ``torch``
zip of ``*.npy``          :mod:`~gitsnap.formats.npz`                      ``npz``
legacy torch pickle       :mod:`~gitsnap.formats.raw` (opaque chunks;      ``torch-legacy``
                          its pickles' globals judged, never unpickled)
anything else             :mod:`~gitsnap.formats.raw` (FastCDC chunks)      ``raw``
========================  ==============================================  ===============

The extension only makes a reader *mandatory*: a file named ``*.safetensors``
must parse as safetensors, and a ``.pt``/``.pth``/``.ckpt`` zip, or an
``.npz``, must be a readable zip (a malformed one is an error, not silently
stored as opaque bytes). Any file whose bytes look like one of the formats is
read as it whatever its name. Format modules import numpy or torch only
inside their functions, so importing this registry stays cheap (DESIGN D10).
"""

from __future__ import annotations

import os
from pathlib import Path

from gitsnap.errors import ArchiveError
from gitsnap.formats import _zip, npz, raw, safetensors, torch_zip
from gitsnap.formats.base import Layout, PickleGlobal, Segment, TensorInfo, View
from gitsnap.formats.folder import FolderLayout, list_files

__all__ = [
    "FolderLayout",
    "Layout",
    "PickleGlobal",
    "Segment",
    "TensorInfo",
    "View",
    "list_files",
    "read_folder",
    "read_layout",
]

_ZIP_REQUIRED = torch_zip.SUFFIXES - {".bin", ".tar"} | {".npz"}


def read_layout(path: Path) -> Layout:  # noqa: PLR0911 - one return per format
    """Segment one file (see the table above)."""
    suffix = path.suffix.lower()
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, 16, 0)
        if suffix == ".safetensors" or safetensors.sniff(head, size):
            return safetensors.read_layout(path)
        if _zip.sniff(head):
            try:
                members, _ = _zip.read_members(fd, path)
            except ArchiveError as exc:
                if suffix in _ZIP_REQUIRED:
                    kind = "npz" if suffix == ".npz" else "PyTorch"
                    detail = str(exc).split(": ", 1)[-1]
                    raise ArchiveError(f"{path}: not a valid {kind} file: {detail}") from None
                return raw.read_layout(path)
            prefix = torch_zip.archive_prefix(members)
            if prefix is not None:
                return torch_zip.read_layout(path, fd, size, members, prefix)
            if npz.matches(members):
                return npz.read_layout(path, fd, size, members)
            return raw.read_layout(path)
        if torch_zip.sniff_legacy(head):
            return torch_zip.read_legacy(path, fd, size)
        return raw.read_layout(path)
    finally:
        os.close(fd)


def read_folder(path: Path) -> FolderLayout:
    """Segment every file of a checkpoint folder (see :mod:`gitsnap.formats.folder`)."""
    from gitsnap.formats import folder

    return folder.read_folder(path, read_layout)
