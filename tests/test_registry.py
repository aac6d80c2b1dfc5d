"""The registry (issue 7, point 1 and 5): versions and stages as GTO-compatible annotated tags.

Real git tags in real repositories; GTO's own parser and registry (the
``gto`` package, when importable) read what ``git snap tag`` writes, and
gitsnap reads what ``gto`` writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import commit_all, git, make_checkpoint, run_snap

MODEL = "models/model.safetensors"


def _version(
    repo: Path, n: int, *, path: str = MODEL, acc: float | None = None
) -> tuple[str, bytes]:
    """Save the n-th fine-tune of the model at ``path``, commit it; (commit, checkpoint bytes)."""
    ckpt = make_checkpoint(repo / path, seed=0, modify=("head",) if n > 1 else (), modify_seed=n)
    args = ["save", path, "-m", f"v{n}"]
    if acc is not None:
        args += ["-M", f"accuracy={acc}"]
    run_snap(*args, cwd=repo)
    return commit_all(repo, f"{path} v{n}"), ckpt.read_bytes()


def _json(*args: str, cwd: Path) -> Any:
    return json.loads(run_snap(*args, "--json", cwd=cwd).stdout)


def _tag_object(repo: Path, tag: str) -> tuple[str, str, str]:
    """(object type of the ref, peeled commit, message) as git itself sees the tag."""
    kind = git("cat-file", "-t", f"refs/tags/{tag}", cwd=repo).stdout.strip()
    commit = git("rev-parse", f"refs/tags/{tag}^{{commit}}", cwd=repo).stdout.strip()
    message = git("tag", "-l", "--format=%(contents)", tag, cwd=repo).stdout
    return kind, commit, message


@pytest.fixture
def registry_repo(dvc_repo: Path) -> dict[str, Any]:
    """A model with three committed versions: v1 (acc 0.81), v2 (0.86), v3 (0.9)."""
    out: dict[str, Any] = {"repo": dvc_repo}
    for n, acc in ((1, 0.81), (2, 0.86), (3, 0.9)):
        out[n] = _version(dvc_repo, n, acc=acc)
    return out


def test_tags_are_annotated_with_gto_names_and_counters(registry_repo: dict[str, Any]) -> None:
    repo = registry_repo["repo"]
    c1, c2, c3 = registry_repo[1][0], registry_repo[2][0], registry_repo[3][0]

    out = run_snap("tag", "model", "v1.0.0", c1, cwd=repo).stdout
    assert "registered model v1.0.0: tag model@v1.0.0" in out
    run_snap("tag", "model", "1.1.0", c2, "-m", "better head", cwd=repo)  # the "v" may be left out
    run_snap("tag", "model", "v2.0.0-rc.1", cwd=repo)  # HEAD
    res = _json("tag", "model", "--stage", "staging", "model@v1.1.0", cwd=repo)
    assert res["tag"] == "model#staging#1" and res["version"] == "v1.1.0" and res["commit"] == c2
    run_snap("tag", "model", "--stage", "prod", c1, cwd=repo)
    run_snap("tag", "model", "-s", "prod", "model@v1.1.0", cwd=repo)

    tags = sorted(git("tag", "-l", cwd=repo).stdout.split())
    assert tags == sorted(
        [
            "model@v1.0.0",
            "model@v1.1.0",
            "model@v2.0.0-rc.1",
            "model#staging#1",
            "model#prod#2",
            "model#prod#3",
        ]
    )
    kind, commit, message = _tag_object(repo, "model@v1.0.0")
    assert (kind, commit) == ("tag", c1)  # annotated, on the commit that holds the snapshot
    assert message.startswith("Registering artifact model version v1.0.0")
    assert f"gitsnap-path: {MODEL}" in message and "gitsnap-snapshot: " in message
    assert _tag_object(repo, "model@v1.1.0")[2].startswith("better head")
    assert _tag_object(repo, "model@v2.0.0-rc.1")[1] == c3
    kind, commit, message = _tag_object(repo, "model#prod#3")
    assert (kind, commit) == ("tag", c2)
    assert message.startswith("Assigning stage prod to artifact model version v1.1.0")


def test_ls_shows_latest_version_stages_metrics_and_commit(registry_repo: dict[str, Any]) -> None:
    repo = registry_repo["repo"]
    c1, c2 = registry_repo[1][0], registry_repo[2][0]
    run_snap("tag", "model", "v1.0.0", c1, cwd=repo)
    run_snap("tag", "model", "v1.1.0", c2, cwd=repo)
    run_snap("tag", "model", "--stage", "prod", "model@v1.0.0", cwd=repo)
    run_snap("tag", "model", "--stage", "staging", "model@v1.1.0", cwd=repo)
    run_snap("metrics", "add", "--rev", c2, "eval.f1=0.7", cwd=repo)  # a note after the fact

    [m] = _json("ls", cwd=repo)
    assert m["name"] == "model" and m["path"] == MODEL
    assert m["version"] == "v1.1.0" and m["commit"] == c2 and m["versions"] == 2
    assert {s["stage"]: (s["version"], s["commit"]) for s in m["stages"]} == {
        "prod": ("v1.0.0", c1),
        "staging": ("v1.1.0", c2),
    }
    assert m["metrics"] == {"accuracy": 0.86, "eval.f1": 0.7}
    text = run_snap("ls", cwd=repo).stdout
    header, row = text.splitlines()
    assert header.split()[:5] == ["MODEL", "VERSION", "STAGES", "COMMIT", "METRICS"]
    assert row.split()[:4] == ["model", "v1.1.0", "prod=v1.0.0", "staging=v1.1.0"]
    assert c2[:10] in row and "accuracy=0.86" in row and MODEL in row

    # The stage moves: the newest assignment wins (GTO's default), and checkout follows it.
    run_snap("tag", "model", "--stage", "prod", "model@v1.1.0", cwd=repo)
    [m] = _json("ls", "model", cwd=repo)
    assert {s["stage"]: s["version"] for s in m["stages"]} == {
        "prod": "v1.1.0",
        "staging": "v1.1.0",
    }

    hist = _json("ls", "model", "--history", cwd=repo)
    assert [e["tag"] for e in hist["events"]] == [
        "model#prod#3",
        "model#staging#2",
        "model#prod#1",
        "model@v1.1.0",
        "model@v1.0.0",
    ]
    assert [e["action"] for e in hist["events"]][-1] == "register"
    assert (
        hist["events"][0]["snapshot_id"]
        == _json("show", f"{c2}:{MODEL}", cwd=repo)["pointer"]["id"]
    )
    text = run_snap("ls", "model", "--history", cwd=repo).stdout
    assert "model#prod#3" in text and "stage prod assigned" in text and "registered v1.0.0" in text


def test_checkout_show_and_diff_resolve_versions_and_stages(registry_repo: dict[str, Any]) -> None:
    repo = registry_repo["repo"]
    (c1, v1), (c2, v2) = registry_repo[1], registry_repo[2]
    v3 = registry_repo[3][1]
    run_snap("tag", "model", "v1.0.0", c1, cwd=repo)
    run_snap("tag", "model", "v1.1.0", c2, cwd=repo)
    run_snap("tag", "model", "--stage", "prod", "model@v1.0.0", cwd=repo)

    ckpt = repo / MODEL
    run_snap("checkout", "model#prod", cwd=repo)
    assert ckpt.read_bytes() == v1
    run_snap("checkout", "model@v1.1.0", cwd=repo)
    assert ckpt.read_bytes() == v2
    run_snap("checkout", "model@latest", cwd=repo)
    assert ckpt.read_bytes() == v2
    run_snap("checkout", "HEAD", cwd=repo)
    assert ckpt.read_bytes() == v3
    out = run_snap("checkout", "model#prod", "--to", "export", cwd=repo).stdout
    assert (repo / "export" / MODEL).read_bytes() == v1, out

    shown = _json("show", "model#prod", cwd=repo)
    assert shown["commit"] == c1 and shown["rev"] == "model#prod" and shown["path"] == MODEL
    assert _json("show", f"model@v1.1.0:{MODEL}", cwd=repo)["commit"] == c2

    d = _json("diff", "model#prod", "model@v1.1.0", cwd=repo)
    assert [ck["path"] for ck in d["checkpoints"]] == [MODEL]
    assert d["before"] == {"label": "model#prod", "commit": c1}
    assert d["after"] == {"label": "model@v1.1.0", "commit": c2}
    # REV:PATH with a registry revision, beside a registry reference alone
    d = _json("diff", f"model@v1.1.0:{MODEL}", "model#prod", cwd=repo)
    assert (d["before"]["commit"], d["after"]["commit"]) == (c2, c1)
    assert d["before"]["label"] == f"model@v1.1.0:{MODEL}"
    assert [ck["path"] for ck in d["checkpoints"]] == [MODEL]
    assert "model#prod" in run_snap("diff", "model#prod", "model@v1.1.0", cwd=repo).stdout

    # metrics notes take registry references too
    run_snap("metrics", "add", "--rev", "model#prod", "online.ctr=0.031", cwd=repo)
    assert (
        git("notes", "--ref=refs/notes/gitsnap", "show", c1, cwd=repo).stdout.count("online.ctr")
        == 1
    )


def test_push_and_fetch_take_registry_references(
    registry_repo: dict[str, Any], local_remote: Path, tmp_path: Path
) -> None:
    repo = registry_repo["repo"]
    c1, v1 = registry_repo[1]
    run_snap("tag", "model", "v1.0.0", c1, cwd=repo)
    run_snap("tag", "model", "--stage", "prod", "model@v1.0.0", cwd=repo)
    res = _json("push", "model#prod", cwd=repo)
    assert res["snapshots"] == 1 and res["objects_transferred"] == res["objects"] > 0
    clone = tmp_path / "clone"
    git("clone", "-q", repo, clone)
    run_snap("pull", "model#prod", cwd=clone)
    assert (clone / MODEL).read_bytes() == v1


def test_named_models_and_allowed_stages_from_gitsnap_yaml(dvc_repo: Path) -> None:
    (dvc_repo / ".gitsnap.yaml").write_text(
        "models:\n  classifier: models/model.safetensors\n"
        "  encoder: {path: enc/encoder.safetensors}\n"
        "stages: [dev, staging, prod]\nkey_metrics: [accuracy]\n"
    )
    _version(dvc_repo, 1, acc=0.8)
    make_checkpoint(dvc_repo / "enc" / "encoder.safetensors", seed=5)
    run_snap(
        "save", "enc/encoder.safetensors", "-M", "accuracy=0.5", "-M", "loss=1.5", cwd=dvc_repo
    )
    commit_all(dvc_repo, "encoder")

    run_snap("tag", "classifier", "v1.0.0", cwd=dvc_repo)
    run_snap("tag", "encoder", "v0.1.0", cwd=dvc_repo)
    run_snap("tag", "classifier", "--stage", "prod", cwd=dvc_repo)
    models = {m["name"]: m for m in _json("ls", cwd=dvc_repo)}
    assert set(models) == {"classifier", "encoder"}  # configured names replace the default ones
    assert models["encoder"]["path"] == "enc/encoder.safetensors"
    assert models["encoder"]["metrics"] == {"accuracy": 0.5}  # only the key metrics

    proc = run_snap("tag", "classifier", "--stage", "production", cwd=dvc_repo, check=False)
    assert proc.returncode == 3
    assert (
        "stage 'production' is not one of the stages .gitsnap.yaml allows: dev, staging, prod"
        in proc.stderr
    )
    assert "hint: use one of them, or add 'production' to 'stages:'" in proc.stderr

    proc = run_snap("tag", "model", "v1.0.0", cwd=dvc_repo, check=False)  # the default name is gone
    assert proc.returncode == 3
    assert (
        "unknown model 'model' (models: classifier, encoder)" in proc.stderr
        and "hint: " in proc.stderr
    )


def test_clear_errors(registry_repo: dict[str, Any]) -> None:
    repo = registry_repo["repo"]
    c1 = registry_repo[1][0]
    run_snap("tag", "model", "v1.0.0", c1, cwd=repo)

    proc = run_snap("tag", "modle", "v1.0.0", cwd=repo, check=False)
    assert proc.returncode == 3
    assert "error: unknown model 'modle' (models: model)" in proc.stderr
    assert "hint: git snap ls lists the models" in proc.stderr

    proc = run_snap("tag", "model", "v1.0.0", cwd=repo, check=False)
    assert proc.returncode == 3
    assert (
        f"error: model v1.0.0 is already registered on commit {c1[:10]} (tag model@v1.0.0)"
        in proc.stderr
    )
    assert "hint: choose a new version (the latest is v1.0.0)" in proc.stderr

    proc = run_snap("tag", "model", "v1.0.1", c1, cwd=repo, check=False)
    assert proc.returncode == 3 and "is already registered as model v1.0.0" in proc.stderr

    proc = run_snap("tag", "model", "1.2", cwd=repo, check=False)
    assert proc.returncode == 2 and "'1.2' is not a semantic version" in proc.stderr

    proc = run_snap("tag", "model", "--stage", "pr*d", cwd=repo, check=False)
    assert proc.returncode == 2 and "stage name 'pr*d' is not allowed" in proc.stderr

    proc = run_snap(
        "tag", "model", "v9.0.0", "HEAD~3", cwd=repo, check=False
    )  # the dvc init commit
    assert proc.returncode == 3 and "has no snapshot of models/model.safetensors" in proc.stderr

    run_snap("tag", "model", "--stage", "prod", c1, cwd=repo)
    proc = run_snap("tag", "model", "--stage", "prod", "model@v1.0.0", cwd=repo, check=False)
    assert proc.returncode == 3 and "is already in stage 'prod'" in proc.stderr

    proc = run_snap("checkout", "model#staging", cwd=repo, check=False)
    assert proc.returncode == 3 and "no version of model is in stage 'staging'" in proc.stderr
    proc = run_snap("checkout", "model@v7.0.0", cwd=repo, check=False)
    assert proc.returncode == 3 and "model has no version v7.0.0 (versions: v1.0.0)" in proc.stderr

    proc = run_snap("ls", "nothing", cwd=repo, check=False)
    assert proc.returncode == 3 and "unknown model 'nothing'" in proc.stderr
    proc = run_snap("ls", "--history", cwd=repo, check=False)
    assert proc.returncode == 2 and "--history needs a model name" in proc.stderr
    proc = run_snap("tag", "model", cwd=repo, check=False)
    assert proc.returncode == 2 and "give a VERSION or --stage STAGE" in proc.stderr


def test_default_names_and_ambiguity(dvc_repo: Path) -> None:
    from gitsnap.registry import default_name

    assert default_name("models/model.safetensors") == "model"
    assert default_name("ckpt/llama-7b") == "llama-7b"
    assert default_name("a/model.v2.safetensors") == "model-v2"
    assert default_name("weights/final model (1).pt") == "final-model-1"

    _version(dvc_repo, 1, path="a/model.safetensors")
    _version(dvc_repo, 1, path="b/model.safetensors")
    proc = run_snap("tag", "model", "v1.0.0", cwd=dvc_repo, check=False)
    assert proc.returncode == 3
    assert (
        "model name 'model' is ambiguous: it is the default name of "
        "a/model.safetensors, b/model.safetensors" in proc.stderr
    )
    assert "hint: give each its own name in .gitsnap.yaml" in proc.stderr


def test_tag_push_reaches_origin(registry_repo: dict[str, Any], bare_origin: Path) -> None:
    repo = registry_repo["repo"]
    res = _json("tag", "model", "v1.0.0", "--push", cwd=repo)
    assert res["pushed_to"] == "origin"
    assert git("cat-file", "-t", "refs/tags/model@v1.0.0", cwd=bare_origin).stdout.strip() == "tag"


def test_work_tree_ahead_of_head_is_pointed_out(registry_repo: dict[str, Any]) -> None:
    repo = registry_repo["repo"]
    make_checkpoint(repo / MODEL, seed=9)
    run_snap("save", MODEL, cwd=repo)  # saved, not committed
    res = _json("tag", "model", "v1.0.0", cwd=repo)
    assert res["commit"] == registry_repo[3][0] and res["worktree_differs"] is True
    assert "differs from HEAD's" in run_snap("tag", "model", "--stage", "dev", cwd=repo).stdout


# ---------------------------------------------------------------- GTO reads our tags, we read GTO's


@pytest.fixture
def gto() -> Any:
    import gto

    return gto


def test_gto_reads_our_tags(gto: Any, registry_repo: dict[str, Any]) -> None:
    from gto import api as gto_api
    from gto.tag import parse_name

    repo = registry_repo["repo"]
    (c1, _), (c2, _) = registry_repo[1], registry_repo[2]
    # GTO orders a stage's assignments by the tags' dates (whole seconds): give each tag
    # its own second, as tags made by hand have; within one second GTO's choice is arbitrary.
    for second, args in enumerate(
        [
            ("model", "v1.0.0", c1),
            ("model", "v1.1.0", c2),
            ("model", "--stage", "prod", "model@v1.0.0"),
            ("model", "--stage", "staging", "model@v1.1.0"),
            ("model", "--stage", "prod", "model@v1.1.0"),
        ]
    ):
        when = {"GIT_COMMITTER_DATE": f"2026-01-01T00:00:{second:02d}Z"}
        run_snap("tag", *args, cwd=repo, env=when)

    parsed = {t: parse_name(t) for t in git("tag", "-l", cwd=repo).stdout.split()}
    assert (
        parsed["model@v1.0.0"]["version"] == "v1.0.0"
        and parsed["model@v1.0.0"]["action"].value == "register"
    )
    assert parsed["model#prod#3"] == {
        "name": "model",
        "stage": "prod",
        "action": parsed["model#prod#3"]["action"],
        "counter": 3,
    }
    assert parsed["model#prod#3"]["action"].value == "assign"

    ours = _json("ls", cwd=repo)[0]
    theirs = gto_api.show(str(repo))["model"]  # GTO's own registry, built from the same tags
    assert theirs["version"] == ours["version"] == "v1.1.0"
    assert (
        theirs["stage"]
        == {s["stage"]: s["version"] for s in ours["stages"]}
        == {"prod": "v1.1.0", "staging": "v1.1.0"}
    )
    [in_prod] = gto_api.find_versions_in_stage(str(repo), "model", "prod")
    assert in_prod.commit_hexsha == c2


def test_we_read_tags_gto_writes(gto: Any, registry_repo: dict[str, Any]) -> None:
    from gto import api as gto_api

    repo = registry_repo["repo"]
    (c1, v1), (c2, _) = registry_repo[1], registry_repo[2]
    gto_api.register(str(repo), "model", c1, version="v0.3.0")
    gto_api.register(str(repo), "model", c2, version="v0.4.0")
    gto_api.assign(str(repo), "model", "prod", version="v0.3.0")
    gto_api.assign(str(repo), "model", "dev", version="v0.4.0")
    gto_api.deregister(str(repo), "model", version="v0.4.0")

    assert "model@v0.4.0!" in git("tag", "-l", cwd=repo).stdout.split()
    [m] = _json("ls", cwd=repo)
    assert m["version"] == "v0.3.0"  # v0.4.0 was deregistered, and with it its stage (as GTO says)
    assert {s["stage"]: s["commit"] for s in m["stages"]} == {"prod": c1}
    assert gto_api.show(str(repo))["model"]["stage"] == {"prod": "v0.3.0"}
    run_snap("checkout", "model#prod", cwd=repo)
    assert (repo / MODEL).read_bytes() == v1
    # our next assignment continues GTO's counter (per model: prod#1, dev#2)
    assert (
        _json("tag", "model", "--stage", "staging", "model@v0.3.0", cwd=repo)["tag"]
        == "model#staging#3"
    )
    actions = [e["action"] for e in _json("ls", "model", "--history", cwd=repo)["events"]]
    assert "deregister" in actions


def test_our_grammar_matches_gtos(gto: Any) -> None:
    """Our regexes agree with GTO's published ones on names, versions, stages and the odd cases."""
    from gto.constants import shortcut_re, tag_re

    from gitsnap import registry

    names = [
        "model@v1.2.0",
        "model@v1.2.0!",
        "model#prod#1",
        "model#prod!#7",
        "model@deprecated",
        "model@deprecated#3",
        "nested/name@v0.0.1",
        "dir=model@v1.0.0",
        "model#prod",
        "my_model-2@v10.20.30-rc.1+build.5",
        "model@1.2.0",
        "model@v01.2.0",
        "-model@v1.0.0",
        "model#pr.od#1",
        "model#prod#x",
        "model",
        "model@v1.2",
    ]
    for name in names:
        theirs = tag_re.match(name)
        assert (registry.TAG_RE.match(name) is not None) == (theirs is not None), name
        if theirs:
            ours = registry.TAG_RE.match(name)
            assert ours is not None
            for group in ("artifact", "stage", "version", "counter", "cancel"):
                assert (ours[group] or None) == (theirs[group] or None), (name, group)
    for ref in [
        "model#prod",
        "model@v1.0.0",
        "model@latest",
        "model@greatest",
        "model",
        "HEAD~1",
        "main@{1}",
    ]:
        assert registry.looks_like_ref(ref) == bool(shortcut_re.match(ref)), ref


