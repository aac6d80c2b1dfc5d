"""The canonical writer: one encoding per pointer, byte for byte (rules in docs/pointer-format.md).

Entry lines are written here by hand (one flow mapping per line, fixed key
order); everything else by PyYAML's safe dumper with sorted keys. The fast
reader (:mod:`gitsnap.pointer.fast`) reads exactly this output, so a change
here is a change of the v1 format: the golden pointers in
``tests/pointer/golden/`` must still re-dump byte-identically.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from gitsnap.errors import PointerError
from gitsnap.pointer.limits import MAX_NAME_CHARS
from gitsnap.pointer.model import HASH_ALGO, STAT_KEYS, VERSION, Entry, FileEntry, Pointer
from gitsnap.pointer.validate import check_bulk, check_entry_count, check_pickle, check_scalars

PLAIN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/:]*$")
"""Strings an entry line writes plain; every other string is double-quoted."""
# YAML 1.1 words that a plain scalar would turn into bools/nulls.
RESERVED = {
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
}  # fmt: skip


def _check_writable(ptr: Pointer) -> None:
    source = ptr.path
    check_entry_count(len(ptr.tensors) + len(ptr.blobs) + len(ptr.files), source)
    check_scalars(ptr.metrics, source, "metrics")
    check_scalars(ptr.params, source, "params")
    for e in (*ptr.tensors, *ptr.blobs):
        if len(e.name or "") > MAX_NAME_CHARS:
            raise PointerError(
                f"{source}: tensor name longer than {MAX_NAME_CHARS} characters: "
                f"{(e.name or '')[:40]!r}...",
                hint="rename the tensor: gitsnap cannot record a name this long",
            )
        if any(not isinstance(k, str) for k in e.extra):
            raise PointerError(f"{source}: {e.label} has a key that is not a string")
    check_pickle(ptr, source)
    if any(not isinstance(k, str) for k in ptr.extra):
        raise PointerError(f"{source}: the pointer has a top-level key that is not a string")
    hint = "gitsnap records at most this much metadata; keep large data out of the checkpoint"
    for key, value in (
        ("tool", ptr.tool),
        ("env", ptr.env),
        ("metadata", ptr.metadata),
        *ptr.extra.items(),
    ):
        check_bulk(value, source, key, hint)


def dumps(ptr: Pointer) -> str:
    """The one canonical encoding of ``ptr`` (see :mod:`gitsnap.pointer`).

    Refuses (:class:`PointerError`) a pointer the readers would refuse for its
    size: what gitsnap writes, gitsnap reads back.
    """
    _check_writable(ptr)
    top: dict[str, Any] = dict(ptr.extra)
    top.update(
        id=ptr.id,
        parent=ptr.parent,
        path=ptr.path,
        format=ptr.format,
        size=ptr.size,
        hash=HASH_ALGO,
        created=ptr.created,
        message=ptr.message,
        metrics=ptr.metrics,
        params=ptr.params,
        tool=ptr.tool,
    )
    if ptr.env:
        top["env"] = ptr.env  # absent when not recorded: older pointers re-dump unchanged
    if ptr.metadata:
        top["metadata"] = ptr.metadata
    if ptr.pickle:
        top["pickle"] = _pickle_value(ptr)
    top["tensors"] = ptr.tensors
    top["blobs"] = ptr.blobs
    if ptr.files:
        top["files"] = sorted(ptr.files, key=lambda f: f.path)
    out = [f"gitsnap: {VERSION}\n"]
    for key in sorted(top):
        value = top[key]
        if key in ("tensors", "blobs") and key not in ptr.extra:
            out.append(f"{key}:" + (" []\n" if not value else "\n"))
            out.extend(f"- {_entry_line(e)}\n" for e in value)
        elif key == "files" and ptr.files:
            out.append("files:\n")
            out.extend(f"- {_file_line(f)}\n" for f in value)
        else:
            out.append(dump_block({key: value}))
    return "".join(out)


def _pickle_value(ptr: Pointer) -> dict[str, Any]:
    """``pickle``: a block mapping, so the line reader's header path reads it (no YAML)."""

    def record(rel: str) -> dict[str, Any]:
        rec = ptr.pickle[rel]
        out: dict[str, Any] = {"globals": dict(sorted(rec.globals.items()))}
        if rec.allowed_unsafe:
            out["allowed_unsafe"] = True
        return out

    if not ptr.files:
        return record("")
    return {"files": {rel: record(rel) for rel in sorted(ptr.pickle)}}


