"""Tensors and plain values of a PyTorch pickle, found in the inert tree of :mod:`pickle_vm`.

``torch.save`` pickles each tensor as a call to one of torch's rebuild
functions whose first argument is a storage reference (a persistent id):

========================================  ==========================================
global                                    arguments
========================================  ==========================================
``torch._utils._rebuild_tensor``          storage, offset, size, stride
``torch._utils._rebuild_tensor_v2``       ... , requires_grad, hooks[, metadata]
``torch._utils._rebuild_tensor_v3``       ... , requires_grad, hooks, dtype[, metadata]
``torch._utils._rebuild_parameter``       tensor, requires_grad, hooks
``torch._utils._rebuild_parameter_with_state``   tensor, requires_grad, hooks, state
``torch._tensor._rebuild_from_type_v2``   rebuild function, subclass, its args, state
``torch._utils._rebuild_device_tensor_from_cpu_tensor``   tensor, dtype, device, grad
========================================  ==========================================

``_rebuild_tensor_v2`` takes the dtype from the storage's class
(``torch.FloatStorage``); ``_rebuild_tensor_v3`` (dtypes without a storage
class: float8, uint16, ...) from its ``dtype`` argument, with an untyped
(byte) storage. Offsets, sizes and strides count elements of that dtype.

Names are dotted paths through the object tree, as ``torch.load`` would
build it: dict keys, list indices, an object's attributes (an
``argparse.Namespace``, a dataclass), and for an ``nn.Module`` saved whole
the module tree's ``_parameters``, ``_buffers`` and ``_modules`` flattened
(``encoder.layers.0.weight``), as ``state_dict()`` names them.

Bounds: each container is walked once (a visited set: an object the pickle
references twice is named by its first path, and a DAG such as ``[x, x]``
nested 60 deep costs 60 steps, not 2**60); names stop at ``MAX_DEPTH``
levels; at most ``MAX_NODES`` nodes are visited. A tensor referenced twice
(tied weights) is listed under both names.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field, replace
from typing import Any

from gitsnap.errors import PickleError
from gitsnap.formats.pickle_vm import Call, Global, PDict, PSet, StorageRef
from gitsnap.pointer.limits import MAX_NAME_CHARS

MAX_LIST = 8
MAX_STR = 256
MAX_DEPTH = 64
MAX_DIMS = 64
MAX_NODES = 2_000_000

# Storage class -> (safetensors dtype spelling, bytes per element).
_STORAGE_DTYPES: dict[str, tuple[str, int]] = {
    "Float": ("F32", 4), "Double": ("F64", 8), "Half": ("F16", 2), "BFloat16": ("BF16", 2),
    "Long": ("I64", 8), "Int": ("I32", 4), "Short": ("I16", 2), "Char": ("I8", 1),
    "Byte": ("U8", 1), "Bool": ("BOOL", 1), "ComplexFloat": ("C64", 8),
    "ComplexDouble": ("COMPLEX128", 16), "QInt8": ("QINT8", 1), "QUInt8": ("QUINT8", 1),
    "QInt32": ("QINT32", 4), "QUInt4x2": ("QUINT4X2", 1), "QUInt2x4": ("QUINT2X4", 1),
}  # fmt: skip

# torch dtype global (``torch.<name>``) -> (spelling, bytes per element).
TORCH_DTYPES: dict[str, tuple[str, int]] = {
    "float64": ("F64", 8), "float32": ("F32", 4), "float16": ("F16", 2),
    "bfloat16": ("BF16", 2), "float8_e4m3fn": ("F8_E4M3", 1), "float8_e5m2": ("F8_E5M2", 1),
    "float8_e8m0fnu": ("F8_E8M0", 1), "float8_e4m3fnuz": ("FLOAT8_E4M3FNUZ", 1),
    "float8_e5m2fnuz": ("FLOAT8_E5M2FNUZ", 1), "float4_e2m1fn_x2": ("FLOAT4_E2M1FN_X2", 1),
    "int64": ("I64", 8), "int32": ("I32", 4), "int16": ("I16", 2), "int8": ("I8", 1),
    "uint64": ("U64", 8), "uint32": ("U32", 4), "uint16": ("U16", 2), "uint8": ("U8", 1),
    "bool": ("BOOL", 1), "complex64": ("C64", 8), "complex128": ("COMPLEX128", 16),
    "complex32": ("COMPLEX32", 4), "bits8": ("BITS8", 1), "bits16": ("BITS16", 2),
    "bits1x8": ("BITS1X8", 1), "bits2x4": ("BITS2X4", 1), "bits4x2": ("BITS4X2", 1),
    "qint8": ("QINT8", 1), "quint8": ("QUINT8", 1), "qint32": ("QINT32", 4),
    "quint4x2": ("QUINT4X2", 1), "quint2x4": ("QUINT2X4", 1),
}  # fmt: skip

_TENSOR_V = {"torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2"}
_TENSOR_V3 = "torch._utils._rebuild_tensor_v3"
_WRAPS_TENSOR = {  # the tensor is the first argument
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor",
}
_FROM_TYPE = "torch._tensor._rebuild_from_type_v2"
_DICT_CLASSES = {
    "collections.OrderedDict",
    "collections.defaultdict",
    "collections.Counter",
    "builtins.dict",
}
_MODULE_KEYS = ("_parameters", "_buffers", "_modules")
_NUMPY_SCALAR = {"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"}
_NUMPY_CODES = {
    "f8": "d", "f4": "f", "f2": "e", "i8": "q", "i4": "i", "i2": "h", "i1": "b",
    "u8": "Q", "u4": "I", "u2": "H", "u1": "B", "b1": "?",
}  # fmt: skip


@dataclass(frozen=True)
class TensorRef:
    """One tensor: its storage and where in it its elements are."""

    name: str
    storage: StorageRef
    dtype: str
    itemsize: int
    offset: int  # elements
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    order: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def span(self) -> int:
        """Bytes from the first to the last element (0 when empty)."""
        if self.numel == 0:
            return 0
        return (1 + sum((d - 1) * s for d, s in zip(self.shape, self.stride, strict=True))) * (
            self.itemsize
        )

    @property
    def contiguous(self) -> bool:
        if self.numel == 0:
            return True
        expected = 1
        for d, s in zip(reversed(self.shape), reversed(self.stride), strict=True):
            if d != 1 and s != expected:
                return False
            expected *= d
        return True


@dataclass
class Tree:
    tensors: list[TensorRef] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    visited: set[int] = field(default_factory=set)
    nodes: int = 0


_SKIP = object()


def walk(value: Any) -> Tree:
    """Every tensor and scalar leaf of a pickle's inert tree, by dotted name."""
    tree = Tree()
    _walk(value, "", tree, 0, tensors_only=False)
    return tree


