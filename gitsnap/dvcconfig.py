"""DVC's config as DVC resolves it, without importing dvc (DESIGN D3, D4, D10).

gitsnap's objects live in DVC's cache dir (``<cache dir>/gitsnap/blake3/``),
so gitsnap must find the cache dir DVC uses: after
``dvc cache dir --global /shared/cache`` that is ``/shared/cache``, not
``.dvc/cache``. ``status`` and the hooks must start fast, and ``import dvc``
alone costs more than a clean ``status`` (D10), so this module repeats the
few steps of ``dvc.config.Config`` that matter here:

- four levels, each shadowing the one before: **system**
  (``$DVC_SYSTEM_CONFIG_DIR/config``, else ``platformdirs.site_config_dir``),
  **global** (``$DVC_GLOBAL_CONFIG_DIR/config``, else
  ``platformdirs.user_config_dir``), **repo** (``.dvc/config``), **local**
  (``.dvc/config.local``); sections merge key by key;
- each file is read as DVC's parser, ``configobj``, reads it: the plain
  ``[section]`` / ``key = value`` files that ``dvc config`` writes by a small
  reader here (:func:`parse_simple`, proven equal to configobj by a property
  test), anything else (lists, triple quotes, errors) by configobj itself;
- keys and section names are lower-cased, ``['remote "name"']`` becomes
  ``remote -> name``, and ``core.remote`` is lower-cased as DVC's schema does;
- the path options (``cache.dir``, a remote's ``url``, ``keyfile`` and the
  like) are resolved per level: a URL (``s3://...``) and an absolute path stay
  as written, ``~`` is expanded, and a relative path is relative to the folder
  of the config file that holds it (``.dvc/`` for the repo and local levels,
  the global config dir for ``--global``).

``tests/test_dvcconfig.py`` checks every answer against ``dvc.config.Config``
and DVC's cache manager over generated configs at every level. The remote
layer (:mod:`gitsnap.remote`) still opens remotes through dvc itself (D4).
"""

# os.path on purpose: this is DVC's own path arithmetic (abspath normalises
# without resolving symlinks, which Path.resolve would do).
# ruff: noqa: PTH100, PTH111, PTH117, PTH118

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TypeAlias

from gitsnap.errors import DvcConfigError

Node: TypeAlias = "str | list[str] | dict[str, Node]"
Section = dict[str, Node]
Config = dict[str, Section]

LEVELS = ("system", "global", "repo", "local")

# dvc.config.Config._map_dirs: the options whose value is a path, per section.
_CACHE_PATHS = ("dir",)
_REMOTE_PATHS = (
    "url",
    "gdrive_user_credentials_file",
    "gdrive_service_account_json_file_path",
    "credentialpath",
    "configpath",
    "keyfile",
    "cert_path",
    "key_path",
)
_MACHINE_PATHS = ("startup_script", "setup_script")
_NAMED = re.compile(r'^\s*(remote|machine|db)\s*"(.*)"\s*$')
_URL = re.compile(r"\w+://")

# A config file is a few hundred bytes; this bound keeps a hostile one (a
# repository's .dvc/config comes from whoever wrote the branch) from costing
# memory or time before DVC itself would have refused it.
_MAX_FILE = 1 << 20


def config_files(dvc_dir: Path | None) -> dict[str, Path]:
    """The config file of every level DVC reads, in shadowing order."""
    files = {
        "system": _system_dir() / "config",
        "global": _global_dir() / "config",
    }
    if dvc_dir is not None:
        dvc_dir = Path(os.path.abspath(dvc_dir))
        files["repo"] = dvc_dir / "config"
        files["local"] = dvc_dir / "config.local"
    return files