def dump_block(value: Mapping[str, Any]) -> str:
    import yaml  # only for writing, and for text that is not canonical: see loads

    return yaml.dump(
        dict(value),
        Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 30,
    )


def _entry_line(e: Entry) -> str:
    parts: list[str] = []
    if e.name is not None:
        parts.append(f"name: {_str(e.name)}")
        if e.file is not None:
            parts.append(f"file: {_str(e.file)}")
        parts.append(f"dtype: {_str(e.dtype or '')}")
        parts.append("shape: [" + ", ".join(str(d) for d in e.shape or ()) + "]")
        parts += [f"offset: {e.offset}", f"size: {e.size}", f"oid: {_oid(e.oid)}"]
        if e.view:
            parts.append("view: true")
        if e.stride is not None:
            parts.append("stride: [" + ", ".join(str(d) for d in e.stride) + "]")
        for key in STAT_KEYS:
            if key in e.stats:
                parts.append(f"{key}: {_num(e.stats[key])}")
    else:
        if e.file is not None:
            parts.append(f"file: {_str(e.file)}")
        parts += [f"offset: {e.offset}", f"size: {e.size}", f"oid: {_oid(e.oid)}"]
        if e.role is not None:
            parts.append(f"role: {_str(e.role)}")
    for key in sorted(e.extra):
        parts.append(f"{_str(key)}: {_flow(e.extra[key])}")
    return "{" + ", ".join(parts) + "}"


def _file_line(f: FileEntry) -> str:
    parts = [f"path: {_str(f.path)}", f"size: {f.size}"]
    if f.format:
        parts.append(f"format: {_str(f.format)}")
    if f.executable:
        parts.append("executable: true")
    parts += [f"{_str(key)}: {_flow(f.extra[key])}" for key in sorted(f.extra)]
    return "{" + ", ".join(parts) + "}"


def _oid(oid: str) -> str:
    # An all-digit id (odds ~1e-13) would read back as a YAML integer.
    return f'"{oid}"' if oid.isdigit() else oid


def _str(s: str) -> str:
    if PLAIN_RE.fullmatch(s) and s.lower() not in RESERVED and not s.endswith(":"):
        return s
    return _quote(s)


def _yaml_printable(cp: int) -> bool:
    return (
        cp in (0x09, 0x0A, 0x0D, 0x85)
        or 0x20 <= cp <= 0x7E
        or 0xA0 <= cp <= 0xD7FF
        or 0xE000 <= cp <= 0xFFFD
        or 0x10000 <= cp <= 0x10FFFF
    )


def _quote(s: str) -> str:
    """A YAML double-quoted scalar; escapes what YAML cannot hold raw."""
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif _yaml_printable(cp) and cp not in (0x0A, 0x0D, 0x85):
            out.append(ch)
        elif cp <= 0xFF:
            out.append(f"\\x{cp:02x}")
        elif cp <= 0xFFFF:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(f"\\U{cp:08x}")
    out.append('"')
    return "".join(out)


def _flow(value: Any) -> str:
    import yaml

    # Dumped inside a one-item list, so the emitter judges the value as it will
    # stand: in a flow mapping, where a plain ``:0`` or ``a,b`` would not read back.
    text = yaml.dump(
        [value],
        Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
        default_flow_style=True,
        sort_keys=True,
        width=1 << 30,
        allow_unicode=True,
    ).strip()
    return text[1:-1]


def _num(value: float | int) -> str:
    if type(value) is float and math.isfinite(value):
        text = repr(value)
        if "e" not in text:
            return text  # a finite float's repr has a dot unless it has an exponent
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(float(value))
    # PyYAML's YAML 1.1 resolver reads "1e-05" as a string: it needs a dot and a signed exponent.
    if "e" in text:
        mant, exp = text.split("e")
        if "." not in mant:
            mant += ".0"
        if exp[0] not in "+-":
            exp = "+" + exp
        text = f"{mant}e{exp}"
    elif "." not in text:
        text += ".0"
    return text
