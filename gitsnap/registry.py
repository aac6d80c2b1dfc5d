"""The model registry: versions and stages as GTO-compatible annotated git tags (DESIGN D8).

The full description is ``docs/registry.md``; this is its short form.

Models
    A *model* is a name for one checkpoint path. Names come from
    ``.gitsnap.yaml`` at the top of the work tree::

        models:
          classifier: models/model.safetensors    # or {path: models/model.safetensors}
        stages: [dev, staging, prod]               # optional: the only stages allowed
        key_metrics: [accuracy, loss]              # optional: what `git snap ls` shows

    A checkpoint with a pointer that no entry names gets a default name: the
    last component of its path without the suffix (``models/model.safetensors``
    -> ``model``, the folder ``models/llama-7b`` -> ``llama-7b``), with every
    character GTO does not allow in a name (anything but letters, digits,
    ``-``, ``_``) replaced by ``-``. Two checkpoints with the same default
    name make that name ambiguous until ``.gitsnap.yaml`` names them.

Tags (GTO's grammar, ``gto/constants.py``)
    ``NAME@vX.Y.Z`` registers a version (SemVer 2.0 with a ``v``), and
    ``NAME#STAGE#N`` assigns a stage, ``N`` being one more than the highest
    counter among the model's tags (GTO counts per model, not per stage).
    Both are annotated tags on the commit that holds the snapshot; lightweight
    tags are ignored, as GTO ignores them. When reading, GTO's other events are
    understood too: ``NAME@vX.Y.Z!`` (deregistered), ``NAME#STAGE!#N``
    (unassigned) and ``NAME@deprecated``. A tag message gets two trailer lines
    of ours, ``gitsnap-path:`` and ``gitsnap-snapshot:``, which GTO keeps as
    part of the message.

Stages
    As in GTO's default (``gto show``, sort by time): a stage belongs to the
    version whose latest active assignment is the most recent one (time, then
    counter). A commit with no registered version can hold a stage; it is
    shown by its commit id.

Revisions
    ``NAME@vX.Y.Z``, ``NAME@latest`` and ``NAME#STAGE`` are accepted wherever
    a revision is (checkout, show, diff, push, fetch, metrics): see :func:`resolve`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from gitsnap import gitio
from gitsnap.errors import (
    GitError,
    PointerError,
    RegistryError,
    StageNotAllowed,
    UnknownModel,
    UsageError,
    VersionExists,
)
from gitsnap.pointer import SUFFIX, Pointer, loads, safe_relpath
from gitsnap.pointer.peek import pointer_bytes
from gitsnap.workspace import Workspace

CONFIG_FILE = ".gitsnap.yaml"

# The grammar, as GTO defines it (gto/constants.py); names here have no
# GTO "dirname:" prefix, whose ":" becomes "=" inside a tag.
_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-/_]*[a-zA-Z0-9])?"
_SEMVER = (
    r"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
    r"(?:-(?:(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?"
)
NAME_RE = re.compile(f"^{_NAME}$")
VERSION_RE = re.compile(f"^v{_SEMVER}$")
_ARTIFACT_IN_TAG = f"(?:[a-zA-Z0-9\\-_./]+=)?{_NAME}"
TAG_RE = re.compile(
    f"^(?P<artifact>{_ARTIFACT_IN_TAG})"
    f"(?:(?:#(?P<stage>{_NAME})|@(?P<version>v{_SEMVER}))(?P<cancel>!?)|@(?P<deprecated>deprecated)|@(?P<created>created))"
    r"(?:#(?P<counter>[0-9]+))?$"
)
SHORTCUT_RE = re.compile(
    f"^(?P<name>{_NAME})(?:#(?P<stage>{_NAME})|@(?P<version>latest|greatest|v{_SEMVER}))$"
)

_TRAILER_RE = re.compile(r"^gitsnap-(path|snapshot): (.+)$", re.MULTILINE)
_DEFAULT_NAME_BAD = re.compile(r"[^a-zA-Z0-9_-]+")


# ------------------------------------------------------------------ config and model names


@dataclass(frozen=True)
class RegistryConfig:
    models: dict[str, str] = field(default_factory=dict)  # name -> checkpoint path
    stages: tuple[str, ...] | None = None  # None: any stage name
    key_metrics: tuple[str, ...] = ()


def parse_config(text: str | bytes, source: str = CONFIG_FILE) -> RegistryConfig:
    """Parse ``.gitsnap.yaml``; keys other than models/stages/key_metrics are ignored."""
    import yaml

    def bad(what: str) -> RegistryError:
        return RegistryError(f"{source}: {what}", hint=f"fix {CONFIG_FILE} (see docs/registry.md)")

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise bad(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise bad("the top level must be a mapping")
    models: dict[str, str] = {}
    raw_models = data.get("models") or {}
    if not isinstance(raw_models, dict):
        raise bad("'models' must map names to checkpoint paths")
    for name, value in raw_models.items():
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise bad(
                f"model name {name!r} is not allowed: use letters, digits, '-', '_' or '/', "
                "starting and ending with a letter or digit (GTO's rule)"
            )
        path = value.get("path") if isinstance(value, dict) else value
        if not isinstance(path, str) or not path.strip():
            raise bad(f"model {name!r} needs a checkpoint path")
        path = path.strip().rstrip("/")
        path = path[: -len(SUFFIX)] if path.endswith(SUFFIX) else path
        try:
            safe_relpath(path, f"model {name!r}")
        except PointerError as exc:
            raise bad(exc.message) from None
        path = PurePosixPath(path).as_posix()
        if path in models.values():
            other = next(n for n, p in models.items() if p == path)
            raise bad(f"models {other!r} and {name!r} both name {path}")
        models[name] = path
    stages = data.get("stages")
    if stages is not None:
        if not isinstance(stages, list) or not all(
            isinstance(s, str) and NAME_RE.match(s) for s in stages
        ):
            raise bad("'stages' must be a list of names (letters, digits, '-', '_')")
        stages = tuple(stages)
    key_metrics = data.get("key_metrics") or []
    if not isinstance(key_metrics, list) or not all(isinstance(k, str) for k in key_metrics):
        raise bad("'key_metrics' must be a list of metric names")
    return RegistryConfig(models, stages, tuple(key_metrics))


def load_config(root: Any, commit: str | None = None) -> RegistryConfig:
    """The work tree's ``.gitsnap.yaml`` (or the one at ``commit``); empty when there is none."""
    if commit is None:
        try:
            text: bytes | None = (root / CONFIG_FILE).read_bytes()
        except FileNotFoundError:
            text = None
        source = CONFIG_FILE
    else:
        text = gitio.show_blob(root, commit, CONFIG_FILE)
        source = f"{commit[:10]}:{CONFIG_FILE}"
    return RegistryConfig() if text is None else parse_config(text, source)