def _system_dir() -> Path:
    # dvc.dirs.system_config_dir: the variable wins when set and non-empty.
    env = os.environ.get("DVC_SYSTEM_CONFIG_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.site_config_dir("dvc", "iterative"))


def _global_dir() -> Path:
    env = os.environ.get("DVC_GLOBAL_CONFIG_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir("dvc", "iterative"))


def read_level(path: Path) -> Config:
    """One config file, parsed and with its paths resolved ({} when it does not exist)."""
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_FILE + 1)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise DvcConfigError(
            f"cannot read the DVC config {path}: {exc.strerror or exc}",
            hint=f"check the permissions of {path}",
        ) from None
    if len(data) > _MAX_FILE:
        raise DvcConfigError(
            f"the DVC config {path} is larger than {_MAX_FILE >> 20} MiB",
            hint=f"fix or remove {path} (a DVC config is a few lines)",
        )
    return _resolve_paths(_named(_lower(_parse(data, path))), path.parent)


def _parse(data: bytes, path: Path) -> dict[str, object]:
    try:
        # What DVC's text-mode open hands configobj: universal newlines.
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        raise _invalid(path, exc) from None
    fast = parse_simple(text)
    if fast is not None:
        return fast
    import io

    from configobj import ConfigObj, ConfigObjError

    try:
        return dict(ConfigObj(io.StringIO(text)).dict())
    except (ConfigObjError, SyntaxError) as exc:
        raise _invalid(path, exc) from None


def _invalid(path: Path, exc: Exception) -> DvcConfigError:
    return DvcConfigError(
        f"the DVC config {path} is not valid: {exc}",
        hint=f"fix {path} (dvc config --list --show-origin shows what DVC reads)",
    )


# The files `dvc config` and `dvc remote` write, and most hand-written ones,
# are `[section]` / `['remote "name"']` headers and `key = value` lines.
# Those are read here (importing configobj costs ~4 ms, a few per cent of a
# clean `git snap status`); anything else (lists, triple quotes, nested
# sections, interpolation, duplicates, errors) goes to configobj itself.
_SIMPLE_SECTION = re.compile(r"\[\s*('[^'\[\]#]+'|[^'\"\s\[\]#][^\[\]#]*?)\s*\]")
_SIMPLE_KEY = re.compile(r"([A-Za-z0-9_.\-]+)\s*=\s*(.*)")
_SIMPLE_QUOTED = re.compile(r"""("[^"]*"|'[^']*')(?:\s*#.*)?""")
_ODD_LINE_BREAKS = frozenset("\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\ufeff")
_TRIPLE = ("'''", '"""')


def parse_simple(text: str) -> dict[str, object] | None:
    """The common subset of configobj's syntax, read as configobj reads it; None outside it."""
    if not _ODD_LINE_BREAKS.isdisjoint(text):
        return None
    out: dict[str, object] = {}
    section: dict[str, str] | None = None
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _SIMPLE_SECTION.fullmatch(line)
        if m:
            name = m.group(1)
            if name[0] == "'":
                name = name[1:-1]
            # configobj: a blank quoted name and a duplicate name are errors.
            if not name.strip() or name in out:
                return None
            section = {}
            out[name] = section
            continue
        m = _SIMPLE_KEY.fullmatch(line)
        if m is None or section is None or m.group(1) in section:
            return None
        value = _simple_value(m.group(2))
        if value is None:
            return None
        section[m.group(1)] = value
    return out


def _simple_value(text: str) -> str | None:
    if text.startswith(("'", '"')):
        q = _SIMPLE_QUOTED.fullmatch(text)
        if q is None or text.startswith(_TRIPLE):
            return None
        value = q.group(1)[1:-1]
    else:
        value = text.split("#", 1)[0].rstrip()
        if "," in value:
            return None  # a configobj list
    # configobj interpolates %(name)s
    return None if "%(" in value else value


def _lower(data: dict[str, object]) -> dict[str, object]:
    # dvc.config._lower_keys: keys at every depth, values untouched.
    return {str(k).lower(): _lower(v) if isinstance(v, dict) else v for k, v in data.items()}


def _named(data: dict[str, object]) -> Config:
    # dvc.config._parse_named: 'remote "name"' -> remote -> name.
    result: dict[str, object] = {"remote": {}, "machine": {}, "db": {}}
    for section, value in data.items():
        m = _NAMED.match(section)
        if m:
            group = result[m.group(1)]
            assert isinstance(group, dict)
            group[m.group(2)] = value
        else:
            result[section] = value
    config: Config = {}
    for section, value in result.items():
        # A top-level key outside any section means nothing to DVC (its schema
        # refuses it); gitsnap reads only sections.
        if isinstance(value, dict):
            config[section] = value
    return config


def _resolve(conf_dir: Path, value: Node) -> Node:
    # dvc.config.Config._resolve (POSIX and Windows alike for what gitsnap reads).
    if not isinstance(value, str) or _URL.match(value) or os.path.isabs(value):
        return value
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return expanded
    return os.path.abspath(os.path.join(conf_dir, value))


def _resolve_paths(config: Config, conf_dir: Path) -> Config:
    conf_dir = Path(os.path.abspath(conf_dir))

    def fix(section: Node, keys: tuple[str, ...]) -> None:
        if isinstance(section, dict):
            for key in keys:
                if key in section:
                    section[key] = _resolve(conf_dir, section[key])

    fix(config.get("cache", {}), _CACHE_PATHS)
    for kind, keys in (("remote", _REMOTE_PATHS), ("machine", _MACHINE_PATHS)):
        for named in config.get(kind, {}).values():
            fix(named, keys)
    return config


def _merge(into: dict[str, Node], update: dict[str, Node]) -> None:
    # dvc.config.merge: dicts merge key by key, anything else replaces.
    for key, value in update.items():
        current = into.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            _merge(current, value)
        else:
            into[key] = value


def load(dvc_dir: Path | None) -> Config:
    """DVC's merged config for the project at ``dvc_dir`` (system < global < repo < local)."""
    merged: dict[str, Node] = {}
    for path in config_files(dvc_dir).values():
        _merge(merged, read_level(path))  # type: ignore[arg-type]
    return {k: v for k, v in merged.items() if isinstance(v, dict)}


def _text(config: Config, section: str, key: str) -> str | None:
    value = config.get(section, {}).get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DvcConfigError(
            f"the DVC config option {section}.{key} is not a single value: {value!r}",
            hint=f"dvc config {section}.{key} VALUE (dvc config --list --show-origin "
            "shows which file sets it)",
        )
    return value


def cache_dir(dvc_dir: Path, config: Config | None = None) -> Path:
    """The local cache dir DVC uses for the project at ``dvc_dir`` (``dvc cache dir``).

    ``cache.dir`` from the level that sets it last, else ``.dvc/cache``. The
    deprecated ``cache.local = REMOTE`` (a named remote as the cache) is
    followed as DVC's cache manager follows it.
    """
    config = load(dvc_dir) if config is None else config
    where = "cache.dir"
    value = None
    local = _text(config, "cache", "local")
    if local:
        where = f"cache.local (remote '{local}')"
        named = config.get("remote", {}).get(local.lower(), {})
        value = _text({"remote": named}, "remote", "url") if isinstance(named, dict) else None
        if value is None:
            raise DvcConfigError(
                f"DVC's cache.local names the remote '{local}', which is not configured",
                hint="dvc config --unset cache.local, or dvc remote add NAME URL",
            )
    else:
        value = _text(config, "cache", "dir")
    if not value:
        return Path(os.path.abspath(dvc_dir)) / "cache"
    if _URL.match(value):
        raise DvcConfigError(
            f"DVC's {where} is not a local folder: {value}",
            hint="gitsnap keeps its objects in a local cache: "
            "dvc cache dir PATH (a folder, shared or not)",
        )
    return Path(value)


def sets_cache(config: Config) -> bool:
    """True when some level names the cache explicitly (``cache.dir`` or ``cache.local``)."""
    return bool(_text(config, "cache", "local") or _text(config, "cache", "dir"))


def default_remote(dvc_dir: Path, config: Config | None = None) -> str | None:
    """``core.remote`` (lower-cased, as DVC's schema reads it), or None."""
    config = load(dvc_dir) if config is None else config
    name = _text(config, "core", "remote")
    return name.lower() if name else None


def remotes(dvc_dir: Path, config: Config | None = None) -> dict[str, dict[str, str]]:
    """Every configured remote: name -> options (``url`` and path options resolved).

    Options with a non-text value (a configobj list) are left out; DVC's
    schema refuses them anyway.
    """
    config = load(dvc_dir) if config is None else config
    out: dict[str, dict[str, str]] = {}
    for name, options in config.get("remote", {}).items():
        if isinstance(options, dict):
            out[name] = {k: v for k, v in options.items() if isinstance(v, str)}
    return out
