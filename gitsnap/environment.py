"""The environment a snapshot was saved in: python, the ML stack's versions, the whole set.

``git snap save`` records :func:`current` in the pointer's ``env`` key
(docs/pointer-format.md) and ``git snap diff`` shows what changed between two
sides (:func:`env_changes`). It is the environment of the process that saves: a
training script calling ``gitsnap.save`` or a training callback records the
training's; ``git snap save`` from a shell records the one ``git-snap`` runs in.

No package is imported to learn its version, and no ``METADATA`` file is
parsed (importlib.metadata takes ~0.2 s for 200 distributions, a fifth of a
1 GiB save): the installed set is read from the names of the
``*.dist-info`` / ``*.egg-info`` entries on ``sys.path``, which installers
write as ``{name}-{version}``, first entry of a name wins as for imports.
Only an ``.egg-info`` without a version in its name has its ``PKG-INFO``
headers read. ``tests/test_environment.py`` checks the scan against
importlib.metadata.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitsnap.hashing import oid_of

# The packages whose versions change what a checkpoint holds or how it is read,
# by their normalized names (PEP 503). Any other installed package counts in
# the digest of the whole set only.
ML_STACK = (
    "accelerate",
    "bitsandbytes",
    "datasets",
    "deepspeed",
    "diffusers",
    "flash-attn",
    "flax",
    "huggingface-hub",
    "jax",
    "jaxlib",
    "keras",
    "lightning",
    "numpy",
    "onnx",
    "onnxruntime",
    "optimum",
    "peft",
    "pytorch-lightning",
    "safetensors",
    "scikit-learn",
    "scipy",
    "sentencepiece",
    "tensorflow",
    "timm",
    "tokenizers",
    "torch",
    "torchaudio",
    "torchvision",
    "transformers",
    "triton",
    "trl",
    "xformers",
)
MAX_DISTRIBUTIONS = 100_000  # entries looked at per sys.path folder: a hostile folder stays cheap
_NORMALIZE = re.compile(r"[-_.]+")
_INFO = re.compile(r"^(.+?)-([^-]+?)(?:-py\d[^-]*)?(?:-[^-]+)?\.(?:dist|egg)-info$")
_PKG_INFO_MAX = 64 * 1024


def normalize(name: str) -> str:
    """PEP 503: lowercase, runs of ``-``, ``_``, ``.`` as one ``-``."""
    return _NORMALIZE.sub("-", name).lower()


def installed(paths: Iterable[str] | None = None) -> dict[str, str]:
    """Normalized name -> version of every distribution on ``paths`` (``sys.path``)."""
    found: dict[str, str] = {}
    for entry in sys.path if paths is None else paths:
        try:
            with os.scandir(entry or ".") as it:
                names = [d.name for _, d in zip(range(MAX_DISTRIBUTIONS), it, strict=False)]
        except OSError:
            continue  # a zip, a missing folder
        for name in sorted(names):
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            parsed = _parse(Path(entry or ".") / name)
            if parsed is not None and parsed[0] not in found:
                found[parsed[0]] = parsed[1]
    return found


def _parse(path: Path) -> tuple[str, str] | None:
    m = _INFO.match(path.name)
    if m is not None:
        return normalize(m[1]), m[2]
    # "name.egg-info" (a develop install): the version is in its PKG-INFO headers.
    meta = path / "PKG-INFO" if path.is_dir() else path
    try:
        with meta.open("rb") as f:
            head = f.read(_PKG_INFO_MAX).decode("utf-8", "replace")
    except OSError:
        return None
    fields = dict(re.findall(r"^(Name|Version): *(.*?)\s*$", head.split("\n\n", 1)[0], re.M))
    if "Name" not in fields or "Version" not in fields:
        return None
    return normalize(fields["Name"]), fields["Version"]


def current(paths: Iterable[str] | None = None) -> dict[str, Any]:
    """The pointer's ``env`` value for this process.

    ``python``; ``packages``: the installed :data:`ML_STACK` packages ->
    version; ``installed``: how many distributions in all; ``digest``:
    BLAKE3 of their sorted ``name==version`` lines (same digest ⇔ same set).
    """
    every = installed(paths)
    lines = "".join(f"{n}=={v}\n" for n, v in sorted(every.items()))
    return {
        "digest": oid_of(lines.encode()),
        "installed": len(every),
        "packages": {n: every[n] for n in ML_STACK if n in every},
        "python": platform.python_version(),
    }


@dataclass(frozen=True)
class EnvChange:
    """One difference between the environments of two snapshots.

    ``name`` is ``python``, a package of the ML stack, or ``installed`` (the
    whole set: ``before``/``after`` are its digests, ``count_*`` its sizes).
    ``None``: not recorded, or not installed, on that side.
    """

    name: str
    before: str | None
    after: str | None
    count_before: int | None = None
    count_after: int | None = None


def env_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[EnvChange]:
    """What differs between two ``env`` values; nothing when either side recorded none.

    Python first, then the ML stack's packages by name, then the whole set.
    Values of unexpected types (a hand-edited pointer) are shown as text.
    """
    if not before or not after:
        return []
    out: list[EnvChange] = []
    pb, pa = _str(before.get("python")), _str(after.get("python"))
    if pb != pa:
        out.append(EnvChange("python", pb, pa))
    kb, ka = _packages(before), _packages(after)
    for name in sorted(set(kb) | set(ka)):
        if kb.get(name) != ka.get(name):
            out.append(EnvChange(name, kb.get(name), ka.get(name)))
    db, da = _str(before.get("digest")), _str(after.get("digest"))
    if db != da:
        out.append(EnvChange("installed", db, da, _int(before), _int(after)))
    return out


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(env: Mapping[str, Any]) -> int | None:
    n = env.get("installed")
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def _packages(env: Mapping[str, Any]) -> dict[str, str]:
    value = env.get("packages")
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


__all__ = ["ML_STACK", "EnvChange", "current", "env_changes", "installed", "normalize"]