def _join(name: str, key: str) -> str:
    return f"{name}.{key}" if name else key


def _key(k: Any) -> str | None:
    if isinstance(k, str):
        return k
    if isinstance(k, (int, bool)):
        return str(k)
    return None


def _walk(obj: Any, name: str, tree: Tree, depth: int, *, tensors_only: bool) -> None:
    tree.nodes += 1
    if tree.nodes > MAX_NODES:
        raise PickleError(f"the object tree has more than {MAX_NODES} nodes")
    if isinstance(obj, Call):
        tensor = _tensor(obj, name, len(tree.tensors))
        if tensor is not None:
            tree.tensors.append(tensor)
            return
    if not tensors_only:
        value = _scalar(obj)
        if value is not _SKIP:
            tree.metadata[name] = value
            return
    if not isinstance(obj, (PDict, PSet, list, tuple, Call)):
        return
    if depth >= MAX_DEPTH or id(obj) in tree.visited:
        return
    tree.visited.add(id(obj))
    if isinstance(obj, PDict):
        _walk_items(obj.items, name, tree, depth, tensors_only=tensors_only)
    elif isinstance(obj, (list, tuple)):
        if len(obj) > MAX_LIST and all(_scalar(v) is not _SKIP for v in obj):
            return  # e.g. param_groups.*.params: hundreds of ints nobody reviews
        for i, v in enumerate(obj):
            _walk(v, _join(name, str(i)), tree, depth + 1, tensors_only=tensors_only)
    elif isinstance(obj, Call):
        _walk_call(obj, name, tree, depth, tensors_only=tensors_only)


