"""Snapshots from training loops: one module per framework, each importing it only inside.

- :mod:`gitsnap.integrations.lightning`: a Lightning ``Callback``.
- :mod:`gitsnap.integrations.transformers`: a transformers ``TrainerCallback``.

``import gitsnap.integrations`` imports neither framework (safetensors does
the same with ``safetensors.torch``): a training script imports the module of
the framework it uses. Both save through :func:`gitsnap.save`, so a snapshot
taken from a training loop is the same as one taken with ``git snap save``
(recorded in the journal, refused if it would run code at load).
"""
