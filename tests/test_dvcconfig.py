"""gitsnap.dvcconfig answers what DVC answers: cache dir and remotes across the four levels.

The reader is a stand-in for ``dvc.config.Config`` on the fast paths (it never
imports dvc), so it is checked against DVC itself: a hypothesis property over
generated configs at every level, a matrix against DVC's cache manager
(``Repo.cache.local_cache_dir``, what ``dvc add`` writes to), and an end-to-end
run of ``dvc cache dir --global`` / ``git snap save`` / ``dvc gc``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitsnap import dvcconfig
from gitsnap.errors import DvcConfigError
from tests.helpers import MakeCheckpoint, RunSnap, dvc, git

LEVELS = ("system", "global", "repo", "local")


@contextlib.contextmanager
def dvc_levels(base: Path) -> Iterator[dict[str, Path]]:
    """A project ``base/proj/.dvc`` plus system and global config dirs of its own."""
    dirs = {
        "system": base / "etc" / "dvc",
        "global": base / "home" / ".config" / "dvc",
        "repo": base / "proj" / ".dvc",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in ("DVC_SYSTEM_CONFIG_DIR", "DVC_GLOBAL_CONFIG_DIR")}
    os.environ["DVC_SYSTEM_CONFIG_DIR"] = os.fspath(dirs["system"])
    os.environ["DVC_GLOBAL_CONFIG_DIR"] = os.fspath(dirs["global"])
    try:
        yield {
            "system": dirs["system"] / "config",
            "global": dirs["global"] / "config",
            "repo": dirs["repo"] / "config",
            "local": dirs["repo"] / "config.local",
        }
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def dvc_answer(dvc_dir: Path) -> tuple[Path, str | None, dict[str, dict[str, str]]]:
    """DVC's own cache dir, default remote and remotes for ``dvc_dir``."""
    from dvc.config import Config

    conf = Config(dvc_dir=os.fspath(dvc_dir))
    raw = Config(dvc_dir=os.fspath(dvc_dir), validate=False)
    cache = conf["cache"].get("dir") or dvc_dir / "cache"
    remotes = {
        name: {k: str(v) for k, v in opts.items() if isinstance(v, str)}
        for name, opts in raw["remote"].items()
    }
    return Path(cache), conf["core"].get("remote"), remotes


def gitsnap_answer(dvc_dir: Path) -> tuple[Path, str | None, dict[str, dict[str, str]]]:
    config = dvcconfig.load(dvc_dir)
    return (
        dvcconfig.cache_dir(dvc_dir, config),
        dvcconfig.default_remote(dvc_dir, config),
        dvcconfig.remotes(dvc_dir, config),
    )


# ---------------------------------------------------------------- generated configs

# Paths as users write them: relative (to the config file's folder), with
# `..`, under `~`, absolute. No quotes or `#` (configobj would need quoting).
_word = st.text(alphabet="abcxyz-_.0", min_size=1, max_size=6).filter(
    lambda w: w not in (".", "..")
)
_rel = st.lists(st.one_of(_word, st.just("..")), min_size=1, max_size=3).map("/".join)
_path = st.one_of(
    _rel,
    _rel.map(lambda p: "~/" + p),
    _rel.map(lambda p: "/abs/" + p),
)

# Remotes of a fixed kind per name, so every level's options fit DVC's schema
# for that URL; "Backup" checks that DVC lower-cases section names.
_REMOTE_KINDS = {
    "storage": "local",
    "Backup": "local",
    "cloud": "s3",
    "box": "ssh",
}


def _remote(kind: str) -> st.SearchStrategy[dict[str, str]]:
    if kind == "local":
        return st.fixed_dictionaries({"url": _path})
    if kind == "s3":
        return st.fixed_dictionaries(
            {"url": _word.map(lambda w: f"s3://bucket/{w}")},
            optional={"endpointurl": st.just("http://127.0.0.1:9000"), "credentialpath": _path},
        )
    return st.fixed_dictionaries(
        {"url": _word.map(lambda w: f"ssh://host/{w}")}, optional={"keyfile": _path}
    )


_level = st.fixed_dictionaries(
    {},
    optional={
        "cache_dir": _path,
        "core_remote": st.sampled_from(["storage", "BACKUP", "backup", "cloud", "box", "nowhere"]),
    },
)


@st.composite
def level_configs(draw: st.DrawFn) -> dict[str, object]:
    level: dict[str, object] = dict(draw(_level))
    names = draw(st.lists(st.sampled_from(sorted(_REMOTE_KINDS)), unique=True, max_size=3))
    level["remotes"] = {n: draw(_remote(_REMOTE_KINDS[n])) for n in names}
    level["style"] = draw(st.sampled_from(["plain", "quoted", "comment", "tight", "dvc", "triple"]))
    return level


