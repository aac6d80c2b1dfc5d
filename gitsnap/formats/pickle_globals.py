"""What each global a pickle names would do if the pickle were loaded: four classes.

gitsnap never loads a pickle (DESIGN D16), but the people who use a
checkpoint will, with ``torch.load``. Every ``module.qualname`` a pickle
names is judged by name, and for classes also by how the pickle uses it:

``weights_only``
    allowed by PyTorch's weights-only loader (``torch.load(weights_only=True)``,
    the default since torch 2.6): tensor-rebuilding functions, dtypes, storage
    and tensor classes, ``collections.OrderedDict``. The table below is
    torch 2.13's ``torch._weights_only_unpickler._get_allowed_globals()``,
    written out (gitsnap imports no torch to judge a file).
``data``
    plain data that weights-only loading refuses but that runs no code of its
    own: numpy array, scalar, dtype and RNG-state reconstruction,
    ``collections``, ``argparse.Namespace``, ``datetime``, ``pathlib`` paths,
    the Hugging Face enums of ``TrainingArguments``; and any class the pickle
    only *instantiates without calling it* (``NEWOBJ`` with ``cls.__new__``,
    then ``BUILD`` with a dict): a plain dataclass or object rebuilt from its
    attributes.
``unsafe``
    code-executing: running a command (``os.system``, ``posix.system``,
    ``subprocess.*``, ``pty``), evaluating or importing code (``builtins.eval``,
    ``exec``, ``compile``, ``getattr``, ``__import__``, ``runpy``,
    ``importlib``, ``code``), loading another pickle (``pickle.loads``,
    ``marshal``, ``torch.load``, ``torch.storage._load_from_bytes``), files
    and the network (``builtins.open``, ``shutil``, ``socket``, ``urllib``,
    ``requests``, ``webbrowser``), native code (``ctypes``), and attribute
    reachers (``operator.attrgetter``, ``methodcaller``). Informed by what
    picklescan and modelscan flag; the list is gitsnap's own.
``unknown``
    anything else: a function or class of some library, *called* with
    arguments. It may be harmless (an enum of a training library) or not;
    gitsnap cannot tell without importing it.
"""

from __future__ import annotations

from gitsnap.formats.base import PickleGlobal
from gitsnap.formats.pickle_vm import Result

WEIGHTS_ONLY = "weights_only"
DATA = "data"
UNSAFE = "unsafe"
UNKNOWN = "unknown"

_DTYPES = [
    "bfloat16",
    "bits16",
    "bits1x8",
    "bits2x4",
    "bits4x2",
    "bits8",
    "bool",
    "complex128",
    "complex32",
    "complex64",
    "float16",
    "float32",
    "float4_e2m1fn_x2",
    "float64",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "int1",
    "int16",
    "int2",
    "int3",
    "int32",
    "int4",
    "int5",
    "int6",
    "int64",
    "int7",
    "int8",
    "qint32",
    "qint8",
    "quint2x4",
    "quint4x2",
    "quint8",
    "uint1",
    "uint16",
    "uint2",
    "uint3",
    "uint32",
    "uint4",
    "uint5",
    "uint6",
    "uint64",
    "uint7",
    "uint8",
    "per_channel_affine",
    "per_channel_affine_float_qparams",
    "per_channel_symmetric",
    "per_tensor_affine",
    "per_tensor_symmetric",
]
_TENSOR_TYPES = [
    "BFloat16",
    "Bool",
    "Byte",
    "Char",
    "Double",
    "Float",
    "Half",
    "Int",
    "Long",
    "Short",
]
_STORAGE_TYPES = [
    *_TENSOR_TYPES,
    *["ComplexDouble", "ComplexFloat", "QInt32", "QInt8", "QUInt2x4", "QUInt4x2", "QUInt8"],
]
_REBUILD = [
    "_rebuild_device_tensor_from_cpu_tensor",
    "_rebuild_device_tensor_from_numpy",
    "_rebuild_meta_tensor_no_storage",
    "_rebuild_nested_tensor",
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
    "_rebuild_qtensor",
    "_rebuild_sparse_tensor",
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_wrapper_subclass",
]

