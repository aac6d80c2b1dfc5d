"""Read DVC's repository config (``.dvc/config`` + ``config.local``) without importing dvc.

``status`` and the hooks must start fast (DESIGN D10), so the cache location is
resolved here with a small reader of the configobj files ``dvc config`` writes:
``[section]`` or ``['remote "name"']`` headers and ``key = value`` lines.
The remote layer (:mod:`gitsnap.remote`) opens remotes through dvc itself.
"""

from __future__ import annotations

from pathlib import Path

Config = dict[str, dict[str, str]]


def parse(text: str) -> Config:
    config: Config = {}
    section: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip()
            if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
                name = name[1:-1]
            section = config.setdefault(name, {})
            continue
        if section is None or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        section[key.strip().lower()] = value
    return config


def load(dvc_dir: Path) -> Config:
    """Repository config merged with the local (uncommitted) one, local winning."""
    merged: Config = {}
    for name in ("config", "config.local"):
        try:
            text = (dvc_dir / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        for section, values in parse(text).items():
            merged.setdefault(section, {}).update(values)
    return merged


def cache_dir(dvc_dir: Path, config: Config | None = None) -> Path:
    """DVC's cache dir: ``cache.dir`` (relative to ``.dvc/``) or ``.dvc/cache``."""
    config = load(dvc_dir) if config is None else config
    value = config.get("cache", {}).get("dir")
    if not value:
        return dvc_dir / "cache"
    path = Path(value).expanduser()
    return path if path.is_absolute() else (dvc_dir / path).resolve()
