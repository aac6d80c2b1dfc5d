"""Resolve the one ``dvc remote`` configured, exactly as DVC resolves it, and open its backend.

``dvc.config.Config`` (system, global, ``.dvc/config``, ``.dvc/config.local``)
and ``dvc.fs.get_cloud_fs`` decide, so ``url``, ``endpointurl``, profiles,
credentials and plugins (dvc-s3, dvc-gs, dvc-azure, dvc-ssh) behave as they do
for ``dvc push``. dvc is imported here only, and only when a command needs a
remote (DESIGN D10).

dvc is an optional extra (``gitsnap[remote]``, ``gitsnap[s3]``): reviewing
pointers and local saves, diffs and checkouts never need it. Without it,
:func:`configured_remote` (so :func:`open_remote` and every command that
reaches a remote) still answers "no remote configured" from DVC's config
files, read by :mod:`gitsnap.dvcconfig`, and otherwise fails with
:func:`missing_dvc`: one error, with the extra the remote's URL needs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gitsnap import _optional, dvcconfig
from gitsnap.errors import MissingDependency, RemoteError
from gitsnap.remote.base import PREFIX, Remote, RemoteInfo, remote_error

# A closed port or a wrong endpoint must fail in seconds, not minutes
# (botocore's default is 5 attempts with back-off; an unroutable host waits
# connect_timeout on each, 60 s by botocore's default). Applied only where
# the user has not set them: ``dvc remote modify NAME connect_timeout ...``,
# or AWS_MAX_ATTEMPTS / AWS_RETRY_MODE in the environment, still win.
_S3_CONNECT_TIMEOUT = 5
_S3_MAX_ATTEMPTS = 3
_PLUGIN = re.compile(r"requires '([A-Za-z0-9_.\-\[\]]+)'")


# DVC's filesystem plugin per URL scheme DVC accepts (the extras of ``pip install dvc[s3]``);
# a folder and http(s):// need none beyond dvc itself, which depends on dvc-http.
PLUGINS = {
    "s3": "dvc-s3",
    "gs": "dvc-gs",
    "azure": "dvc-azure",
    "ssh": "dvc-ssh",
    "http": "dvc-http",
    "https": "dvc-http",
    "webdav": "dvc-webdav",
    "webdavs": "dvc-webdav",
    "hdfs": "dvc-hdfs",
    "oss": "dvc-oss",
    "gdrive": "dvc-gdrive",
}


def scheme_of(url: str) -> str:
    """``s3`` for ``s3://bucket/path``; ``local`` for a folder."""
    return url.split("://", 1)[0].lower() if "://" in url else "local"


def missing_plugin(url: str) -> RemoteError | None:
    """The error :func:`open_remote` gives when DVC's plugin for ``url`` is not installed.

    Asked without importing dvc or the plugin (``git snap doctor --offline``);
    None for a folder, an unknown scheme (DVC itself judges it), or a plugin
    that is installed.
    """
    scheme = scheme_of(url)
    package = PLUGINS.get(scheme)
    if package is None or _optional.installed(package.replace("-", "_")):
        return None
    return _missing_plugin(url, scheme, "")


def _missing_plugin(url: str, scheme: str, message: str) -> RemoteError:
    m = _PLUGIN.search(message)
    package = m.group(1) if m else PLUGINS.get(scheme, f"dvc-{scheme}")
    package = package.replace("dvc[", "dvc-").rstrip("]")
    return RemoteError(
        f"the remote {url} needs the DVC plugin {package}, which is not installed",
        hint=f"pip install {package}",
    )


def install_hint(url: str) -> str:
    """The install command for reaching ``url``: dvc (the extra) and DVC's plugin for its scheme.

    >>> install_hint("s3://bucket/models"), install_hint("/mnt/store")
    ("pip install 'gitsnap[s3]'", "pip install 'gitsnap[remote]'")
    >>> install_hint("gs://bucket")
    "pip install 'gitsnap[remote]' dvc-gs"
    """
    scheme = scheme_of(url)
    if scheme == "s3":
        return "pip install 'gitsnap[s3]'"
    plugin = PLUGINS.get(scheme)
    extra = f" {plugin}" if plugin not in (None, "dvc-http") else ""  # dvc depends on dvc-http
    return f"pip install 'gitsnap[remote]'{extra}"


def missing_dvc(url: str, name: str) -> MissingDependency | None:
    """The error for reaching remote ``name`` at ``url`` when dvc is not installed, else None.

    Asked without importing dvc (``git snap doctor``).
    """
    return None if _optional.installed("dvc") else _no_dvc(url, name)