def render(level: dict[str, object]) -> str:
    """A config file as a user or ``dvc config`` would write it, in one of a few styles."""
    style = level["style"]
    remotes = level["remotes"]
    assert isinstance(remotes, dict)
    if style == "dvc":  # configobj's writer, as `dvc config` / `dvc remote add` use it
        from configobj import ConfigObj

        conf: dict[str, object] = {}
        if "core_remote" in level:
            conf["core"] = {"remote": level["core_remote"]}
        if "cache_dir" in level:
            conf["cache"] = {"dir": level["cache_dir"]}
        for name, options in remotes.items():
            conf[f'remote "{name}"'] = options
        return "\n".join(ConfigObj(conf).write()) + "\n"

    def line(key: str, value: str) -> str:
        if style == "quoted":
            return f'    {key} = "{value}"'
        if style == "comment":
            return f"{key} = {value}  # set by hand"
        if style == "tight":
            return f"{key}={value}"
        if style == "triple":  # outside the simple subset: configobj reads it
            return f"    {key} = '''{value}'''"
        return f"    {key} = {value}"

    out: list[str] = []
    if "core_remote" in level:
        out += ["[core]", line("remote", str(level["core_remote"]))]
    if "cache_dir" in level:
        out += ["[cache]", line("dir", str(level["cache_dir"]))]
    for name, options in remotes.items():
        out.append(f"['remote \"{name}\"']")
        out += [line(k, v) for k, v in options.items()]
    return "\n".join(out) + "\n"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.fixed_dictionaries({lv: st.none() | level_configs() for lv in LEVELS}))
def test_matches_dvc_config_at_every_level(configs: dict[str, dict[str, object] | None]) -> None:
    with tempfile.TemporaryDirectory() as tmp, dvc_levels(Path(tmp)) as files:
        for lv, conf in configs.items():
            if conf is not None:
                files[lv].write_text(render(conf), encoding="utf-8")
                # The files DVC writes take the fast path, not configobj.
                simple = dvcconfig.parse_simple(files[lv].read_text(encoding="utf-8"))
                assert simple is not None or conf["style"] == "triple"
        dvc_dir = files["repo"].parent
        assert gitsnap_answer(dvc_dir) == dvc_answer(dvc_dir)


# ---------------------------------------------------------------- the fast reader

_plain = st.lists(
    st.sampled_from(["a", "b", "dir", "/x", "~", "..", "s3://b", " ", "-", "'", '"']), max_size=5
).map("".join)
_tricky = st.lists(
    st.sampled_from(["a", " ", "\t", "'", '"', "#", ",", "=", "%(", ")s", "[", "]", "'''"]),
    max_size=6,
).map("".join)
_value = st.one_of(
    _plain,
    _plain.map(lambda v: f'"{v}"'),
    _plain.map(lambda v: f"'{v}'"),
    _plain.map(lambda v: f"{v} # note"),
    _plain.map(lambda v: f'"{v}"  # note'),
    _tricky,
)
_keyline = st.builds(
    lambda indent, k, eq, v: f"{indent}{k}{eq}{v}",
    st.sampled_from(["", "    ", "\t"]),
    st.sampled_from(["dir", "url", "a.b", "K-1", "remote", "Dir"]),
    st.sampled_from([" = ", "=", " =", "= "]),
    _value,
)
_line = st.one_of(
    _keyline,
    _keyline,
    _keyline,
    st.sampled_from(["", "# comment", "  ; semicolon", "[core]", "['remote \"x\"']", "[cache]"]),
    _plain.map(lambda n: f"[{n}]"),
    _plain.map(lambda n: f"['{n}']"),
    _tricky.map(lambda n: f"[{n}]"),
    _tricky,
)
_config_text = st.builds(
    lambda head, lines: head + "\n".join(lines),
    st.sampled_from(["[core]\n", "['remote \"x\"']\n", ""]),
    st.lists(_line, max_size=10),
)


@settings(max_examples=600, deadline=None)
@given(_config_text)
def test_the_fast_reader_reads_what_configobj_reads_or_steps_aside(text: str) -> None:
    import io

    from configobj import ConfigObj

    fast = dvcconfig.parse_simple(text)
    if fast is None:
        return  # configobj reads it (or refuses it) itself
    assert fast == ConfigObj(io.StringIO(text)).dict()


# ---------------------------------------------------------------- DVC's cache manager

CASES = [
    (level, form) for level in LEVELS for form in ("relative", "parent", "absolute", "home")
] + [(None, None)]


@pytest.fixture(scope="module")
def plain_dvc_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dvcproj") / "proj"
    root.mkdir()
    dvc("init", "-q", "--no-scm", cwd=root)
    return root


