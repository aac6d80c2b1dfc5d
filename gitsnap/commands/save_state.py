"""``gitsnap.save`` and ``gitsnap.save_state_dict``: snapshots from a training script.

:func:`save_state_dict` writes a state dict (numpy arrays or torch tensors)
as safetensors, then saves its snapshot. The file is written by hand here,
not through ``safetensors.torch``: the format is an 8-byte little-endian
header length, a JSON header (``{name: {dtype, shape, data_offsets}}`` plus
an optional ``__metadata__`` of strings) padded with spaces to a multiple of
8, then the tensors' bytes. Writing it directly needs neither torch (a numpy
state dict never imports it) nor the 2.6 s import of ``safetensors.torch``,
and gives the same bytes whatever is installed. Tensors are written in name
order; the file is written under a temp name and renamed into place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitsnap.commands.save import SaveResult
from gitsnap.commands.save import save as save_paths
from gitsnap.errors import UsageError
from gitsnap.metrics import Scalar

if TYPE_CHECKING:
    from gitsnap.commands.open import Tensor

_FROM_NUMPY = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16",
    "uint32": "U32", "int32": "I32", "uint64": "U64", "int64": "I64", "float16": "F16",
    "float32": "F32", "float64": "F64",
}  # fmt: skip
_FROM_TORCH = {
    "torch.bool": "BOOL", "torch.uint8": "U8", "torch.int8": "I8", "torch.uint16": "U16",
    "torch.int16": "I16", "torch.uint32": "U32", "torch.int32": "I32", "torch.uint64": "U64",
    "torch.int64": "I64", "torch.float16": "F16", "torch.bfloat16": "BF16",
    "torch.float32": "F32", "torch.float64": "F64", "torch.float8_e4m3fn": "F8_E4M3",
    "torch.float8_e5m2": "F8_E5M2", "torch.float8_e8m0fnu": "F8_E8M0",
}  # fmt: skip


def save_one(
    path: str | os.PathLike[str],
    *,
    message: str | None = None,
    metrics: Mapping[str, Scalar] | None = None,
    params: Mapping[str, Scalar] | None = None,
    cwd: Path | None = None,
) -> SaveResult:
    """Save a snapshot of one checkpoint (``git snap save PATH``) and return its result.

    Example::

        res = gitsnap.save("models/model.safetensors", message="epoch 3", metrics={"acc": 0.91})
        print(res.snapshot_id)
    """
    [res] = save_paths([path], message=message, metrics=metrics, params=params, cwd=cwd)
    return res


def save_state_dict(
    state_dict: Mapping[str, Tensor],
    path: str | os.PathLike[str],
    *,
    message: str | None = None,
    metrics: Mapping[str, Scalar] | None = None,
    params: Mapping[str, Scalar] | None = None,
    metadata: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> SaveResult:
    """Write ``state_dict`` to ``path`` as safetensors, then save its snapshot.

    Example::

        gitsnap.save_state_dict(model.state_dict(), "models/model.safetensors",
                                message="step 100", metrics={"loss": 0.12})
    """
    target = Path(path) if Path(path).is_absolute() else (cwd or Path.cwd()) / path
    write_safetensors(target, state_dict, metadata)
    return save_one(path, message=message, metrics=metrics, params=params, cwd=cwd)


def _raw(name: str, tensor: object) -> tuple[str, list[int], memoryview]:
    """(dtype name, shape, little-endian bytes) of a numpy array or torch tensor."""
    value: Any = tensor  # a numpy array or a torch tensor, told apart without importing torch
    module = type(value).__module__
    if module.startswith("torch"):
        dtype = _FROM_TORCH.get(str(value.dtype))
        if dtype is None:
            raise UsageError(f"tensor {name!r}: safetensors cannot hold {value.dtype}")
        t = value.detach().to("cpu").contiguous()
        shape = list(t.shape)
        # Reinterpreted as bytes (bf16 and float8 have no numpy type); torch is little-endian here.
        flat = t.reshape(-1).view(__import__("torch").uint8) if t.numel() else None
        data = memoryview(flat.numpy()) if flat is not None else memoryview(b"")
        return dtype, shape, data.cast("B")
    if module.startswith("numpy"):
        import numpy as np

        dt = _FROM_NUMPY.get(value.dtype.name)
        if dt is None:
            raise UsageError(f"tensor {name!r}: safetensors cannot hold numpy {value.dtype}")
        # Not ascontiguousarray: it turns a 0-d array into shape [1].
        arr = np.asarray(value, dtype=value.dtype.newbyteorder("<")).copy(order="C")
        return dt, list(arr.shape), memoryview(arr.reshape(-1).view(np.uint8).data)
    raise UsageError(
        f"tensor {name!r} is a {type(value).__name__}, not a numpy array or torch tensor",
        hint="pass model.state_dict() or a dict of numpy arrays",
    )


def write_safetensors(
    path: Path, state_dict: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``state_dict`` to ``path`` in the safetensors format (see the module doc)."""
    import tempfile

    from gitsnap.fsutil import TMP_SUFFIX, umask

    if not state_dict:
        raise UsageError("the state dict is empty: nothing to write")
    tensors = {name: _raw(name, state_dict[name]) for name in sorted(state_dict)}
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(len(text).to_bytes(8, "little"))
            f.write(text)
            for _dtype, _shape, data in tensors.values():
                f.write(data)
        Path(tmp).chmod(0o644 & ~umask())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