def _walk_items(
    items: list[tuple[Any, Any]], name: str, tree: Tree, depth: int, *, tensors_only: bool
) -> None:
    for k, v in items:
        key = _key(k)
        if key is not None:
            _walk(v, _join(name, key), tree, depth + 1, tensors_only=tensors_only)


def _walk_call(obj: Call, name: str, tree: Tree, depth: int, *, tensors_only: bool) -> None:
    fname = obj.name
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], PDict | None):
        state = state[0]  # (__dict__, __slots__ state)
    if isinstance(state, PDict) and any(_key(k) in _MODULE_KEYS for k, _ in state.items):
        # An nn.Module saved whole: name parameters and buffers as state_dict() does.
        for k, v in state.items:
            key = _key(k)
            if key in _MODULE_KEYS:
                items = _items_of(v)
                if items is not None:
                    _walk_items(items, name, tree, depth, tensors_only=key != "_modules")
            elif key is not None and not key.startswith("_"):
                _walk(v, _join(name, key), tree, depth + 1, tensors_only=True)
        return
    if fname in _DICT_CLASSES and obj.args and not obj.dictitems:
        items = _pairs(obj.args[0])
        if items is not None:
            _walk_items(items, name, tree, depth, tensors_only=tensors_only)
    if obj.dictitems:
        _walk_items(obj.dictitems, name, tree, depth, tensors_only=tensors_only)
    if obj.listitems:
        for i, v in enumerate(obj.listitems):
            _walk(v, _join(name, str(i)), tree, depth + 1, tensors_only=tensors_only)
    if fname in _DICT_CLASSES:
        pass  # a dict's own attributes (state_dict()'s ``_metadata``) are not entries
    elif isinstance(state, PDict):  # an object rebuilt from its attributes (Namespace, dataclass)
        _walk_items(state.items, name, tree, depth, tensors_only=tensors_only)
    elif obj.has_state and state is not None:
        _walk(state, name, tree, depth + 1, tensors_only=True)
    if fname not in _DICT_CLASSES:
        # Tensors hidden in the arguments of some other call still get a name.
        for i, v in enumerate(obj.args):
            _walk(v, _join(name, str(i)), tree, depth + 1, tensors_only=True)


def _items_of(v: Any) -> list[tuple[Any, Any]] | None:
    if isinstance(v, PDict):
        return v.items
    if isinstance(v, Call) and v.name in _DICT_CLASSES:
        return v.dictitems or _pairs(v.args[0] if v.args else None) or []
    return None


def _pairs(v: Any) -> list[tuple[Any, Any]] | None:
    if isinstance(v, PDict):
        return v.items
    if isinstance(v, list) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in v):
        return [(p[0], p[1]) for p in v]
    return None


# ------------------------------------------------------------------ optimizer moments

# torch's own buffers (BatchNorm, InstanceNorm): in state_dict(), never in parameters().
_TORCH_BUFFERS = (".running_mean", ".running_var")


def _fields(v: Any) -> dict[str, Any]:
    items = _items_of(v)
    return {} if items is None else {k: x for k, x in ((_key(a), b) for a, b in items) if k}


def _param_ids(opt: Any) -> tuple[list[int], list[str] | None] | None:
    """The optimizer's parameter indices, param groups in order (``param_groups[*].params``),
    and their names where every group records them (``param_names``: torch >= 2.6, when the
    optimizer was given ``model.named_parameters()``)."""
    groups = _fields(opt).get("param_groups")
    if not isinstance(groups, list):
        return None
    ids: list[int] = []
    names: list[str] | None = []
    for g in groups:
        fields = _fields(g)
        params = fields.get("params")
        if not isinstance(params, list) or not all(type(p) is int for p in params):
            return None
        ids += params
        given = fields.get("param_names")
        if names is None or not isinstance(given, list) or len(given) != len(params):
            names = None
        elif all(isinstance(n, str) and n for n in given):
            names += given
        else:
            names = None
    if len(set(ids)) != len(ids):
        return None
    return ids, names if names and len(set(names)) == len(names) else None


# Where a training checkpoint keeps its model's state_dict and its optimizers' state_dicts:
# Lightning's ``state_dict`` + ``optimizer_states`` (a list), and the keys of a hand-written
# ``torch.save({"model": ..., "optimizer": ...})``.
_MODEL_KEYS = ("state_dict", "model", "model_state_dict", "model_state")
_OPTIMIZER_LISTS = ("optimizer_states", "optimizers")
_OPTIMIZER_DICTS = ("optimizer", "optimizer_state_dict", "optimizer_state", "optim")


