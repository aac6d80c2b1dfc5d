"""The README's tour runs as written (STYLE: the README's examples run as a test)."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from gitsnap import pointer
from tests.helpers import MakeCheckpoint, git, run

README = Path(__file__).resolve().parent.parent / "README.md"


def tour_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Tour", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the README's Tour has a bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def readme_pointer() -> str:
    section = README.read_text(encoding="utf-8").split("## The pointer", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "the README's pointer section has a yaml block"
    return block.group(1)


def test_readme_pointer_is_canonical() -> None:
    """The example is a real pointer: it parses, validates, and re-dumps byte for byte."""
    text = readme_pointer()
    ptr = pointer.loads(text.encode(), source="README.md")
    assert pointer.dumps(ptr) == text
    assert ptr.path == "models/model.safetensors"
    assert [t.name for t in ptr.tensors] == ["head.weight"]


def test_readme_links_stay_in_the_repository() -> None:
    """Every relative link of the README names a file of the repository."""
    root = README.parent.resolve()
    for target in re.findall(r"\]\(([^)#]+)\)", README.read_text(encoding="utf-8")):
        if "://" in target:
            continue
        path = (root / target).resolve()
        assert path.is_relative_to(root), target
        assert path.exists(), target


def test_readme_opens_with_the_two_setup_commands() -> None:
    head = README.read_text(encoding="utf-8").split("## ", 1)[0]
    assert "make demo" in head and "make test" in head
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci


def test_readme_tour_runs(git_repo: Path, make_checkpoint: MakeCheckpoint, tmp_path: Path) -> None:
    git("commit", "-q", "--allow-empty", "-m", "root")
    ckpt = git_repo / "models" / "model.safetensors"
    make_checkpoint(ckpt, seed=0)
    baseline = ckpt.read_bytes()
    (git_repo / "eval.json").write_text(json.dumps({"acc": 0.9}))
    export = tmp_path / "export"
    for line in tour_commands():
        if line.startswith("# ... fine-tune"):
            make_checkpoint(ckpt, seed=0, modify=("head",))
            continue
        cmd = line.split("  #", 1)[0].strip()
        cmd = cmd.replace("/tmp/export/", f"{export}/")
        for part in cmd.split(" && "):
            run(shlex.split(part), cwd=git_repo)
        if cmd == "git snap checkout HEAD~1":
            assert ckpt.read_bytes() == baseline
    assert (export / "models" / "model.safetensors").read_bytes() == baseline


@pytest.mark.slow
def test_make_demo_runs_the_example(tmp_path: Path) -> None:
    """`make demo` (after its install step) runs examples/demo.py, which ends byte-identical."""
    makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert [line.strip() for line in recipe] == ["$(PY) examples/demo.py"]
    out = run([sys.executable, README.parent / "examples" / "demo.py"], cwd=tmp_path).stdout
    assert "byte-identical: the baseline is back." in out
    assert "demo finished." in out
