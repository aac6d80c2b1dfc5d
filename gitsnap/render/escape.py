"""Text from checkpoints, pointers and notes made safe to show: the one escaping function.

Tensor names, safetensors metadata, messages, metric names and values and
file names come from other people's branches. Printed raw, one of them can
set a terminal's title (OSC), clear the screen or move the cursor (CSI),
overwrite a line in a CI log (CR), ring the bell, or reorder what a reviewer
reads with Unicode bidi overrides (the "Trojan Source" trick). Every
renderer therefore passes such strings through :func:`escape`, which shows
each unsafe character as a Python-style escape: ``\\x1b``, ``\\r``,
``\\u202e``. Unsafe means: a control character (C0, DEL, C1), a format
character (bidi controls, zero-width characters, the BOM), a line or
paragraph separator, a lone surrogate (an undecodable file name) or a
private-use or unassigned code point. Spaces, letters of every script,
symbols and emoji pass unchanged. JSON output needs none of this:
``json.dumps`` writes every control character as ``\\u00XX``.

:func:`escape` also bounds what a view shows: a name of megabytes (a
hostile pointer) is cut to ``limit`` characters and marked, so that laying
out a table stays linear and small. JSON keeps every string whole.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["NAME_LIMIT", "escape"]

# Characters of a name a view shows before cutting it. Real tensor and file
# names stay far below (the longest in the Hugging Face hub's models are
# about 100 characters); only a hostile or broken pointer reaches it.
NAME_LIMIT = 256

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# Runs that may need escaping: anything but printable ASCII. The common
# non-ASCII text (accents, CJK) is printable and passes through the run
# check at C speed.
_SUSPECT = re.compile(r"[^\x20-\x7e]+")


def _char(ch: str) -> str:
    if ch.isprintable() or unicodedata.category(ch) == "Zs":
        return ch  # Zs: a non-ASCII space (no-break, ideographic) is harmless
    named = _NAMED.get(ch)
    if named:
        return named
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _run(m: re.Match[str]) -> str:
    run = m.group()
    return run if run.isprintable() else "".join(map(_char, run))


def escape(text: object, limit: int | None = None) -> str:
    """``text`` (``str()`` of it) with unsafe characters escaped, at most about ``limit`` long.

    >>> escape("evil\\x1b]0;pwned\\x07name")
    'evil\\\\x1b]0;pwned\\\\x07name'
    >>> escape("a\\u202etxt.exe")
    'a\\\\u202etxt.exe'
    >>> escape("x" * 300, limit=10)
    'xxxxxxxxxx… (300 characters)'

    A cut keeps the first ``limit`` characters (escaped) and appends ``…``
    and the original length, so the reader knows the name goes on and where
    to find it whole (``--format json``).
    """
    s = text if isinstance(text, str) else str(text)
    cut = limit is not None and len(s) > limit
    head = s[:limit] if cut else s
    if not head.isprintable():
        head = _SUSPECT.sub(_run, head)
    if cut:
        head += f"… ({len(s):,} characters)"
    return head
