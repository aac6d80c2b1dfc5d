"""The one way hostile YAML reaches PyYAML: bounded, alias-free, depth-checked.

PyYAML's C loader builds nodes recursively on the C stack (a 100 KB text
nested 50,000 deep crashes the process), and resolves aliases into shared
objects whose walk grows exponentially (a 1 KB "billion laughs"). So the text
is first read as a stream of parser events (libyaml's parser keeps its own
stack on the heap and stops at the first level too deep or the first alias or
anchor), and only then loaded. Pointers, notes and metrics files have no use
for aliases, so refusing them loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitsnap.errors import GitsnapError
from gitsnap.pointer.limits import MAX_DEPTH


def load(
    text: str,
    source: str,
    *,
    what: str,
    error: type[GitsnapError],
    max_bytes: int,
    hint: str | None = None,
    max_depth: int = MAX_DEPTH,
    string_keys: bool = False,
) -> Any:
    """``text`` as PyYAML's safe loader reads it, or ``error`` when it is too big, too
    deep, uses an alias/anchor, is malformed, or (``string_keys``) has a key that is
    not a string. Messages start with ``source`` and name ``what`` (e.g. ``pointer YAML``).
    """
    if len(text) > max_bytes:
        raise error(f"{source}: {what} is larger than {max_bytes} bytes", hint=hint)
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    opening = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
    closing = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    try:
        depth = 0
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, opening):
                depth += 1
                if depth > max_depth:
                    line = event.start_mark.line + 1 if event.start_mark else 0
                    raise error(
                        f"{source}: {what} is nested deeper than {max_depth} levels (line {line})",
                        hint=hint,
                    )
            elif isinstance(event, closing):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise error(
                    f"{source}: {what} uses a YAML alias or anchor (line {line}), "
                    "which gitsnap does not accept",
                    hint=hint,
                )
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{source}: malformed {what}{where}: {problem}", hint=hint) from None
    except ValueError as exc:  # an integer of more than 4,300 digits (Python's limit)
        raise error(
            f"{source}: {what} holds a number too long to read ({exc})", hint=hint
        ) from None
    if string_keys:
        _check_keys(data, source, what, error, hint)
    return data


def _check_keys(
    data: Any, source: str, what: str, error: type[GitsnapError], hint: str | None
) -> None:
    # Iterative: the depth is bounded above, but a walk needs no stack anyway.
    todo = [data]
    while todo:
        value = todo.pop()
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    shown = repr(key)
                    shown = shown if len(shown) <= 60 else shown[:57] + "..."
                    raise error(
                        f"{source}: {what} has a key that is not a string: {shown}", hint=hint
                    )
                todo.append(item)
        elif isinstance(value, list):
            todo.extend(value)