def _no_dvc(url: str, name: str) -> MissingDependency:
    return _optional.missing("dvc", f"reaching the DVC remote '{name}' ({url})", install_hint(url))


def configured_remote(dvc_dir: Path, name: str | None = None) -> tuple[Any, str]:
    """DVC's merged config and the chosen remote's name (``name`` or ``core.remote``).

    Without dvc installed: the same errors when no remote is configured (read
    from DVC's config files without dvc), else :func:`missing_dvc`'s.
    """
    if not _optional.installed("dvc"):
        config = dvcconfig.load(dvc_dir)
        remotes = dvcconfig.remotes(dvc_dir, config)
        chosen = _chosen(remotes, name or dvcconfig.default_remote(dvc_dir, config))
        found = remotes.get(chosen, remotes.get(chosen.lower(), {}))
        raise _no_dvc(found.get("url", "?"), chosen)
    from dvc.config import Config, ConfigError

    try:
        config = Config(dvc_dir=os.fspath(dvc_dir))
    except ConfigError as exc:
        raise RemoteError(
            f"cannot read the DVC config: {exc}", hint="fix .dvc/config (dvc config -l shows it)"
        ) from None
    return config, _chosen(config.get("remote", {}), name or config.get("core", {}).get("remote"))


def _chosen(remotes: Mapping[str, Any], chosen: str | None) -> str:
    """``chosen`` if it names a configured remote; otherwise the error that says what to do."""
    if not chosen:
        if remotes:
            raise RemoteError(
                f"no default DVC remote; configured remotes: {', '.join(sorted(remotes))}",
                hint="choose one with --remote NAME, or make one the default: "
                f"dvc remote default {sorted(remotes)[0]}",
            )
        raise RemoteError(
            "no DVC remote is configured",
            hint="dvc remote add -d storage URL   "
            "(a folder, s3://bucket/path, gs://..., azure://..., ssh://...)",
        )
    if chosen.lower() not in remotes and chosen not in remotes:
        raise RemoteError(
            f"no DVC remote named '{chosen}'"
            + (f"; configured remotes: {', '.join(sorted(remotes))}" if remotes else ""),
            hint=f"dvc remote add {chosen} URL, or pick one of: dvc remote list",
        )
    return chosen


def open_remote(dvc_dir: Path, name: str | None = None, jobs: int | None = None) -> Remote:
    """Open a DVC remote (``name``, else the default ``core.remote``) for gitsnap's objects."""
    config, chosen = configured_remote(dvc_dir, name)
    url = str(
        config["remote"].get(chosen, config["remote"].get(chosen.lower(), {})).get("url", "?")
    )
    scheme = scheme_of(url)
    from dvc.config import ConfigError
    from dvc.fs import get_cloud_fs
    from dvc_objects.fs.errors import RemoteMissingDepsError

    try:
        cls, conf, fs_path = get_cloud_fs(config, name=chosen)
    except ImportError as exc:
        raise _missing_plugin(url, scheme, str(exc)) from None
    except ConfigError as exc:
        raise RemoteError(
            f"remote '{chosen}' is misconfigured: {exc}", hint="dvc remote modify NAME OPTION VALUE"
        ) from None
    info = RemoteInfo(chosen, url, cls.protocol)
    if cls.protocol == "local":
        from gitsnap.remote.local import LocalRemote

        return LocalRemote(info, Path(fs_path).joinpath(*PREFIX), jobs or conf.get("jobs"))
    if cls.protocol == "s3":
        conf.setdefault("connect_timeout", _S3_CONNECT_TIMEOUT)
    try:
        fs = cls(**conf)
    except RemoteMissingDepsError as exc:
        raise _missing_plugin(url, scheme, str(exc)) from None
    except ImportError as exc:
        raise _missing_plugin(url, scheme, str(exc)) from None
    except Exception as exc:
        raise remote_error(info, exc, "open") from None
    if cls.protocol == "s3":
        _s3_fail_fast(fs)
    from gitsnap.remote.fs import FsRemote

    return FsRemote(info, fs, str(fs.join(fs_path, *PREFIX)), jobs)


def _s3_fail_fast(fs: Any) -> None:
    # fs_args is dvc-objects' cached kwargs for s3fs.S3FileSystem; the s3fs
    # instance is created from it on first use, so this must run before.
    args = fs.fs_args
    if "AWS_MAX_ATTEMPTS" not in os.environ and "AWS_RETRY_MODE" not in os.environ:
        config_kwargs = args.setdefault("config_kwargs", {})
        config_kwargs.setdefault(
            "retries", {"total_max_attempts": _S3_MAX_ATTEMPTS, "mode": "standard"}
        )