def test_ls_latest_is_the_highest_release_in_semver_order(registry_repo: dict[str, Any]) -> None:
    repo = registry_repo["repo"]
    c1, c2, c3 = registry_repo[1][0], registry_repo[2][0], registry_repo[3][0]
    run_snap("tag", "model", "v1.10.0", c2, cwd=repo)  # tagged before v1.9.0: order is SemVer's
    run_snap("tag", "model", "v1.9.0", c1, cwd=repo)
    run_snap("tag", "model", "v1.11.0-rc.1", c3, cwd=repo)

    [m] = _json("ls", cwd=repo)
    assert (m["version"], m["commit"], m["versions"]) == ("v1.10.0", c2, 3)
    assert run_snap("ls", cwd=repo).stdout.splitlines()[1].split()[:2] == ["model", "v1.10.0"]
    [m] = _json("ls", "--pre", cwd=repo)
    assert (m["version"], m["commit"]) == ("v1.11.0-rc.1", c3)
    assert _json("ls", "model", "--history", cwd=repo)["summary"]["version"] == "v1.10.0"
    assert _json("ls", "model", "--history", "--pre", cwd=repo)["summary"]["version"] == (
        "v1.11.0-rc.1"
    )
    # NAME@latest means the same version as ls
    assert _json("show", "model@latest", cwd=repo)["commit"] == c2


