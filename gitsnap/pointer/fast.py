"""The fast reader: canonical pointer text without YAML, for :func:`gitsnap.pointer.loads`.

PyYAML builds Python objects in Python: a 2,000-tensor pointer (~600 KB)
takes ~0.7 s to load, and ``import yaml`` alone ~30 ms, against a 0.4 s
budget for a whole structural diff. :func:`gitsnap.pointer.dumps` writes one
flow mapping per entry line with a fixed key order and a small header of
block-style keys, so canonical text is read here without YAML: each entry
line by one regex, each header line by a small reader of the plain and
single-quoted scalars PyYAML's dumper writes. :mod:`gitsnap.pointer.validate`
then judges the result exactly as it judges YAML input.

The contract is *same result or no result*: whatever this module accepts, it
reads exactly as YAML 1.1 (PyYAML's safe loader) would; anything it is not
sure of raises :class:`NotCanonical` and the caller falls back to YAML. A
header chunk the small reader refuses is handed to YAML on its own (the
entries stay on the fast path); a line it cannot place sends the whole text
to YAML, so a hand-edited pointer reads, or fails, exactly as before.
"""

from __future__ import annotations

import math
import re
from typing import Any

from gitsnap.errors import GitsnapError, NotCanonical
from gitsnap.pointer import safeyaml
from gitsnap.pointer.limits import MAX_DEPTH, MAX_YAML_BYTES
from gitsnap.pointer.model import Entry, Pointer
from gitsnap.pointer.validate import (
    check_entries,
    check_member_path,
    file_entry,
    from_dict,
    pickle_records,
)
from gitsnap.pointer.write import RESERVED

# ---------------------------------------------------------------- entry lines

# What pointer.write writes: a plain identifier, or a double-quoted string.
_PLAIN = r"[A-Za-z_][A-Za-z0-9_.\-/:]*"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_STR = rf"(?:{_PLAIN}|{_QUOTED})"
_UINT = r"0|[1-9][0-9]*"
_INT = r"-?(?:0|[1-9][0-9]*)"
_NUM = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]*(?:e[-+][0-9]+)?)?|\.nan|-?\.inf"
_OID = r'(?P<oid>[0-9a-f]{64}|"[0-9]{64}")'
_DIMS = r"(?:(?:0|[1-9][0-9]*)(?:, (?:0|[1-9][0-9]*))*)?"
_TENSOR_RE = re.compile(
    rf"- \{{name: (?P<name>{_STR})(?:, file: (?P<file>{_STR}))?, dtype: (?P<dtype>{_STR}), "
    rf"shape: \[(?P<shape>{_DIMS})\], offset: (?P<offset>{_UINT}), size: (?P<size>{_UINT}), "
    rf"oid: {_OID}"
    rf"(?P<view>, view: true)?(?:, stride: \[(?P<stride>{_DIMS})\])?"
    rf"(?:, count: (?P<count>{_INT}))?(?:, nonfinite: (?P<nonfinite>{_INT}))?"
    + "".join(rf"(?:, {k}: (?P<{k}>{_NUM}))?" for k in ("mean", "std", "min", "max", "l2"))
    + r"\}"
)
_BLOB_RE = re.compile(
    rf"- \{{(?:file: (?P<file>{_STR}), )?offset: (?P<offset>{_UINT}), size: (?P<size>{_UINT}), "
    rf"oid: {_OID}"
    rf"(?:, role: (?P<role>{_STR}))?\}}"
)
_FILE_RE = re.compile(
    rf"- \{{path: (?P<path>{_STR}), size: (?P<size>{_UINT})(?:, format: (?P<format>{_STR}))?"
    r"(?P<executable>, executable: true)?\}"
)
_SPECIAL = {".nan": math.nan, ".inf": math.inf, "-.inf": -math.inf}
_STAT_KEYS = ("count", "nonfinite", "mean", "std", "min", "max", "l2")
_LISTS = ("tensors", "blobs", "files")

# The escapes the writer writes; YAML knows more (\0, \e, \N, ...), which
# are left to YAML, as are escaped surrogates.
_ESCAPE = r'\\(?:x[0-9a-fA-F]{2}|u(?![dD][89abAB])[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[nt"\\])'
_QUOTED_BODY_RE = re.compile(rf'(?:[^"\\]|{_ESCAPE})*')
_ESCAPE_RE = re.compile(_ESCAPE)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
# Line breaks to YAML that str.split("\n") does not split on.
_OTHER_BREAKS = ("\x85", "\u2028", "\u2029", "\ufeff")


def _unescape(m: re.Match[str]) -> str:
    e = m[0]
    if len(e) == 2:
        return _SIMPLE_ESCAPES[e[1]]
    return chr(int(e[2:], 16))