WEIGHTS_ONLY_GLOBALS: frozenset[str] = frozenset(
    {
        "_codecs.encode",
        "builtins.bytearray",
        "builtins.complex",
        "builtins.set",
        "collections.Counter",
        "collections.OrderedDict",
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "torch._tensor._rebuild_from_type_v2",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        *(f"torch.{d}" for d in _DTYPES),
        *(f"torch._utils.{f}" for f in _REBUILD),
        *(f"torch.{t}Tensor" for t in _TENSOR_TYPES),
        *(f"torch.cuda.{t}Tensor" for t in _TENSOR_TYPES),
        *(f"torch.sparse.{t}Tensor" for t in _TENSOR_TYPES if t != "Bool"),
        *(f"torch.cuda.sparse.{t}Tensor" for t in _TENSOR_TYPES if t != "Bool"),
        *(f"torch.{t}Storage" for t in _STORAGE_TYPES),
        *(f"torch.cuda.{t}Storage" for t in _STORAGE_TYPES if not t.startswith("Q")),
    }
)

DATA_GLOBALS: frozenset[str] = frozenset(
    {
        # numpy arrays, scalars, dtypes and RNG states (np.random.get_state(), Generator pickles)
        *(
            f"{np}.{name}"
            for np in ("numpy.core.multiarray", "numpy._core.multiarray")
            for name in ("_reconstruct", "scalar")
        ),
        "numpy.ndarray",
        "numpy.dtype",
        *(
            f"numpy.dtypes.{t}DType"
            for t in ["Float64", "Float32", "Float16", "Int64", "Int32", "UInt32"]
        ),
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random.mtrand.RandomState",
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        "numpy.random._generator.Generator",
        # containers and plain values
        "collections.defaultdict",
        "collections.deque",
        "collections.namedtuple",
        "argparse.Namespace",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.range",
        "builtins.object",
        "builtins.int",
        "builtins.float",
        "builtins.str",
        "builtins.bytes",
        "builtins.bool",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "copyreg._reconstructor",
        "datetime.datetime",
        "datetime.date",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "uuid.UUID",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "torch.nn.modules.container.ModuleDict",
        # The enums a transformers TrainingArguments pickles (enum(value) is a lookup).
        "transformers.trainer_utils.IntervalStrategy",
        "transformers.trainer_utils.SaveStrategy",
        "transformers.trainer_utils.HubStrategy",
        "transformers.trainer_utils.SchedulerType",
        "transformers.trainer_utils.FSDPOption",
        "transformers.training_args.OptimizerNames",
        "transformers.debug_utils.DebugOption",
        "accelerate.utils.dataclasses.DistributedType",
    }
)

# Whole modules whose every global runs code, reads files or opens connections.
UNSAFE_MODULES: frozenset[str] = frozenset(
    {
        "os",
        "posix",
        "nt",
        "sys",
        "subprocess",
        "_posixsubprocess",
        "pty",
        "commands",
        "popen2",
        "runpy",
        "importlib",
        "imp",
        "pkgutil",
        "zipimport",
        "code",
        "codeop",
        "pdb",
        "bdb",
        "timeit",
        "trace",
        "profile",
        "cProfile",
        "pickle",
        "_pickle",
        "cPickle",
        "dill",
        "cloudpickle",
        "joblib",
        "marshal",
        "shelve",
        "shutil",
        "tempfile",
        "glob",
        "io",
        "_io",
        "fileinput",
        "socket",
        "_socket",
        "ssl",
        "select",
        "asyncio",
        "http",
        "httplib",
        "urllib",
        "urllib2",
        "urllib3",
        "requests",
        "aiohttp",
        "ftplib",
        "smtplib",
        "telnetlib",
        "webbrowser",
        "ctypes",
        "_ctypes",
        "cffi",
        "multiprocessing",
        "concurrent",
        "threading",
        "_thread",
        "signal",
        "types",
        "pip",
        "setuptools",
        "venv",
        "ensurepip",
        "distutils",
        "torch.hub",
        "torch.jit",
        "torch._inductor",
        "torch._dynamo",
        "torch.utils.cpp_extension",
        "numpy.testing",
        "numpy.f2py",
        "numpy.distutils",
    }
)