def test_a_pre_release_is_below_its_release_and_never_latest_alone() -> None:
    from gitsnap import registry

    order = ["v1.2.0-alpha", "v1.2.0-alpha.1", "v1.2.0-alpha.beta", "v1.2.0-beta.2",
             "v1.2.0-beta.11", "v1.2.0-rc.1", "v1.2.0", "v1.9.0", "v1.10.0+b.5"]  # fmt: skip
    shuffled = order[3:] + order[:3]
    assert sorted(shuffled, key=registry.semver_key) == order
    assert [registry.is_prerelease(v) for v in ("v1.2.0-rc.1", "v1.2.0", "v1.0.0+b-1")] == [
        True,
        False,
        False,
    ]

    def event(tag: str, t: int) -> registry.Event:
        parsed = registry.parse_tag_name(tag)
        assert parsed is not None
        return registry.Event(tag, "m", "register", parsed["version"], None, None,
                              f"c{t}", t, "", "", None, None)  # fmt: skip

    only_pre = registry.state_of("m", [event("m@v1.2.0-rc.1", 1)])
    assert only_pre.latest() is None
    found = only_pre.latest(pre=True)
    assert found is not None and found.version == "v1.2.0-rc.1"
    both = registry.state_of("m", [event("m@v1.2.0-rc.1", 1), event("m@v1.2.0", 2)])
    found = both.latest(pre=True)
    assert found is not None and found.version == "v1.2.0"
