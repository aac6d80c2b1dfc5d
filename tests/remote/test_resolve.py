"""gitsnap.remote.resolve: the plugin table doctor reads agrees with DVC's own resolution."""

from __future__ import annotations

from pathlib import Path

from gitsnap.errors import RemoteError
from gitsnap.remote import open_remote
from gitsnap.remote.resolve import PLUGINS, missing_plugin


def test_missing_plugin_says_what_opening_the_remote_says(dvc_repo: Path) -> None:
    """For every scheme of the table: the same error as DVC's resolution, or none from both."""
    lines = ["[core]", "    remote = r-s3"]
    for scheme in PLUGINS:
        lines += [f"['remote \"r-{scheme}\"']", f"    url = {scheme}://bucket/models"]
    (dvc_repo / ".dvc" / "config").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for scheme in PLUGINS:
        url = f"{scheme}://bucket/models"
        predicted = missing_plugin(url)
        try:
            open_remote(dvc_repo / ".dvc", f"r-{scheme}")
            opened: RemoteError | None = None
        except RemoteError as err:
            opened = err
        if predicted is None:
            assert opened is None or "plugin" not in opened.message, (scheme, opened)
        else:
            assert opened is not None, scheme
            assert (predicted.message, predicted.hint) == (opened.message, opened.hint)
    assert missing_plugin("/mnt/shared/store") is None  # a folder needs no plugin