def _raw_ok(body: str) -> bool:
    """No character a YAML reader refuses (non-printable) or reads as a line break.

    A break would fold inside a quoted scalar; a byte-order mark is left to
    YAML too. (A regex over these Unicode ranges takes ~8 ms to compile.)
    """
    if body.isascii():
        return body.isprintable()  # exactly 0x20-0x7e for ASCII
    return all(
        0x20 <= (cp := ord(ch)) <= 0x7E
        or (0xA0 <= cp <= 0xD7FF and cp not in (0x2028, 0x2029))
        or (0xE000 <= cp <= 0xFFFD and cp != 0xFEFF)
        or 0x10000 <= cp <= 0x10FFFF
        for ch in body
    )


def _scalar(text: str) -> str:
    """A string of an entry line as YAML reads it (plain or double-quoted)."""
    if text[0] != '"':
        if text.lower() in RESERVED or text[-1] == ":":
            raise NotCanonical  # YAML would read a bool, a null, or a mapping key
        return text
    body = text[1:-1]
    if not _raw_ok(body) or not _QUOTED_BODY_RE.fullmatch(body):
        raise NotCanonical  # a character or an escape the writer does not write
    return _ESCAPE_RE.sub(_unescape, body) if "\\" in body else body


def _ints(text: str) -> tuple[int, ...]:
    # The regexes admit only "N, N, ..." with canonical integers.
    return tuple(map(int, text.split(", "))) if text else ()


# dtype names that are plain scalars to YAML: no check needed per line.
_PLAIN_DTYPES = frozenset({
    "BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", "F8_E8M0", "U16", "I16", "F16", "BF16",
    "U32", "I32", "F32", "U64", "I64", "F64", "F4", "F6_E2M3", "F6_E3M2", "C64",
})  # fmt: skip


def _tensor_line(line: str) -> Entry:
    # The hot loop of a 2,000-tensor diff (~5 us a line): positional groups,
    # and no helper calls on the common path.
    m = _TENSOR_RE.fullmatch(line)
    if m is None:
        raise NotCanonical
    name, file, dtype, shape_s, offset, size, oid, view, stride_s, *stat_values = m.groups()
    # A reserved word has at most 5 letters.
    if name[0] == '"' or name[-1] == ":" or (len(name) < 6 and name.lower() in RESERVED):
        name = _scalar(name)
    if dtype not in _PLAIN_DTYPES:
        dtype = _scalar(dtype)
    if oid[0] == '"':
        oid = oid[1:-1]
    elif oid.isdigit():  # YAML would read an unquoted all-digit id as an integer
        raise NotCanonical
    count, nonfinite, mean, std, lo, hi, l2 = stat_values
    # As YAML reads them: a dot makes a float, except .nan and .inf. What
    # TensorStats writes (two counts, five finite floats) takes the first branch.
    if (
        count is not None
        and nonfinite is not None
        and mean is not None
        and std is not None
        and lo is not None
        and hi is not None
        and l2 is not None
        and "." in mean
        and "." in std
        and "." in lo
        and "." in hi
        and "." in l2
        and "n" not in mean + std + lo + hi + l2
    ):
        stats: dict[str, float | int] = {
            "count": int(count),
            "nonfinite": int(nonfinite),
            "mean": float(mean),
            "std": float(std),
            "min": float(lo),
            "max": float(hi),
            "l2": float(l2),
        }
    else:
        stats = {}
        for key, value in zip(_STAT_KEYS, stat_values, strict=True):
            if value is not None:
                if value in _SPECIAL:
                    stats[key] = _SPECIAL[value]
                else:
                    stats[key] = float(value) if "." in value else int(value)
    e = Entry(
        offset=int(offset),
        size=int(size),
        oid=oid,
        name=name,
        dtype=dtype,
        shape=tuple(map(int, shape_s.split(", "))) if shape_s else (),
        stats=stats,
        file=None if file is None else _scalar(file),
        view=view is not None,
    )
    if stride_s is not None:
        stride = _ints(stride_s)
        if not e.view or len(stride) != len(e.shape or ()):
            raise NotCanonical  # the YAML path says what is wrong
        e.stride = stride
    return e


def _oid(text: str) -> str:
    if text[0] == '"':
        return text[1:-1]
    if text.isdigit():  # YAML would read an unquoted all-digit id as an integer
        raise NotCanonical
    return text


def _blob_line(line: str) -> Entry:
    m = _BLOB_RE.fullmatch(line)
    if m is None:
        raise NotCanonical
    return Entry(
        offset=int(m["offset"]),
        size=int(m["size"]),
        oid=_oid(m["oid"]),
        role=None if m["role"] is None else _scalar(m["role"]),
        file=None if m["file"] is None else _scalar(m["file"]),
    )