def default_name(path: str) -> str | None:
    """``models/model.safetensors`` -> ``model``; None when nothing usable is left."""
    stem = (
        PurePosixPath(path).stem
        if "." in PurePosixPath(path).name[1:]
        else PurePosixPath(path).name
    )
    name = _DEFAULT_NAME_BAD.sub("-", stem).strip("-_")
    return name if name and NAME_RE.match(name) else None


@dataclass(frozen=True)
class Model:
    name: str
    path: str  # repository-relative checkpoint path
    configured: bool  # named in .gitsnap.yaml (else a default name)


@dataclass
class Catalog:
    """Which name means which checkpoint, for one state of the repository."""

    config: RegistryConfig
    models: dict[str, Model]
    ambiguous: dict[str, list[str]]

    def find(self, name: str) -> Model:
        if name in self.models:
            return self.models[name]
        if name in self.ambiguous:
            paths = ", ".join(self.ambiguous[name])
            raise UnknownModel(
                f"model name {name!r} is ambiguous: it is the default name of {paths}",
                hint=f"give each its own name in {CONFIG_FILE}: "
                f"models: {{{name}: PATH, other-name: PATH}}",
            )
        known = ", ".join(sorted(self.models)) or "none yet"
        raise UnknownModel(
            f"unknown model {name!r} (models: {known})",
            hint=f"git snap ls lists the models; name a checkpoint in {CONFIG_FILE} "
            f"(models: {{{name}: path/to/checkpoint}}) or use the default name, "
            "its file name without suffix",
        )

    def name_for(self, path: str) -> str | None:
        for m in self.models.values():
            if m.path == path:
                return m.name
        return None


