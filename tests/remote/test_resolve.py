"""gitsnap.remote.resolve: the plugin table doctor reads agrees with DVC's own resolution.

Without dvc installed (the ``remote`` extra), reaching a remote fails with the
install command :func:`install_hint` gives: tests/test_wheel.py runs that in a
clean virtual environment.
"""

from __future__ import annotations

from pathlib import Path

from gitsnap.errors import RemoteError
from gitsnap.remote import open_remote
from gitsnap.remote.resolve import PLUGINS, install_hint, missing_dvc, missing_plugin


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


def test_install_hint_names_the_extra_and_the_plugin_of_every_scheme() -> None:
    for scheme, plugin in PLUGINS.items():
        hint = install_hint(f"{scheme}://bucket/models")
        if scheme == "s3":
            assert hint == "pip install 'gitsnap[s3]'"  # dvc-s3 comes with the extra
        elif plugin == "dvc-http":
            assert hint == "pip install 'gitsnap[remote]'"  # dvc depends on dvc-http
        else:
            assert hint == f"pip install 'gitsnap[remote]' {plugin}", scheme
    assert install_hint("/mnt/shared/store") == "pip install 'gitsnap[remote]'"
    assert missing_dvc("/mnt/shared/store", "storage") is None  # dvc is installed here