def _file_line(line: str) -> dict[str, Any]:
    m = _FILE_RE.fullmatch(line)
    if m is None:
        raise NotCanonical
    entry: dict[str, Any] = {"path": _scalar(m["path"]), "size": int(m["size"])}
    if m["format"] is not None:
        entry["format"] = _scalar(m["format"])
    if m["executable"] is not None:
        entry["executable"] = True
    return entry


# ---------------------------------------------------------------- header lines
#
# The header is what yaml.dump writes for the other top-level keys: block
# mappings nested by two spaces, and scalars that are plain, single-quoted,
# ``{}`` or ``[]``. The plain ones are typed by YAML 1.1's implicit resolvers
# (copied from PyYAML's resolver.py); a form that YAML would read in a way not
# reproduced here (octal, sexagesimal, timestamps, ...) is NotCanonical.

_BOOLS = {
    **dict.fromkeys(("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
}
_NULLS = ("null", "Null", "NULL")
# Only these can start an int, a float or a timestamp.
_NUMERIC_START = frozenset("-+0123456789.")
# The three resolvers for such scalars, as strings: re compiles them on first
# use (most headers need none of them; compiling costs ~1 ms at start-up).
_FLOAT = (
    r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
    r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_INT = (
    r"[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
    r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+"
)
_TIMESTAMP = r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*"  # broader than YAML's: a match is refused
_DEC_INT = r"-?(?:0|[1-9][0-9]*)"
_DEC_FLOAT = r"-?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+][0-9]+)?"
# Plain scalars read here: no indicator or comment characters, single inner
# spaces, none that YAML would read as a line break.
_PLAIN_SCALAR_RE = re.compile(
    r"[A-Za-z0-9_./][A-Za-z0-9_./\-+@,=]*(?: [A-Za-z0-9_./\-+@,=]+)*|-[0-9.][A-Za-z0-9_.+\-]*"
)
_SINGLE_RE = re.compile(r"'(?:[^']|'')*'")
_HEADER_SPECIAL = {".nan": math.nan, ".inf": math.inf, "-.inf": -math.inf}
_ASCII_LINE = re.compile(r"[\x20-\x7e]*")
_KEY_START_RE = re.compile(r"[A-Za-z_']")


def _plain_value(text: str) -> Any:  # noqa: PLR0911 - one return per YAML 1.1 type
    """A plain scalar as YAML 1.1 types it, or NotCanonical."""
    if not _PLAIN_SCALAR_RE.fullmatch(text):
        raise NotCanonical
    if text[0] not in _NUMERIC_START:
        if text in _BOOLS:
            return _BOOLS[text]
        return None if text in _NULLS else text
    if text.isdigit():  # the charset makes these ASCII digits
        if text[0] == "0" and text != "0":
            raise NotCanonical  # octal to YAML 1.1
        return int(text)
    if re.fullmatch(_INT, text):
        if not re.fullmatch(_DEC_INT, text):
            raise NotCanonical
        return int(text)
    if re.fullmatch(_FLOAT, text):
        if text in _HEADER_SPECIAL:
            return _HEADER_SPECIAL[text]
        if not re.fullmatch(_DEC_FLOAT, text):
            raise NotCanonical
        return float(text)
    if re.fullmatch(_TIMESTAMP, text, re.S):
        raise NotCanonical
    return text


def _value(text: str) -> Any:
    if text[0] == "'":
        if not _SINGLE_RE.fullmatch(text):
            raise NotCanonical
        return text[1:-1].replace("''", "'")
    if text == "{}":
        return {}
    if text == "[]":
        return []
    return _plain_value(text)


def _key(line: str, indent: int) -> tuple[str, str]:
    """(key, rest of the line after ``:``) of a ``key: value`` line."""
    body = line[indent:]
    if body[:1] == "'":
        m = _SINGLE_RE.match(body)
        if m is None or body[m.end() : m.end() + 1] != ":":
            raise NotCanonical
        return m[0][1:-1].replace("''", "'"), body[m.end() + 1 :]
    key, sep, rest = body.partition(":")
    if not sep:
        raise NotCanonical
    value = _plain_value(key)
    if not isinstance(value, str):
        raise NotCanonical  # a key YAML would read as a number, bool or null
    return value, rest


def _header_chunk(lines: list[str]) -> dict[str, Any]:
    """Block mappings of plain/single-quoted scalars, as YAML reads them."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(0, root)]
    open_key: tuple[dict[str, Any], str, int] | None = None  # "key:" awaiting a nested block
    for line in lines:
        if not _ASCII_LINE.fullmatch(line) or not line or line[-1] == " ":
            raise NotCanonical
        indent = len(line) - len(line.lstrip(" "))
        if open_key is not None:
            parent, key, at = open_key
            open_key = None
            if indent > at:
                if indent != at + 2 or len(stack) >= MAX_DEPTH - 1:
                    raise NotCanonical  # too deep: the YAML path says so
                child: dict[str, Any] = {}
                parent[key] = child
                stack.append((indent, child))
        while stack and stack[-1][0] > indent:
            stack.pop()
        if not stack or stack[-1][0] != indent:
            raise NotCanonical
        target = stack[-1][1]
        key, rest = _key(line, indent)
        if key in target:
            raise NotCanonical  # duplicate keys: let YAML decide
        if rest == "":
            target[key] = None
            open_key = (target, key, indent)
        elif rest[0] == " " and rest[1:2] not in ("", " "):
            target[key] = _value(rest[1:])
        else:
            raise NotCanonical
    return root


def _header(chunks: list[list[str]]) -> dict[str, Any]:
    """The header keys. Each chunk is read alone, so none can run on into an entry list."""
    data: dict[str, Any] = {}
    for lines in chunks:
        if not _KEY_START_RE.match(lines[0]):
            raise NotCanonical  # not a top-level key: only the whole text can say what it is
        try:
            part = _header_chunk(lines)
        except NotCanonical:
            part = _yaml_chunk(lines)
        if any(k in data for k in part):
            raise NotCanonical
        data.update(part)
    return data


def _yaml_chunk(lines: list[str]) -> dict[str, Any]:
    # A document marker ("---", "...") or a directive means something only
    # in the whole text (PyYAML refuses a second document): read all of it.
    if any(line[:3] in ("---", "...") or line[:1] == "%" for line in lines):
        raise NotCanonical
    try:
        part = safeyaml.load(
            "\n".join(lines),
            "chunk",
            what="YAML",
            error=GitsnapError,
            max_bytes=MAX_YAML_BYTES,
            string_keys=True,
        )
    except GitsnapError:
        raise NotCanonical from None  # the whole text through YAML words the error
    if part is None:
        return {}
    if not isinstance(part, dict):
        raise NotCanonical
    return part


# ---------------------------------------------------------------- whole pointers


def load(text: str, source: str, shared: dict[str, Entry]) -> Pointer:
    """The pointer in ``text``, read without YAML where it is canonical.

    ``shared`` maps tensor lines to their parsed entries across the loads of
    one diff: an unchanged tensor line is parsed once and both pointers hold
    the same :class:`Entry`. Raises :class:`NotCanonical` for text to read
    with YAML instead, :class:`~gitsnap.errors.PointerError` for a bad pointer.
    """
    try:
        return _load(text, source, shared)
    except ValueError:
        raise NotCanonical from None  # an integer of more than 4,300 digits: YAML words it


def _load(text: str, source: str, shared: dict[str, Entry]) -> Pointer:
    if not text.startswith("gitsnap: ") or "\r" in text:
        raise NotCanonical
    if any(c in text for c in _OTHER_BREAKS):
        raise NotCanonical
    chunks: list[list[str]] = [[]]
    lists: dict[str, list[Any]] = {}
    current: str | None = None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    for line in lines:
        if current is not None and line.startswith("- "):
            if current == "tensors":
                e = shared.get(line)
                if e is None:
                    e = shared[line] = _tensor_line(line)
                lists[current].append(e)
            elif current == "blobs":
                lists[current].append(_blob_line(line))
            else:
                lists[current].append(_file_line(line))
            continue
        if line.endswith(":") and line[:-1] in _LISTS:
            key = line[:-1]
            if key in lists:
                raise NotCanonical
            current = key
            lists[key] = []
            if chunks[-1]:
                chunks.append([])
            continue
        current = None
        if line.startswith("-") or (
            line.split(":", 1)[0] in _LISTS and line != f"{line.split(':', 1)[0]}: []"
        ):
            raise NotCanonical
        chunks[-1].append(line)
    data = _header([c for c in chunks if c])
    if any(k in data and (k in lists or data[k] not in ([], None)) for k in _LISTS):
        raise NotCanonical
    size = data.get("size")
    if not isinstance(size, int) or isinstance(size, bool):
        raise NotCanonical  # let the YAML path word the error
    # The header alone, with an empty layout; the entries are attached after
    # (and the pickle record, whose shape depends on whether there are files).
    raw_pickle = data.pop("pickle", None)
    ptr = from_dict({**data, "size": 0, "tensors": [], "blobs": [], "files": []}, source)
    ptr.size = size
    ptr.files = [file_entry(f, source) for f in lists.get("files", [])]
    if raw_pickle is not None:
        if not isinstance(raw_pickle, dict):
            raise NotCanonical  # the YAML path words the error
        ptr.pickle = pickle_records(raw_pickle, source, folder=bool(ptr.files))
    ptr.tensors = lists.get("tensors", [])
    ptr.blobs = lists.get("blobs", [])
    for e in (*ptr.tensors, *ptr.blobs):
        if e.file is not None:
            check_member_path(e.file, source)
    check_entries(ptr, source)
    return ptr
