"""One module per command family; each holds its command functions and their result types.

=================  ===========================================
module             commands
=================  ===========================================
``init``           ``git snap init``
``save``           ``git snap save``
``status``         ``git snap status``
``checkout``       ``git snap checkout`` (and pull's restore)
``log``            ``git snap log``, ``git snap show``
``transfer``       ``git snap push``, ``fetch``, ``pull``, ``remote status``
``diff``           ``git snap diff``, ``git snap textconv``
``metrics``        ``git snap metrics add`` / ``show``
``registry``       ``git snap tag``, ``git snap ls``
``gc``             ``git snap gc``
``du``             ``git snap du``
``fsck``           ``git snap fsck``
``install``        ``git snap install`` / ``uninstall``
=================  ===========================================

Commands return typed, frozen dataclasses and never print or exit; the CLI
renders them, and :mod:`gitsnap.api` re-exports them for Python callers.
Paths are given as a user would type them (relative to ``cwd``). A rule two
commands (or a command and a hook) need lives below them -- in
:mod:`gitsnap.revisions` (which snapshots at which revision),
:mod:`gitsnap.working` (the checkpoint on disk against its pointer and the
store), :mod:`gitsnap.snapshot`, :mod:`gitsnap.diff` -- never copied.
"""