def name_moments(value: Any, tensors: list[TensorRef]) -> list[TensorRef]:
    """Name a training checkpoint's optimizer moments by their parameter, where certain.

    ``optimizer_states.0.state.3.exp_avg`` (Lightning) becomes
    ``optimizer_states.0.state[layer.weight].exp_avg``, and
    ``optimizer.state.3.exp_avg`` next to ``model.*`` becomes
    ``optimizer.state[layer.weight].exp_avg``, when the checkpoint's own
    structure fixes the mapping.

    Either the optimizer recorded its parameters' names (``param_names`` in
    every param group: torch >= 2.6 given ``named_parameters()``); this also
    names the moments of an optimizer saved alone (``state[layer.weight].exp_avg``).
    Or ``torch.optim`` numbers an optimizer's parameters in ``param_groups``
    order, and a module's ``parameters()`` come in ``state_dict()`` order
    without its buffers. So the mapping is taken only when the checkpoint holds
    exactly one model state_dict (``state_dict``, ``model``,
    ``model_state_dict`` or ``model_state``), the optimizer's parameters are
    exactly as many as its floating tensors that are not torch's norm buffers,
    and every parameter with state has a moment of exactly the shape of the
    parameter it would map to. Anything else (frozen parameters, several
    optimizers over parts of the model, tied weights, user buffers) keeps the
    index names.
    """
    top = _fields(value)
    opts = [
        (f"{key}.{k}.", opt)
        for key in _OPTIMIZER_LISTS
        if isinstance(top.get(key), list)
        for k, opt in enumerate(top[key])
    ]
    opts += [(f"{key}.", top[key]) for key in _OPTIMIZER_DICTS if key in top]
    if "state" in top and "param_groups" in top:  # an optimizer's state_dict saved alone
        opts.append(("", value))
    if not opts:
        return tensors
    found = [k for k in _MODEL_KEYS if k in top]
    base = found[0] + "." if len(found) == 1 else None
    model = [
        t
        for t in tensors
        if base is not None
        and t.name.startswith(base)
        and (t.dtype.startswith("F") or t.dtype == "BF16")
        and not t.name.endswith(_TORCH_BUFFERS)
    ]
    renames: dict[int, str] = {}
    for opt_name, opt in opts:
        got = _param_ids(opt)
        if not got:
            continue
        ids, names = got
        prefix = f"{opt_name}state."
        moments = [t for t in tensors if t.name.startswith(prefix)]
        parts: list[tuple[TensorRef, str, str]] = []
        for t in moments:
            idx, _, moment = t.name[len(prefix) :].partition(".")
            parts.append((t, idx, moment))
        if names is not None:
            where = dict(zip(map(str, ids), names, strict=True))
        elif base is not None and len(ids) == len(model):
            params = {str(p): model[i] for i, p in enumerate(ids)}
            shaped: dict[str, set[tuple[int, ...]]] = {}
            for t, idx, _ in parts:
                if t.shape:
                    shaped.setdefault(idx, set()).add(t.shape)
            same = {idx for _, idx, _ in parts} == set(shaped) and all(
                i in params and ss == {params[i].shape} for i, ss in shaped.items()
            )
            if not same:
                continue
            where = {i: t.name[len(base) :] for i, t in params.items()}
        else:
            continue
        if not moments or not all(idx in where and moment for _, idx, moment in parts):
            continue
        for t, idx, moment in parts:
            name = f"{opt_name}state[{where[idx]}].{moment}"
            if len(name) <= MAX_NAME_CHARS:
                renames[id(t)] = name
    if not renames:
        return tensors
    return [replace(t, name=renames[id(t)]) if id(t) in renames else t for t in tensors]


# ------------------------------------------------------------------ tensors


