"""Training state and optimizer state in every diff view (table, JSON, Markdown, HTML, textconv).

A Lightning-like ``.ckpt`` at two steps, built by hand (fixed ids and stats) so the goldens change
only when a renderer does: the model's weights, the Adam moments named by their parameter, and the
non-tensor values the pointer records (epoch, global_step, the learning rate, a hyper-parameter).
"""

from __future__ import annotations

import json

from gitsnap import diff as d
from gitsnap.pointer import Pointer
from gitsnap.render import html as render_html
from gitsnap.render import json as render_json
from gitsnap.render import markdown, table, text
from tests.render.test_diff_render import check_golden, t


def ckpt(step: int, n: int) -> Pointer:
    """The checkpoint at ``step``: tensors whose object ids move with ``n`` where trained."""
    tensors = [
        t("state_dict.layer.weight", 10 + n, (2, 4), mean=0.1, std=0.2, l2=0.9 + n / 10),
        t("state_dict.layer.bias", 20 + n, (2,), mean=0.0, std=0.1, l2=0.1 + n / 10),
        t("state_dict.norm.running_mean", 3, (2,), mean=0.0, std=0.0, l2=0.0),
    ]
    for i, param in enumerate(("layer.weight", "layer.bias")):
        shape = (2, 4) if i == 0 else (2,)
        for moment in ("exp_avg", "exp_avg_sq"):
            name = f"optimizer_states.0.state[{param}].{moment}"
            tensors.append(t(name, 40 + 10 * i + n, shape, mean=0.0, std=0.01, l2=0.01 * (n + 1)))
    metadata = {
        "epoch": step // 3,
        "global_step": step,
        "optimizer_states.0.param_groups.0.lr": 0.01 / (step + 1),
        "hyper_parameters.args.name": "tiny",
        "lr_schedulers.0.last_epoch": step,
    }
    return Pointer(
        id=f"{n:x}" * 64,
        path="lightning/model.ckpt",
        format="torch",
        size=4096,
        tensors=tensors,
        blobs=[],
        metadata=metadata,
    )


def sample() -> d.DiffResult:
    before, after = ckpt(3, 0), ckpt(6, 1)
    changes = d.diff_tensors(before.tensors, after.tensors)
    ck = d.compare_checkpoint(before.path, before, after, changes)
    return d.DiffResult("HEAD~1", "HEAD", "1" * 40, "2" * 40, False, None, [ck])


def test_optimizer_state_is_counted_apart_from_the_model() -> None:
    [ck] = sample().checkpoints
    # The model: 2 of 3 tensors changed, 10 params (8 + 2), the moments nowhere in it.
    assert ck.summary.tensors_changed == 2 and ck.summary.tensors_after == 3
    assert ck.summary.params_after == 8 + 2 + 2  # the running mean is a model tensor
    assert ck.optimizer is not None
    assert ck.optimizer.tensors_changed == 4 and ck.optimizer.tensors_after == 4
    assert all(not g.name.startswith("optimizer") for g in ck.groups)
    # Every tensor is still listed, moments named by their parameter.
    assert "optimizer_states.0.state[layer.weight].exp_avg" in {c.name for c in ck.tensors}
    line = text.diff_summary_line(ck)
    assert line.startswith(
        "model: 2 of 3 tensors changed (2 modified) · optimizer state: 4 tensors changed · "
    )
    assert "10 of 12 params" in line
    # Not every moment moved: the optimizer's count says of how many.
    same = ckpt(3, 0)
    still = d.compare_checkpoint(same.path, same, same, d.diff_tensors(same.tensors, same.tensors))
    assert "· optimizer state: 0 of 4 tensors changed ·" in text.diff_summary_line(still)


def test_an_optimizer_saved_alone_is_optimizer_state() -> None:
    def opt(n: int) -> Pointer:
        moments = [t(f"state[layer.weight].{m}", 40 + n, (2, 4)) for m in ("exp_avg", "exp_avg_sq")]
        return Pointer(
            id=f"{n + 5:x}" * 64, path="run/optimizer.pt", format="torch", size=64,
            tensors=moments, blobs=[],
        )  # fmt: skip

    before, after = opt(0), opt(1)
    ck = d.compare_checkpoint(
        after.path, before, after, d.diff_tensors(before.tensors, after.tensors)
    )
    assert ck.summary.tensors_after == 0 and ck.summary.params_after == 0
    assert ck.optimizer is not None and ck.optimizer.tensors_changed == 2
    assert ck.groups == []
    assert "optimizer state: 2 tensors changed" in text.diff_summary_line(ck)


def test_training_state_changes_are_listed_and_unchanged_ones_left_out() -> None:
    [ck] = sample().checkpoints
    changed = {m.name: (m.before, m.after) for m in ck.state_changes}
    assert changed == {
        "epoch": (1, 2),
        "global_step": (3, 6),
        "optimizer_states.0.param_groups.0.lr": (0.01 / 4, 0.01 / 7),
        "lr_schedulers.0.last_epoch": (3, 6),
    }
    assert "hyper_parameters.args.name" in {m.name for m in ck.state}  # compared, unchanged


def test_table_golden() -> None:
    out = table.diff(sample(), top=10, color=False, width=120)
    assert "training state" in out and "global_step" in out
    check_golden("diff-training-table.txt", out + "\n")


def test_json_golden() -> None:
    out = render_json.dumps_diff(render_json.diff_dict(sample())) + "\n"
    doc = json.loads(out)
    [ck] = doc["checkpoints"]
    state = {s["name"]: s for s in ck["training_state"]}
    assert state["global_step"] == {
        "name": "global_step",
        "status": "changed",
        "before": 3,
        "after": 6,
        "change": 3,
    }
    assert "hyper_parameters.args.name" not in state
    assert ck["optimizer_summary"]["tensors_after"] == 4
    assert ck["summary"]["params_after"] == 12
    check_golden("diff-training.json", out)


def test_markdown_golden() -> None:
    out = markdown.diff(sample())
    assert "**Training state**" in out and "| global\\_step | 3 | 6 | +3 |" in out
    # The model's tensors are listed before the optimizer's moments.
    assert out.index("`state_dict.layer.bias`") < out.index("`optimizer_states.0.state[")
    check_golden("diff-training.md", out + "\n")


def test_html_has_a_training_state_section() -> None:
    out = render_html.diff(sample())
    section = out[out.index('<section class="state">') :]
    section = section[: section.index("</section>")]
    assert "<h3>Training state</h3>" in section
    assert "global_step" in section and "epoch" in section
    assert "hyper_parameters" not in section


def test_textconv_lists_the_recorded_state() -> None:
    lines = text.textconv(ckpt(6, 1)).splitlines()
    # The header counts the optimizer's moments apart from the model's tensors.
    assert (
        lines[0] == f"gitsnap snapshot {'1' * 12} (torch, 3 tensors + 4 optimizer state, 4.0 KiB)"
    )
    assert "state global_step = 6" in lines
    assert "state hyper_parameters.args.name = tiny" in lines
    assert "state optimizer_states.0.param_groups.0.lr = 0.00142857" in lines