def catalog(ws: Workspace, extra_paths: Iterable[str] = ()) -> Catalog:
    """Models of the work tree: ``.gitsnap.yaml`` first, then default names of the pointers
    in the work tree, at HEAD and in ``extra_paths``."""
    config = load_config(ws.root)
    models = {name: Model(name, path, True) for name, path in config.models.items()}
    named = set(config.models.values())
    paths = set(ws.pointer_paths()) | set(extra_paths)
    if gitio.has_commits(ws.root):
        paths |= set(ws.pointer_paths("HEAD"))
    by_default: dict[str, list[str]] = {}
    for path in sorted(paths - named):
        name = default_name(path)
        if name is not None and name not in models:
            by_default.setdefault(name, []).append(path)
    ambiguous = {}
    for name, found in by_default.items():
        if len(found) == 1:
            models[name] = Model(name, found[0], False)
        else:
            ambiguous[name] = found
    return Catalog(config, dict(sorted(models.items())), ambiguous)


# ------------------------------------------------------------------ tags -> events -> state


@dataclass(frozen=True)
class Event:
    """One registry tag, read with GTO's grammar."""

    tag: str
    name: str
    action: str  # register, deregister, assign, unassign, deprecate, create
    version: str | None
    stage: str | None
    counter: int | None
    commit: str
    time: int
    tagger: str
    message: str  # the tag message without gitsnap's trailer lines
    path: str | None  # gitsnap-path trailer (tags gitsnap made)
    snapshot_id: str | None  # gitsnap-snapshot trailer


def parse_tag_name(tag: str) -> dict[str, Any] | None:
    """GTO's reading of a tag name: {name, action, version?, stage?, counter?}, or None."""
    m = TAG_RE.match(tag)
    if not m:
        return None
    out: dict[str, Any] = {"name": m["artifact"].replace("=", ":")}
    if m["version"]:
        out.update(version=m["version"], action="deregister" if m["cancel"] else "register")
    elif m["stage"]:
        out.update(stage=m["stage"], action="unassign" if m["cancel"] else "assign")
    else:
        out["action"] = "deprecate" if m["deprecated"] else "create"
    if m["counter"]:
        out["counter"] = int(m["counter"])
    return out


def events(root: Any, name: str | None = None) -> list[Event]:
    """Registry events from annotated tags, oldest first (time, then counter)."""
    found = []
    for t in gitio.annotated_tags(root):
        parsed = parse_tag_name(t.name)
        if parsed is None or (name is not None and parsed["name"] != name):
            continue
        trailers = dict(_TRAILER_RE.findall(t.message))
        message = _TRAILER_RE.sub("", t.message).strip()
        found.append(
            Event(
                tag=t.name,
                name=parsed["name"],
                action=parsed["action"],
                version=parsed.get("version"),
                stage=parsed.get("stage"),
                counter=parsed.get("counter"),
                commit=t.commit,
                time=t.time,
                tagger=t.tagger,
                message=message,
                path=trailers.get("path"),
                snapshot_id=trailers.get("snapshot"),
            )
        )
    found.sort(key=lambda e: (e.time, e.counter if e.counter is not None else -1, e.tag))
    return found


