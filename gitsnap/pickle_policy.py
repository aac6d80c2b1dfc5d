"""What the recorded globals of a pickled checkpoint mean: refusals, warnings, review findings.

One rule for ``save`` (refuse an unsafe global unless allowed, warn about an
unknown one), the pre-commit check (refuse a pointer recording an unsafe
global unless the path is allowed) and ``diff`` (the security section).
A recorded class is re-judged by name: a hand-edited pointer that calls
``posix.system`` ``weights_only`` is still reported as unsafe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gitsnap.errors import GitsnapError, UnsafePickle
from gitsnap.pointer import PickleRecord, Pointer

UNSAFE = "unsafe"
UNKNOWN = "unknown"


def kind_of(name: str, recorded: str) -> str:
    """The class of one recorded global: unsafe by name wins over what the pointer says."""
    from gitsnap.formats.pickle_globals import classify

    return UNSAFE if classify(name) == UNSAFE else recorded


def names_of(globals_: Mapping[str, str], kind: str) -> list[str]:
    return sorted(name for name, k in globals_.items() if kind_of(name, k) == kind)


def unsafe_names(rec: PickleRecord) -> list[str]:
    return names_of(rec.globals, UNSAFE)


def runs_text(names: Iterable[str]) -> str:
    return ", ".join(names)


def refusal(path: str, names: list[str], hint: str) -> UnsafePickle:
    return UnsafePickle(
        f"{path}: its pickle calls {runs_text(names)} when loaded with torch.load (code execution)",
        hint=hint,
    )


SAVE_HINT = (
    "inspect it (python -m pickletools on its data.pkl shows every call); "
    "if you trust it, pass --allow-unsafe-pickle"
)


@dataclass(frozen=True)
class SecurityFinding:
    """A global the newer side's pickle names that the older side's did not, and its class.

    ``path`` is the repository path of the pickled file; ``kind`` is ``unsafe``
    (runs code at ``torch.load``) or ``unknown`` (gitsnap cannot tell);
    ``allowed`` says the snapshot was saved with ``--allow-unsafe-pickle``.
    """

    path: str
    name: str
    kind: str
    allowed: bool = False


def introduced(
    old: Pointer | None, new: Pointer | None, shown: str | None = None
) -> list[SecurityFinding]:
    """Unsafe and unknown globals of ``new`` that ``old`` did not record (all, if no ``old``).

    ``shown``: the checkpoint's path as the user sees it (default: the recorded path).
    """
    if new is None:
        return []
    before: dict[str, set[str]] = {}
    if old is not None:
        for rel, rec in old.pickle.items():
            before[rel] = {n for n, k in rec.globals.items() if kind_of(n, k) in (UNSAFE, UNKNOWN)}
    out: list[SecurityFinding] = []
    for rel, rec in sorted(new.pickle.items()):
        seen = before.get(rel, set())
        top = new.path if shown is None else shown
        path = top if rel == "" else f"{top}/{rel}"
        for name in sorted(rec.globals):
            kind = kind_of(name, rec.globals[name])
            if kind in (UNSAFE, UNKNOWN) and name not in seen:
                out.append(SecurityFinding(path, name, kind, rec.allowed_unsafe and kind == UNSAFE))
    out.sort(key=lambda f: (f.kind != UNSAFE, f.path, f.name))
    return out


def security_line(f: SecurityFinding) -> str:
    """The reviewer's sentence for one finding (unescaped: renderers escape it)."""
    if f.kind == UNSAFE:
        allowed = " (saved with --allow-unsafe-pickle)" if f.allowed else ""
        return f"{f.path}: this checkpoint runs {f.name} when loaded with torch.load{allowed}"
    return f"{f.path}: its pickle calls {f.name}, which gitsnap cannot judge (unknown global)"


CONFIG_FILE = ".gitsnap.yaml"
CONFIG_KEY = "allow_unsafe_pickle"
_MAX_CONFIG_BYTES = 1024 * 1024


def allowed_globs(root: Path) -> list[str]:
    """The ``allow_unsafe_pickle:`` globs of the work tree's ``.gitsnap.yaml`` (none if absent)."""
    try:
        text = (root / CONFIG_FILE).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return []
    from gitsnap.pointer import safeyaml

    data = safeyaml.load(
        text.decode("utf-8", errors="replace"),
        CONFIG_FILE,
        what="YAML",
        error=GitsnapError,
        max_bytes=_MAX_CONFIG_BYTES,
        string_keys=False,
    )
    value = data.get(CONFIG_KEY) if isinstance(data, dict) else None
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise GitsnapError(
            f"{CONFIG_FILE}: '{CONFIG_KEY}' must be a list of path globs",
            hint=f"write it as {CONFIG_KEY}: [models/trusted.pt, 'legacy/*.pt']",
        )
    return value


def glob_matches(glob: str, path: str) -> bool:
    """A glob of ``.gitsnap.yaml`` against a checkpoint path, as ``.gitattributes`` matches.

    ``*`` stays within a folder; a glob without ``/`` matches the name at any depth.
    """
    from fnmatch import fnmatchcase

    glob = glob.strip().strip("/")
    if not glob:
        return False
    parts, globs = path.split("/"), glob.split("/")
    if len(globs) == 1:
        return fnmatchcase(parts[-1], glob)
    return len(parts) == len(globs) and all(map(fnmatchcase, parts, globs))
