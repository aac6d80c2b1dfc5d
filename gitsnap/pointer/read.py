"""Reading pointer text: the limits first, then the fast reader, else bounded YAML.

Canonical text (what :func:`~gitsnap.pointer.dumps` writes) is read without
YAML, ~20x faster (:mod:`gitsnap.pointer.fast`); anything else goes through
PyYAML's safe loader behind :mod:`gitsnap.pointer.safeyaml`. Both give the
same :class:`Pointer`, or the same error (DESIGN D13, a property test).
"""

from __future__ import annotations

from gitsnap.errors import NotCanonical, PointerConflict, PointerError
from gitsnap.pointer import safeyaml
from gitsnap.pointer.limits import MAX_POINTER_BYTES, MAX_YAML_BYTES
from gitsnap.pointer.model import Entry, Pointer
from gitsnap.pointer.peek import SUFFIX, is_conflicted
from gitsnap.pointer.validate import check_entry_count, from_dict


def loads(
    text: str | bytes, source: str = "<pointer>", *, shared: dict[str, Entry] | None = None
) -> Pointer:
    """Parse pointer text; raise :class:`PointerError` naming ``source`` on any defect.

    ``shared``: one dict kept across the loads of one diff. A tensor line that
    is the same in both pointers (an unchanged tensor at the same offset) is
    then parsed once and both pointers hold the same :class:`Entry`, which the
    caller must treat as read-only.
    """
    if len(text) > MAX_POINTER_BYTES:
        raise PointerError(f"{source}: pointer is larger than {MAX_POINTER_BYTES} bytes")
    raw = text if isinstance(text, bytes) else text[:64].encode("utf-8", "replace")
    if is_conflicted(raw):
        path = source[: -len(SUFFIX)] if source.endswith(SUFFIX) else source
        raise PointerConflict(
            f"{source} is in a merge conflict",
            hint=f"choose a side: git snap resolve {path} --ours | --theirs | --base",
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PointerError(f"{source}: pointer is not UTF-8 text ({exc})") from None
    # Each entry is one "- " line of canonical text: a cheap upper bound on the
    # count, checked before a line is parsed (300,000 entries would take seconds).
    check_entry_count(text.count("\n- "), source)
    from gitsnap.pointer import fast  # ~1 ms of regexes, not needed by the peeks

    try:
        return fast.load(text, source, {} if shared is None else shared)
    except NotCanonical:
        return load_yaml(text, source)


def load_yaml(text: str, source: str = "<pointer>") -> Pointer:
    """Any YAML pointer text, through bounded PyYAML (the reference for the fast reader)."""
    if len(text) > MAX_YAML_BYTES:
        raise PointerError(
            f"{source}: pointer is not in the form gitsnap writes and is larger than "
            f"{MAX_YAML_BYTES} bytes, the most gitsnap reads through YAML",
            hint="restore the pointer from git (git checkout -- PATH.snap) or re-create it "
            "with git snap save; edit large pointers only in the form gitsnap writes",
        )
    data = safeyaml.load(
        text,
        source,
        what="pointer YAML",
        error=PointerError,
        max_bytes=MAX_YAML_BYTES,
        string_keys=True,
    )
    return from_dict(data, source)