@pytest.mark.parametrize(("level", "form"), CASES)
def test_cache_dir_is_where_dvc_add_writes(
    plain_dvc_project: Path, tmp_path: Path, level: str | None, form: str | None
) -> None:
    from dvc.repo import Repo

    value = {
        "relative": "shared-cache",
        "parent": "../../elsewhere/cache",
        "absolute": os.fspath(tmp_path / "abs-cache"),
        "home": "~/dvc-cache",
    }
    with dvc_levels(tmp_path) as files:
        files["repo"] = plain_dvc_project / ".dvc" / "config"
        files["local"] = plain_dvc_project / ".dvc" / "config.local"
        originals = {lv: p.read_text() if p.exists() else None for lv, p in files.items()}
        try:
            # A lower level sets a decoy that the chosen level must shadow.
            if level not in (None, "system"):
                files["system"].write_text("[cache]\n    dir = /decoy/system\n")
            if level is not None and form is not None:
                with files[level].open("a", encoding="utf-8") as f:
                    f.write(f"[cache]\n    dir = {value[form]}\n")
            dvc_dir = plain_dvc_project / ".dvc"
            with Repo(os.fspath(plain_dvc_project)) as repo:
                expected = Path(repo.cache.local_cache_dir)
            assert dvcconfig.cache_dir(dvc_dir) == expected
            if level in ("system", "global") and form in ("relative", "parent"):
                # Relative to the folder of the file that says it, not to .dvc/.
                assert expected.is_relative_to(tmp_path)
        finally:
            for lv, text in originals.items():
                if text is None:
                    files[lv].unlink(missing_ok=True)
                else:
                    files[lv].write_text(text)


# ---------------------------------------------------------------- errors


def test_a_config_dvc_refuses_is_refused_with_the_file_named(tmp_path: Path) -> None:
    from dvc.config import Config, ConfigError

    with dvc_levels(tmp_path) as files:
        files["global"].write_text("[cache]\n    dir = /a\n    dir = /b\n")  # duplicate key
        with pytest.raises(ConfigError):
            Config(dvc_dir=os.fspath(files["repo"].parent))
        with pytest.raises(DvcConfigError) as err:
            dvcconfig.cache_dir(files["repo"].parent)
    assert str(files["global"]) in str(err.value)
    assert "dvc config --list --show-origin" in err.value.hint


def test_a_cache_dir_that_is_a_list_or_a_url_is_refused(tmp_path: Path) -> None:
    with dvc_levels(tmp_path) as files:
        dvc_dir = files["repo"].parent
        files["local"].write_text("[cache]\n    dir = /a, /b\n")
        with pytest.raises(DvcConfigError, match=r"cache\.dir is not a single value"):
            dvcconfig.cache_dir(dvc_dir)
        files["local"].write_text("[cache]\n    dir = s3://bucket/cache\n")
        with pytest.raises(DvcConfigError, match="not a local folder") as err:
            dvcconfig.cache_dir(dvc_dir)
    assert "dvc cache dir PATH" in err.value.hint


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_global_cache_dir_holds_the_objects_and_dvc_gc_keeps_them(
    dvc_repo: Path,
    tmp_path: Path,
    make_checkpoint: MakeCheckpoint,
    run_snap: RunSnap,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    global_dir = tmp_path / "dvc-global"
    global_dir.mkdir()
    (global_dir / "config").write_text(
        Path(os.environ["DVC_GLOBAL_CONFIG_DIR"], "config").read_text()
    )
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", os.fspath(global_dir))
    shared = tmp_path / "shared-cache"
    dvc("cache", "dir", "--global", os.fspath(shared))

    (dvc_repo / "data.csv").write_text("a,b\n1,2\n")
    dvc("add", "data.csv")
    ckpt = make_checkpoint(dvc_repo / "model.safetensors", seed=0)
    v1 = ckpt.read_bytes()
    run_snap("save", "model.safetensors", "-m", "v1")
    git("add", "-A")
    git("commit", "-q", "-m", "v1")

    ours = sorted(p for p in (shared / "gitsnap" / "blake3").rglob("*") if p.is_file())
    assert ours, "the objects went to the global cache dir"
    assert not (dvc_repo / ".dvc" / "cache" / "gitsnap").exists()
    assert (shared / "files" / "md5").is_dir()  # and DVC's own objects went there too

    # A DVC version that gc may drop, so the gc below really collects.
    (dvc_repo / "data.csv").write_text("a,b\n3,4\n")
    dvc("add", "data.csv")
    dvc_objects = {p for p in (shared / "files" / "md5").rglob("*") if p.is_file()}
    dvc("gc", "-w", "-f")
    assert {p for p in (shared / "files" / "md5").rglob("*") if p.is_file()} < dvc_objects
    assert sorted(p for p in (shared / "gitsnap" / "blake3").rglob("*") if p.is_file()) == ours

    ckpt.unlink()
    run_snap("checkout")
    assert ckpt.read_bytes() == v1
    assert run_snap("status").stdout.startswith("clean")


def test_status_reads_the_levels_without_importing_dvc(dvc_repo: Path, tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from gitsnap import dvcconfig\n"
        f"print(dvcconfig.cache_dir(Path({os.fspath(dvc_repo / '.dvc')!r})))\n"
        "print(sorted(m for m in ('dvc', 'voluptuous', 'funcy') if m in sys.modules))\n"
    )
    env = {**os.environ, "DVC_GLOBAL_CONFIG_DIR": os.fspath(tmp_path)}
    (tmp_path / "config").write_text("[cache]\n    dir = ../g-cache\n")
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [os.fspath(tmp_path.parent / "g-cache"), "[]"]