UNSAFE_GLOBALS: frozenset[str] = frozenset(
    {
        "builtins.eval",
        "builtins.exec",
        "builtins.compile",
        "builtins.execfile",
        "builtins.getattr",
        "builtins.setattr",
        "builtins.delattr",
        "builtins.__import__",
        "builtins.__build_class__",
        "builtins.open",
        "builtins.input",
        "builtins.breakpoint",
        "builtins.globals",
        "builtins.locals",
        "builtins.vars",
        "builtins.apply",
        "builtins.type",
        "builtins.memoryview",
        "operator.attrgetter",
        "operator.methodcaller",
        "operator.getitem",
        "functools.reduce",
        "functools.partial",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
        "torch.load",
        "torch.serialization.load",
        "torch.storage._load_from_bytes",
        "torch._C._jit_script_compile",
        "torch.ops",
        "numpy.load",
        "numpy.loadtxt",
        "numpy.fromfile",
        "numpy.lib.npyio.load",
        "numpy.ctypeslib.load_library",
        "logging.config.listen",
        "logging.config.fileConfig",
        "code.InteractiveInterpreter",
    }
)


def _in_module(full: str, modules: frozenset[str]) -> bool:
    head = full
    while "." in head:
        head = head.rsplit(".", 1)[0]
        if head in modules:
            return True
    return False


def classify(full: str, uses: set[str] | frozenset[str] = frozenset()) -> str:
    """The class of one global, ``module.qualname``; ``uses`` says how the pickle used it.

    A global the pickle only instantiates (``NEWOBJ``/``BUILD``) is data unless
    its name is code-executing: creating an object with ``cls.__new__`` and
    filling its ``__dict__`` runs none of the class's own code. (``__setstate__``
    would, for a class that defines one; the classes that matter --
    ``subprocess.Popen`` and friends -- are in the unsafe list, whatever the
    usage.) A global only *referenced* (no recorded use) stays unknown: it may
    be the base whose ``__init__`` ``copyreg._reconstructor`` runs, or a function
    another record calls -- such as the ``torch._C._nn.gelu`` that a whole
    transformers model saved with ``torch.save(model)`` holds as an attribute.
    """
    if (
        full in UNSAFE_GLOBALS
        or _in_module(full, UNSAFE_MODULES)
        or _in_module(full, UNSAFE_GLOBALS)  # torch.ops.aten.x, builtins.getattr.__call__
    ):
        return UNSAFE
    module = full.rsplit(".", 1)[0] if "." in full else ""
    # A dotted qualname ("os.path.join" as module "os", name "path.join") names what it reaches.
    if module.split(".", 1)[0] in {"os", "posix", "nt", "subprocess", "sys", "builtins"} and (
        full not in WEIGHTS_ONLY_GLOBALS and full not in DATA_GLOBALS
    ):
        return UNSAFE
    if full in WEIGHTS_ONLY_GLOBALS:
        return WEIGHTS_ONLY
    if full in DATA_GLOBALS:
        return DATA
    calls = {"reduce", "inst", "obj", "pid"}
    if uses and not (set(uses) & calls):
        return DATA
    return UNKNOWN


def judge(result: Result) -> tuple[PickleGlobal, ...]:
    """Every global a pickle names, sorted by name, with its class."""
    return tuple(
        sorted(
            (
                PickleGlobal(g.full, classify(g.full, result.uses.get(g.full, set())))
                for g in result.globals
            ),
            key=lambda pg: pg.name,
        )
    )