def semver_key(version: str) -> tuple[Any, ...]:
    """Sort key for ``vMAJOR.MINOR.PATCH[-pre][+build]`` in SemVer 2.0 precedence."""
    core, _, _build = version.lstrip("v").partition("+")
    main, _, pre = core.partition("-")
    major, minor, patch = (int(x) for x in main.split("."))
    if not pre:
        return (major, minor, patch, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (major, minor, patch, 0, ids)


def is_prerelease(version: str) -> bool:
    """``v1.2.0-rc.1`` is a pre-release (a ``+build`` suffix is not)."""
    return "-" in version.partition("+")[0]


@dataclass(frozen=True)
class Version:
    version: str
    commit: str
    tag: str
    time: int
    active: bool  # False once deregistered (NAME@vX.Y.Z!)


@dataclass(frozen=True)
class Stage:
    stage: str
    version: str | None  # None: the commit holds no registered version
    commit: str
    tag: str
    time: int


@dataclass(frozen=True)
class State:
    name: str
    versions: list[Version]  # oldest first
    stages: list[Stage]  # sorted by stage name
    deprecated: bool
    max_counter: int

    def active_versions(self) -> list[Version]:
        return [v for v in self.versions if v.active]

    def latest(self, *, pre: bool = False) -> Version | None:
        """The highest active version in SemVer order; a pre-release only with ``pre``."""
        active = [v for v in self.active_versions() if pre or not is_prerelease(v.version)]
        return max(active, key=lambda v: semver_key(v.version)) if active else None

    def version_at(self, commit: str) -> Version | None:
        return next((v for v in self.active_versions() if v.commit == commit), None)

    def stage(self, stage: str) -> Stage | None:
        return next((s for s in self.stages if s.stage == stage), None)


def state_of(name: str, evs: Iterable[Event]) -> State:
    versions: dict[str, Version] = {}
    assigned: dict[tuple[str, str], Event] = {}  # (stage, commit) -> its latest active assignment
    deprecated = False
    max_counter = 0
    for e in evs:
        if e.counter is not None:
            max_counter = max(max_counter, e.counter)
        if e.action == "register" and e.version:
            first = versions.get(e.version)  # registered again after a deregistration: active again
            versions[e.version] = (
                Version(e.version, e.commit, e.tag, e.time, True)
                if first is None
                else (Version(first.version, first.commit, first.tag, first.time, True))
            )
            deprecated = False
        elif e.action == "deregister" and e.version in versions:
            v = versions[e.version]
            versions[e.version] = Version(v.version, v.commit, v.tag, v.time, False)
        elif e.action == "assign" and e.stage:
            assigned[(e.stage, e.commit)] = e
            deprecated = False
        elif e.action == "unassign" and e.stage:
            assigned.pop((e.stage, e.commit), None)
        elif e.action == "deprecate":
            deprecated = True
    by_commit = {v.commit: v.version for v in versions.values() if v.active}
    # As in GTO, a deregistered version holds no stage (an unregistered commit can).
    retired = {v.commit for v in versions.values() if not v.active} - set(by_commit)
    holders: dict[str, Event] = {}
    for (stage, commit), e in assigned.items():
        if commit in retired:
            continue
        best = holders.get(stage)
        if best is None or (e.time, e.counter or 0) > (best.time, best.counter or 0):
            holders[stage] = e
    stages = [
        Stage(s, by_commit.get(e.commit), e.commit, e.tag, e.time)
        for s, e in sorted(holders.items())
    ]
    return State(name, list(versions.values()), stages, deprecated, max_counter)


# ------------------------------------------------------------------ NAME@vX.Y.Z / NAME#stage


@dataclass(frozen=True)
class ModelRef:
    """A registry reference resolved to a commit."""

    text: str
    name: str
    path: str
    commit: str
    version: str | None
    stage: str | None


def looks_like_ref(text: str) -> bool:
    """Cheap syntax check, so plain revisions never pay for reading tags."""
    return bool(SHORTCUT_RE.match(text))


def resolve(ws: Workspace, text: str) -> ModelRef | None:
    """``NAME@vX.Y.Z`` / ``NAME@latest`` / ``NAME#STAGE`` -> the commit and checkpoint path.

    None when ``text`` is not such a reference or NAME has no registry tags
    (then it is an ordinary git revision). Raises RegistryError when NAME is
    registered but the version or stage is not.
    """
    m = SHORTCUT_RE.match(text)
    if not m:
        return None
    name = m["name"]
    evs = events(ws.root, name)
    if not evs:
        return None
    st = state_of(name, evs)
    if m["stage"]:
        held = st.stage(m["stage"])
        if held is None:
            assigned = ", ".join(s.stage for s in st.stages) or "none"
            raise RegistryError(
                f"no version of {name} is in stage {m['stage']!r} (stages: {assigned})",
                hint=f"git snap tag {name} --stage {m['stage']} REV assigns it; "
                f"git snap ls {name} --history",
            )
        commit, version, stage = held.commit, held.version, held.stage
    else:
        if m["version"] in ("latest", "greatest"):
            found = st.latest()
            if found is None:
                pre = st.latest(pre=True)
                raise RegistryError(
                    f"{name} has no registered version"
                    + (f" that is not a pre-release ({pre.version} is one)" if pre else ""),
                    hint=f"name it: {name}@{pre.version}"
                    if pre
                    else f"git snap tag {name} v1.0.0 [REV]",
                )
        else:
            found = next((v for v in st.versions if v.version == m["version"]), None)
            if found is None:
                known = ", ".join(v.version for v in st.active_versions()) or "none"
                raise RegistryError(
                    f"{name} has no version {m['version']} (versions: {known})",
                    hint=f"git snap ls {name} --history lists its tags",
                )
            if not found.active:
                raise RegistryError(
                    f"{name} {found.version} was deregistered", hint=f"git snap ls {name} --history"
                )
        commit, version, stage = found.commit, found.version, None
    return ModelRef(text, name, _path_of(ws, name, commit, evs), commit, version, stage)


def _commit_of(ws: Workspace, rev: str) -> str:
    """The commit a tag goes on: ``rev`` may itself be a registry reference.

    The same rule as :func:`gitsnap.revisions.commit_of`, spelled here because
    the revision query sits above the registry (it resolves registry
    references through :func:`resolve`), not below it.
    """
    ref = resolve(ws, rev) if looks_like_ref(rev) else None
    return ref.commit if ref is not None else gitio.resolve_commit(ws.root, rev)


def _blob_at(ws: Workspace, commit: str, rel: str) -> bytes | None:
    """The raw pointer of checkpoint ``rel`` at ``commit`` (one ``cat-file``), or None."""
    spec = f"{commit}:{rel}{SUFFIX}"
    return gitio.cat_blobs(ws.root, [spec]).get(spec)


def _path_of(ws: Workspace, name: str, commit: str, evs: list[Event]) -> str:
    """The checkpoint a name means: work tree naming, else the tag's trailer, else the commit's."""
    try:
        return catalog(ws).find(name).path
    except UnknownModel:
        pass
    for e in reversed(evs):
        if e.commit == commit and e.path:
            return e.path
    config = load_config(ws.root, commit)
    if name in config.models:
        return config.models[name]
    paths = [
        p
        for p in ws.pointer_paths(commit)
        if default_name(p) == name and p not in config.models.values()
    ]
    if len(paths) == 1:
        return paths[0]
    raise UnknownModel(
        f"cannot tell which checkpoint model {name!r} is at commit {commit[:10]}",
        hint=f"name it in {CONFIG_FILE}: models: {{{name}: path/to/checkpoint}}",
    )


# ------------------------------------------------------------------ creating tags


@dataclass(frozen=True)
class TagResult:
    tag: str
    action: str  # "register" or "assign"
    name: str
    path: str
    commit: str
    version: (
        str | None
    )  # the version registered, or the one that gets the stage (None: unregistered commit)
    stage: str | None
    snapshot_id: str
    pushed_to: str | None  # git remote the tag was pushed to
    worktree_differs: bool  # no REV given and the work tree's pointer is not HEAD's


def normalize_version(version: str) -> str:
    v = version if version.startswith("v") else f"v{version}"
    if not VERSION_RE.match(v):
        raise UsageError(
            f"{version!r} is not a semantic version",
            hint="use vMAJOR.MINOR.PATCH, e.g. v1.2.0 or v2.0.0-rc.1 (the 'v' may be left out)",
        )
    return v


def _target(ws: Workspace, model: Model, rev: str | None) -> tuple[str, Pointer, bool]:
    """(commit, its pointer of the model, work tree differs) for the REV a tag goes on."""
    if rev is None and not gitio.has_commits(ws.root):
        raise GitError("there is no commit to tag yet", hint=f"commit {model.path}{SUFFIX} first")
    commit = _commit_of(ws, rev or "HEAD")
    raw = _blob_at(ws, commit, model.path)
    if raw is None:
        raise RegistryError(
            f"commit {commit[:10]} has no snapshot of {model.path} (model {model.name})",
            hint=f"git snap save {model.path}, commit {model.path}{SUFFIX}, then tag that commit "
            f"(git snap log {model.path} lists the commits that have one)",
        )
    ptr = loads(raw, source=f"{commit[:10]}:{model.path}{SUFFIX}")
    differs = False
    if rev is None:
        try:
            differs = pointer_bytes(ws.root / (model.path + SUFFIX)) != raw
        except FileNotFoundError:
            differs = False
    return commit, ptr, differs


def _message(first: str, user: str | None, model: Model, ptr: Pointer) -> str:
    body = (user or first).strip()
    return f"{body}\n\ngitsnap-path: {model.path}\ngitsnap-snapshot: {ptr.id}\n"


def _tag_exists(ws: Workspace, tag: str) -> bool:
    return (
        gitio.run(
            ["rev-parse", "--verify", "--quiet", f"refs/tags/{tag}"], ws.root, check=False
        ).returncode
        == 0
    )


def _push(ws: Workspace, tag: str, push: bool) -> str | None:
    if not push:
        return None
    gitio.push_refs(ws.root, "origin", [f"refs/tags/{tag}"])
    return "origin"


def register(
    ws: Workspace,
    name: str,
    version: str,
    rev: str | None = None,
    *,
    message: str | None = None,
    push: bool = False,
) -> TagResult:
    """Create ``NAME@vX.Y.Z`` on the commit (default HEAD) that holds the model's snapshot."""
    model = catalog(ws).find(name)
    version = normalize_version(version)
    commit, ptr, differs = _target(ws, model, rev)
    st = state_of(name, events(ws.root, name))
    tag = f"{name}@{version}"
    taken = next((v for v in st.versions if v.version == version), None)
    if taken is not None or _tag_exists(ws, tag):
        where = f" on commit {taken.commit[:10]}" if taken else ""
        latest = st.latest(pre=True)
        raise VersionExists(
            f"{name} {version} is already registered{where} (tag {tag})",
            hint=f"choose a new version{f' (the latest is {latest.version})' if latest else ''}; "
            f"git snap ls {name} --history lists them",
        )
    at = st.version_at(commit)
    if at is not None:
        raise VersionExists(
            f"commit {commit[:10]} is already registered as {name} {at.version}",
            hint="a commit holds one version of a model (as in GTO); "
            "save and commit a new snapshot "
            f"to register {version}, or refer to it as {name}@{at.version}",
        )
    text = _message(f"Registering artifact {name} version {version}", message, model, ptr)
    gitio.create_annotated_tag(ws.root, tag, commit, text)
    return TagResult(
        tag,
        "register",
        name,
        model.path,
        commit,
        version,
        None,
        ptr.id,
        _push(ws, tag, push),
        differs,
    )


def assign(
    ws: Workspace,
    name: str,
    stage: str,
    rev: str | None = None,
    *,
    message: str | None = None,
    push: bool = False,
) -> TagResult:
    """Create ``NAME#STAGE#N`` on the commit (default HEAD; ``NAME@vX.Y.Z`` works)."""
    cat = catalog(ws)
    model = cat.find(name)
    if not NAME_RE.match(stage):
        raise UsageError(
            f"stage name {stage!r} is not allowed",
            hint="use letters, digits, '-' or '_', starting and ending with a letter or digit",
        )
    allowed = cat.config.stages
    if allowed is not None and stage not in allowed:
        raise StageNotAllowed(
            f"stage {stage!r} is not one of the stages {CONFIG_FILE} allows: "
            f"{', '.join(allowed) or 'none'}",
            hint=f"use one of them, or add {stage!r} to 'stages:' in {CONFIG_FILE}",
        )
    commit, ptr, differs = _target(ws, model, rev)
    st = state_of(name, events(ws.root, name))
    held = st.stage(stage)
    version = st.version_at(commit)
    label = version.version if version else f"commit {commit[:10]}"
    if held is not None and held.commit == commit:
        raise RegistryError(
            f"{name} {label} is already in stage {stage!r} (tag {held.tag})",
            hint=f"git snap ls {name} shows the stages",
        )
    tag = f"{name}#{stage}#{st.max_counter + 1}"
    text = _message(
        f"Assigning stage {stage} to artifact {name} {'version ' if version else ''}{label}",
        message,
        model,
        ptr,
    )
    gitio.create_annotated_tag(ws.root, tag, commit, text)
    return TagResult(
        tag,
        "assign",
        name,
        model.path,
        commit,
        version.version if version else None,
        stage,
        ptr.id,
        _push(ws, tag, push),
        differs,
    )


# ------------------------------------------------------------------ listing


@dataclass(frozen=True)
class ModelSummary:
    name: str
    path: str | None
    version: str | None  # latest registered version (SemVer order; pre-releases only with pre)
    commit: str | None  # the latest version's commit; else HEAD when it holds the model
    snapshot_id: str | None
    size: int | None
    stages: list[Stage]
    versions: int  # active registered versions
    metrics: dict[str, Any]  # key metrics at ``commit``: pointer, then the commit's note on top
    deprecated: bool


@dataclass(frozen=True)
class HistoryEntry:
    time: int
    action: str
    tag: str
    version: str | None
    stage: str | None
    commit: str
    tagger: str
    message: str
    snapshot_id: str | None


@dataclass(frozen=True)
class ModelHistory:
    name: str
    path: str | None
    summary: ModelSummary
    events: list[HistoryEntry]  # newest first


def _snapshot_at(ws: Workspace, commit: str, path: str | None) -> Pointer | None:
    if path is None:
        return None
    raw = _blob_at(ws, commit, path)
    if raw is None:
        return None
    try:
        return loads(raw, source=f"{commit[:10]}:{path}{SUFFIX}")
    except PointerError:
        return None


def _metrics_at(
    ws: Workspace, commit: str, ptr: Pointer | None, keys: tuple[str, ...]
) -> dict[str, Any]:
    from gitsnap import notes

    metrics: dict[str, Any] = dict(ptr.metrics) if ptr else {}
    note = notes.read(ws.root, commit)
    if note:
        metrics.update(note.metrics)
    if keys:
        metrics = {k: metrics[k] for k in keys if k in metrics}
    return dict(sorted(metrics.items())) if not keys else metrics


def _summary(  # noqa: PLR0917 - one row of summaries
    ws: Workspace, cat: Catalog, name: str, evs: list[Event], head: str | None, pre: bool
) -> ModelSummary:
    st = state_of(name, evs)
    model = cat.models.get(name)
    path = model.path if model else next((e.path for e in reversed(evs) if e.path), None)
    latest = st.latest(pre=pre)
    commit = latest.commit if latest else None
    if commit is None and head is not None and path is not None and _blob_at(ws, head, path):
        commit = head
    ptr = _snapshot_at(ws, commit, path) if commit else None
    return ModelSummary(
        name=name,
        path=path,
        version=latest.version if latest else None,
        commit=commit,
        snapshot_id=ptr.id if ptr else None,
        size=ptr.size if ptr else None,
        stages=st.stages,
        versions=len(st.active_versions()),
        metrics=_metrics_at(ws, commit, ptr, cat.config.key_metrics) if commit else {},
        deprecated=st.deprecated,
    )


def summaries(ws: Workspace, name: str | None = None, *, pre: bool = False) -> list[ModelSummary]:
    """Every model (named, or with registry tags), or just ``name``.

    The latest version is the highest in SemVer order that is not a
    pre-release (``v1.2.0-rc.1``); with ``pre``, pre-releases count too.
    """
    evs = events(ws.root)
    by_name: dict[str, list[Event]] = {}
    for e in evs:
        by_name.setdefault(e.name, []).append(e)
    cat = catalog(ws)
    head = gitio.resolve_commit(ws.root, "HEAD") if gitio.has_commits(ws.root) else None
    if name is not None:
        if name not in by_name:
            cat.find(name)  # raises UnknownModel for a name that is neither named nor tagged
        names = [name]
    else:
        names = sorted(set(cat.models) | set(by_name))
    return [_summary(ws, cat, n, by_name.get(n, []), head, pre) for n in names]


def history(ws: Workspace, name: str, *, pre: bool = False) -> ModelHistory:
    """Every registry event of ``name``, newest first, with the snapshot each commit holds."""
    [summary] = summaries(ws, name, pre=pre)
    evs = events(ws.root, name)
    entries = []
    for e in reversed(evs):
        snap = e.snapshot_id
        if snap is None and summary.path is not None:
            ptr = _snapshot_at(ws, e.commit, summary.path)
            snap = ptr.id if ptr else None
        entries.append(
            HistoryEntry(
                e.time, e.action, e.tag, e.version, e.stage, e.commit, e.tagger, e.message, snap
            )
        )
    return ModelHistory(name, summary.path, summary, entries)
