"""Hard limits on what a pointer, a note or a metrics file may hold.

Pointers and notes come from other people's branches and from ``origin``:
each limit below is checked before the work it bounds (allocation, a YAML
parse, recursion), so a hostile file ends in a :class:`~gitsnap.errors.GitsnapError`
within seconds and a few hundred MiB. Each is far above what a real
checkpoint needs; ``docs/pointer-format.md`` lists them for users.
"""

from __future__ import annotations

MAX_POINTER_BYTES = 64 * 1024 * 1024
"""A whole pointer file (a 100,000-tensor pointer is ~30 MB)."""

MAX_YAML_BYTES = 2 * 1024 * 1024
"""Pointer text that is not canonical goes through PyYAML (~1 s and ~100 MiB per MiB):
only this much of it. What ``git snap save`` writes is read by the line reader at any size."""

MAX_DEPTH = 32
"""Nesting of mappings and sequences (a pointer needs 4: top, ``tensors``, entry, ``shape``).
PyYAML's C loader recurses on the C stack per level and crashes at ~50,000."""

MAX_ENTRIES = 250_000
"""``tensors`` + ``blobs`` + ``files`` entries of one pointer (the largest public
checkpoints have ~100,000 tensors)."""

MAX_NAME_CHARS = 4096
"""A tensor name, a dtype, a blob role, a file path (PATH_MAX on Linux)."""

MAX_METADATA_CHARS = 1024 * 1024
"""Characters in ``metadata`` (a safetensors ``__metadata__``), ``tool`` and unknown
top-level keys, each counted with its keys."""

MAX_METRICS = 10_000
"""Names in ``metrics`` or ``params`` of a pointer, a git note, or a metrics file
(after flattening)."""

MAX_NOTE_BYTES = 1024 * 1024
"""One gitsnap git note."""

MAX_METRICS_FILE_BYTES = 16 * 1024 * 1024
"""A metrics or params file given to ``git snap save -M FILE`` / ``metrics add``."""

MAX_VALUE_CHARS = 64 * 1024
"""One metric or param value that is a string, and one metric name."""

MAX_PICKLE_GLOBALS = 10_000
"""Globals recorded for one pickled file (the pickle reader stops at 10,000 distinct ones)."""

MAX_PICKLE_NAME_CHARS = 1024
"""One recorded global's ``module.qualname`` (real ones are under 100 characters)."""
