"""``git snap doctor``: what this clone is missing for gitsnap, with the fix for each.

A teammate's clone needs what ``.git/`` does not carry: the hooks, the diff
and merge drivers' entries in ``.git/config``, a DVC remote it can reach (the
DVC plugin for its scheme, credentials), and a store. Each check is one
:class:`Check`; ``ok`` is False when any is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gitsnap import dvcconfig, gitio
from gitsnap.errors import GitsnapError
from gitsnap.pointer.peek import SUFFIX
from gitsnap.remote.resolve import PLUGINS, missing_dvc, missing_plugin, scheme_of
from gitsnap.workspace import Workspace

INSTALL_FIX = "git snap install"


@dataclass(frozen=True)
class Check:
    name: str  # "hooks", "diff driver", "merge driver", "dvc project", "store", "remote", ...
    ok: bool
    detail: str  # what was found
    fix: str = ""  # the command (or step) that mends it; "" when ok


@dataclass(frozen=True)
class DoctorResult:
    root: str
    checks: list[Check]
    ok: bool  # every check passed

    @classmethod
    def of(cls, root: Path, checks: list[Check]) -> DoctorResult:
        return cls(str(root), checks, all(c.ok for c in checks))

    @property
    def missing(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def doctor(cwd: Path | None = None, *, remote: bool = True) -> DoctorResult:
    """Check this clone's setup; ``remote`` False skips opening the remote (offline).

    Example::

        for c in api.doctor().missing:
            print(c.name, c.detail, "->", c.fix)
    """
    ws = Workspace.discover(cwd)
    checks = [_hooks(ws.root), *_drivers(ws.root)]
    if ws.dvc_dir is None:
        checks.append(Check("dvc project", False, "no DVC project (.dvc/) here", "git snap init"))
        return DoctorResult.of(ws.root, checks)
    checks.append(Check("dvc project", True, os.path.relpath(ws.dvc_dir, ws.root)))
    checks.append(_store(ws))
    checks += _remote(ws.dvc_dir, reach=remote)
    return DoctorResult.of(ws.root, checks)


def _hooks(root: Path) -> Check:
    from gitsnap.hooks import install as installer

    states = installer.hook_states(root)
    by_state: dict[str, list[str]] = {}
    for hook, state in states.items():
        by_state.setdefault(state, []).append(hook)
    earlier = by_state.get("earlier", [])
    if not installer.not_working(states):
        upgrade = (
            f" (earlier shims, {INSTALL_FIX} upgrades: {', '.join(earlier)})" if earlier else ""
        )
        return Check("hooks", True, f"installed: {', '.join(states)}{upgrade}")
    words = {
        "absent": "not installed",
        "foreign": "another program's hook, gitsnap not chained",
        "modified": "gitsnap's shim edited by hand",
    }
    detail = "; ".join(f"{w}: {', '.join(by_state[s])}" for s, w in words.items() if s in by_state)
    fix = f"{INSTALL_FIX} --force" if set(by_state) & set(words) == {"modified"} else INSTALL_FIX
    return Check("hooks", False, detail, fix)


def _drivers(root: Path) -> list[Check]:
    """Each driver: its ``.git/config`` entry (a clone lacks it) and the ``.gitattributes`` line.

    The attribute is asked of git (``git check-attr``) for a pointer of this
    work tree, so any ``.gitattributes`` that applies counts.
    """
    from gitsnap.hooks import install as i

    probe = next(iter(gitio.pointer_files(root)), f"model{SUFFIX}")
    attrs = _attributes(root, probe, ("diff", "merge"))
    setups = (  # kind, driver, its config entry, the command, the .gitattributes line
        ("diff", i.DIFF_DRIVER, "textconv", i.DIFF_COMMAND, i.DIFF_ATTRIBUTE),
        ("merge", i.MERGE_DRIVER, "driver", i.MERGE_COMMAND, i.MERGE_ATTRIBUTE),
    )  # fmt: skip
    checks = []
    for kind, driver, entry, want, line in setups:
        name, key = f"{kind} driver", f"{kind}.{driver}.{entry}"
        try:
            have = gitio.config_get(root, key)
        except GitsnapError:
            have = None
        if have != want:
            found = "not set" if have is None else f"is {have!r}"
            checks.append(Check(name, False, f"{key} {found}", INSTALL_FIX))
        elif attrs.get(kind) != driver:
            found = f"{probe} has {kind}={attrs.get(kind, 'unspecified')}"
            fix = f"{INSTALL_FIX}, then commit .gitattributes"
            checks.append(Check(name, False, f"{found}: .gitattributes lacks {line!r}", fix))
        else:
            checks.append(Check(name, True, f"{key} = {have}"))
    return checks


def _attributes(root: Path, path: str, names: tuple[str, ...]) -> dict[str, str]:
    """``git check-attr`` of ``path``: attribute -> value ("unspecified" ones left out)."""
    proc = gitio.run(["check-attr", "-z", *names, "--", path], root, check=False)
    tokens = proc.stdout.decode(errors="surrogateescape").split("\0")
    return {
        a: v
        for _, a, v in zip(tokens[::3], tokens[1::3], tokens[2::3], strict=False)
        if v != "unspecified"
    }


def _store(ws: Workspace) -> Check:
    try:
        root = ws.store.root
    except GitsnapError as err:
        return Check("store", False, str(err), err.hint or "dvc cache dir PATH")
    shared = " (shared with the main worktree)" if ws.home_dvc_dir != ws.dvc_dir else ""
    probe = root if root.is_dir() else next((p for p in root.parents if p.exists()), root)
    if not os.access(probe, os.W_OK):
        return Check("store", False, f"{root} is not writable", f"check the permissions of {probe}")
    return Check("store", True, f"{root}{shared}")


def _remote(dvc_dir: Path, *, reach: bool) -> list[Check]:
    config = dvcconfig.load(dvc_dir)
    name = dvcconfig.default_remote(dvc_dir, config)
    remotes = dvcconfig.remotes(dvc_dir, config)
    if name is None:
        named = f" (configured: {', '.join(sorted(remotes))})" if remotes else ""
        fix = (
            f"dvc remote default {sorted(remotes)[0]}"
            if remotes
            else "dvc remote add -d storage URL (or: git snap init --remote URL)"
        )
        return [Check("remote", False, f"no default DVC remote{named}", fix)]
    if name not in remotes:
        fix = f"dvc remote add {name} URL, or choose another: dvc remote default NAME"
        return [Check("remote", False, f"the default DVC remote {name!r} is not configured", fix)]
    url = remotes[name].get("url", "")
    checks = [Check("remote", True, f"{name} -> {url}")]
    no_dvc = missing_dvc(url, name)  # an extra: reviews and local work do without it
    if no_dvc is not None:
        return [*checks, Check("dvc", False, no_dvc.message, no_dvc.hint)]
    scheme = scheme_of(url)
    if scheme in PLUGINS:
        package = PLUGINS[scheme]
        lacking = missing_plugin(url)
        if lacking is not None:
            return [*checks, Check("dvc plugin", False, lacking.message, lacking.hint)]
        checks.append(Check("dvc plugin", True, f"{package} for {scheme}://"))
    if reach:
        checks.append(_reachable(dvc_dir, name))
    return checks


def _reachable(dvc_dir: Path, name: str) -> Check:
    from gitsnap.remote import open_remote

    try:
        open_remote(dvc_dir, name).probe()  # network, credentials, the bucket or folder
    except GitsnapError as err:
        return Check(
            "remote reachable", False, err.message, err.hint or f"dvc remote modify {name} ..."
        )
    return Check("remote reachable", True, f"{name} answered a listing")