def _tensor(call: Call, name: str, order: int) -> TensorRef | None:  # noqa: PLR0911
    fname = call.name
    args = call.args
    if fname in _WRAPS_TENSOR and args and isinstance(args[0], Call):
        return _tensor(args[0], name, order)
    if fname == _FROM_TYPE and len(args) >= 3 and isinstance(args[2], tuple):
        return _tensor(Call(args[0], args[2], "reduce"), name, order)
    if fname in _TENSOR_V or fname == _TENSOR_V3:
        if len(args) < 4 or not isinstance(args[0], StorageRef):
            return None
        storage, offset, size, stride = args[:4]
        if fname == _TENSOR_V3:
            if len(args) < 7 or not isinstance(args[6], Global):
                return None
            kind = TORCH_DTYPES.get(args[6].name) if args[6].module == "torch" else None
        else:
            kind = storage_dtype(storage.storage_type)
        if kind is None:
            return None
        if not (_ints(size) and _ints(stride) and len(size) == len(stride) <= MAX_DIMS):
            raise PickleError(f"tensor {name!r}: size {size!r} / stride {stride!r} are malformed")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise PickleError(f"tensor {name!r}: storage offset {offset!r} is malformed")
        return TensorRef(name, storage, kind[0], kind[1], offset, tuple(size), tuple(stride), order)
    return None


def storage_dtype(storage_type: str) -> tuple[str, int] | None:
    """``torch.FloatStorage`` -> ``("F32", 4)``; untyped storages are bytes."""
    cls = storage_type.rsplit(".", 1)[-1]
    if cls in ("UntypedStorage", "TypedStorage"):
        return ("U8", 1)
    return _STORAGE_DTYPES.get(cls.removesuffix("Storage"))


def _ints(v: Any) -> bool:
    return isinstance(v, tuple) and all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 62 for d in v
    )


# ------------------------------------------------------------------ scalars


def _scalar(v: Any) -> Any:  # noqa: PLR0911
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v if -(1 << 63) <= v < 1 << 64 else _SKIP
    if isinstance(v, float):
        return v
    if isinstance(v, str):
        return v if len(v) <= MAX_STR else v[:MAX_STR] + "…"
    if isinstance(v, Global) and v.module == "torch" and v.name in TORCH_DTYPES:
        return f"torch.{v.name}"  # a dtype
    if isinstance(v, Call):
        if v.name == "torch.device" and v.args and all(isinstance(a, (str, int)) for a in v.args):
            return ":".join(str(a) for a in v.args)
        if v.name in _NUMPY_SCALAR:
            return _numpy_scalar(v)
        if _enum_like(v):
            return _scalar(v.args[0])  # IntervalStrategy("steps") -> "steps"
    return _SKIP


def _enum_like(v: Call) -> bool:
    """A class called with one plain value and nothing else: how an ``Enum`` member pickles."""
    return (
        v.kind == "reduce"
        and isinstance(v.func, Global)
        and v.func.name.rsplit(".", 1)[-1][:1].isupper()
        and len(v.args) == 1
        and isinstance(v.args[0], (str, int))
        and not v.has_state
        and not v.dictitems
        and not v.listitems
    )


def _numpy_scalar(v: Call) -> Any:
    """``numpy.float64(0.5)`` pickles as ``scalar(dtype('f8'), b'...')``: decoded by hand."""
    raw = _bytes(v.args[1]) if len(v.args) == 2 else None
    if raw is None:
        return _SKIP
    dtype = v.args[0]
    if not isinstance(dtype, Call) or not dtype.args or not isinstance(dtype.args[0], str):
        return _SKIP
    code = _NUMPY_CODES.get(dtype.args[0])
    order = "<"
    if isinstance(dtype.state, tuple) and len(dtype.state) > 1 and dtype.state[1] == ">":
        order = ">"
    if code is None or struct.calcsize(code) != len(raw):
        return _SKIP
    return _scalar(struct.unpack(order + code, raw)[0])


def _bytes(v: Any) -> bytes | None:
    """Bytes as protocol 3+ writes them, or as protocol 2 does (``_codecs.encode(s, 'latin1')``)."""
    if isinstance(v, bytes):
        return v
    if (
        isinstance(v, Call)
        and v.name == "_codecs.encode"
        and len(v.args) == 2
        and isinstance(v.args[0], str)
        and v.args[1] in ("latin1", "latin-1")
    ):
        try:
            return v.args[0].encode("latin-1")
        except UnicodeEncodeError:
            return None
    return None
