"""A pickle virtual machine that imports nothing and calls nothing.

PyTorch checkpoints are pickles. Loading one with :mod:`pickle` imports every
module it names and calls every function it asks for -- ``os.system`` as
readily as ``torch._utils._rebuild_tensor_v2``. This module runs the pickle
*opcodes* (protocols 0 to 5) over a bounded stack and memo without ever
resolving a name:

* ``GLOBAL`` / ``STACK_GLOBAL`` / ``INST`` / ``OBJ`` / the extension codes
  push an inert :class:`Global` that only *names* ``module.qualname``;
* ``REDUCE`` / ``NEWOBJ`` / ``NEWOBJ_EX`` / ``INST`` / ``OBJ`` push a
  :class:`Call` that records the callable and its arguments; ``BUILD``,
  ``SETITEM(S)`` and ``APPEND(S)`` on a call record its state and items;
* a persistent id becomes a :class:`StorageRef` when it has the shape
  ``torch.save`` writes, ``('storage', storage_type, key, location, numel)``,
  and a :class:`PersistentId` otherwise.

Dicts become :class:`PDict` (a list of pairs: keys may be anything, and
nothing is hashed), sets :class:`PSet`. The result is plain data that a
caller can walk; nothing in it can run.

Bounds (hostile input): the opcodes run (``MAX_OPS``, which also bounds the
stack and every reference held), the objects created (``MAX_OBJECTS``: the
memory a pickle can make the VM hold), integer literals (``MAX_INT_BYTES``),
text arguments (``MAX_TEXT_LINE``) and the distinct globals are capped; the
caller bounds the pickle's size. Dispatch is one table lookup per opcode, so
the time is linear in the opcodes run. Any malformed stream raises
:class:`PickleError`, never another exception.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gitsnap.errors import PickleError

MAX_OBJECTS = 600_000  # ~120 MiB of recorded objects at worst; ~8 per tensor in torch.save
MAX_OPS = 3_000_000  # ~25 per tensor in torch.save; a few seconds at worst
MAX_INT_BYTES = 256  # a LONG1/LONG4 literal: 2048 bits; torch never writes more than 8 bytes
MAX_TEXT_LINE = 1 << 16  # protocol-0 text arguments (numbers, names)


_T = TypeVar("_T")


@dataclass(frozen=True, eq=False)
class Global:
    """An inert placeholder for ``module.name``: never imported, never looked up."""

    module: str
    name: str

    @property
    def full(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False, slots=True)
class Call:
    """``func(*args)`` as the pickle asks for it, recorded instead of run.

    ``kind`` is ``reduce``, ``newobj`` (``cls.__new__(cls, *args)``),
    ``newobj_ex`` (with ``kwargs``), ``inst`` or ``obj`` (protocol 0/1 instances).
    """

    func: Any
    args: tuple[Any, ...]
    kind: str
    kwargs: Any = None
    state: Any = None  # what BUILD set (None: no BUILD)
    has_state: bool = False
    # Filled by SETITEM(S) / APPEND(S) on the call's result; empty tuples until then, so a
    # million recorded calls cost no lists.
    dictitems: list[tuple[Any, Any]] | tuple[()] = ()
    listitems: list[Any] | tuple[()] = ()

    @property
    def name(self) -> str:
        return self.func.full if isinstance(self.func, Global) else ""


@dataclass(frozen=True, eq=False)
class StorageRef:
    """A ``torch.save`` storage: ``data/<key>`` in the archive, ``numel`` elements of its type."""

    storage_type: str  # e.g. "torch.FloatStorage", "torch.storage.UntypedStorage"
    key: str
    location: str
    numel: int


@dataclass(frozen=True, eq=False)
class PersistentId:
    """Any other persistent id, kept as the data it is."""

    value: Any


@dataclass(eq=False, slots=True)
class PDict:
    """A dict as a list of pairs: pickled keys may be unhashable placeholders."""

    items: list[tuple[Any, Any]] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class PSet:
    items: list[Any] = field(default_factory=list)
    frozen: bool = False


@dataclass(frozen=True)
class Buffer:
    """A protocol-5 out-of-band buffer: its bytes are not in the stream."""


class _Mark:
    pass


_MARK = _Mark()


@dataclass
class Result:
    """What a pickle holds, and every global it names (first use first)."""

    value: Any
    globals: list[Global]
    # How each global was used: "reduce", "newobj", "inst", "obj", "build", "pid", "ref".
    uses: dict[str, set[str]]


def _normalize(module: str, name: str) -> tuple[str, str]:
    """Python 2 names as Python 3's unpickler maps them (``__builtin__`` -> ``builtins``)."""
    mapped = _compat_pickle.NAME_MAPPING.get((module, name))
    if mapped is not None:
        return mapped
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _VM:
    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.objects = 0
        self.globals: list[Global] = []
        self.by_name: dict[str, Global] = {}
        self.uses: dict[str, set[str]] = {}

    # ---------------------------------------------------------------- reading

    def read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise PickleError(f"truncated pickle: {n} bytes wanted at offset {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def readline(self) -> bytes:
        end = self.data.find(b"\n", self.pos, self.pos + MAX_TEXT_LINE)
        if end < 0:
            raise PickleError(f"unterminated text argument at offset {self.pos}")
        out = self.data[self.pos : end]
        self.pos = end + 1
        return out

    def u8(self) -> int:
        return self.read(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("<H", self.read(2))[0])

    def u32(self) -> int:
        return int(struct.unpack("<I", self.read(4))[0])

    def i32(self) -> int:
        return int(struct.unpack("<i", self.read(4))[0])

    def u64(self) -> int:
        return int(struct.unpack("<Q", self.read(8))[0])

    # ---------------------------------------------------------------- stack

    def new(self, obj: _T) -> _T:
        self.objects += 1
        if self.objects > MAX_OBJECTS:
            raise PickleError(f"the pickle creates more than {MAX_OBJECTS} objects")
        return obj

    def push(self, obj: Any) -> None:
        self.stack.append(obj)

    def pop(self) -> Any:
        if not self.stack:
            raise PickleError(f"stack underflow at offset {self.pos - 1}")
        obj = self.stack.pop()
        if obj is _MARK:
            raise PickleError(f"unexpected mark at offset {self.pos - 1}")
        return obj

    def top(self) -> Any:
        if not self.stack or self.stack[-1] is _MARK:
            raise PickleError(f"stack underflow at offset {self.pos - 1}")
        return self.stack[-1]

    def mark(self) -> None:
        self.new(None)
        self.metastack.append(self.stack)
        self.stack = []

    def pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise PickleError(f"no mark to pop at offset {self.pos - 1}")
        items = self.stack
        self.stack = self.metastack.pop()
        if any(x is _MARK for x in items):  # pragma: no cover - marks never sit on a stack
            raise PickleError("stray mark")
        return items

    def put(self, idx: int) -> None:
        if idx < 0:
            raise PickleError("negative memo index")
        if idx not in self.memo and len(self.memo) >= MAX_OBJECTS:
            raise PickleError(f"memo larger than {MAX_OBJECTS} entries")
        self.memo[idx] = self.top()

    def get(self, idx: int) -> None:
        try:
            self.push(self.memo[idx])
        except KeyError:
            raise PickleError(f"memo entry {idx} was never stored") from None

    def global_(self, module: str, name: str) -> Global:
        module, name = _normalize(module, name)
        full = f"{module}.{name}"
        g = self.by_name.get(full)
        if g is None:
            if len(self.globals) >= 10_000:
                raise PickleError("the pickle names more than 10000 globals")
            g = Global(module, name)
            self.by_name[full] = g
            self.globals.append(g)
            self.uses[full] = set()
        return self.new(g)

    def use(self, func: Any, how: str) -> None:
        if isinstance(func, Global):
            self.uses[func.full].add(how)

    def call(self, func: Any, args: Any, kind: str, kwargs: Any = None) -> Call:
        if not isinstance(args, tuple):
            raise PickleError(f"{kind} arguments are not a tuple at offset {self.pos - 1}")
        self.use(func, kind)
        if (
            isinstance(func, Global)
            and func.full == "copyreg._reconstructor"
            and args
            and isinstance(args[0], Global)
        ):
            # Protocols 0/1 spell cls.__new__ + BUILD as copyreg._reconstructor(cls, object, None).
            self.use(args[0], "newobj")
        return self.new(Call(func, args, kind, kwargs))

    # ---------------------------------------------------------------- run

    def run(self) -> Any:
        table = self._table()
        n = len(self.data)
        ops = 0
        while True:
            if self.pos >= n:
                raise PickleError("pickle ends without a STOP opcode")
            op = self.data[self.pos]
            self.pos += 1
            if op == 0x2E:  # STOP
                return self.pop()
            ops += 1
            if ops > MAX_OPS:
                raise PickleError(f"the pickle runs more than {MAX_OPS} opcodes")
            handler = table.get(op)
            if handler is None:
                raise PickleError(f"unknown opcode 0x{op:02x} at offset {self.pos - 1}")
            handler(op)

    def _table(self) -> dict[int, Callable[[int], None]]:
        return {
            0x80: self._op_80,
            0x95: self._op_95,
            0x4E: self._op_4e,
            0x88: self._op_88,
            0x89: self._op_89,
            0x4A: self._op_4a,
            0x4B: self._op_4b,
            0x4D: self._op_4d,
            0x8A: self._op_8a,
            0x8B: self._op_8a,
            0x49: self._op_49,
            0x4C: self._op_4c,
            0x46: self._op_46,
            0x47: self._op_47,
            0x58: self._op_58,
            0x8C: self._op_8c,
            0x8D: self._op_8d,
            0x56: self._op_56,
            0x42: self._op_42,
            0x43: self._op_43,
            0x8E: self._op_8e,
            0x96: self._op_96,
            0x54: self._op_54,
            0x55: self._op_55,
            0x53: self._op_53,
            0x97: self._op_97,
            0x98: self._op_97,
            0x28: self._op_28,
            0x29: self._op_29,
            0x85: self._op_85,
            0x86: self._op_86,
            0x87: self._op_87,
            0x74: self._op_74,
            0x5D: self._op_5d,
            0x6C: self._op_6c,
            0x7D: self._op_7d,
            0x64: self._op_64,
            0x8F: self._op_8f,
            0x91: self._op_91,
            0x61: self._op_61,
            0x65: self._op_65,
            0x73: self._op_73,
            0x75: self._op_75,
            0x90: self._op_90,
            0x30: self._op_30,
            0x31: self._op_31,
            0x32: self._op_32,
            0x71: self._op_71,
            0x72: self._op_72,
            0x70: self._op_70,
            0x94: self._op_94,
            0x68: self._op_68,
            0x6A: self._op_6a,
            0x67: self._op_67,
            0x63: self._op_63,
            0x93: self._op_93,
            0x82: self._op_82,
            0x83: self._op_82,
            0x84: self._op_82,
            0x52: self._op_52,
            0x81: self._op_81,
            0x92: self._op_92,
            0x69: self._op_69,
            0x6F: self._op_6f,
            0x62: self._op_62,
            0x50: self._op_50,
            0x51: self._op_51,
        }

    def _op_80(self, op: int) -> None:  # PROTO
        if self.u8() > 5:
            raise PickleError("unsupported pickle protocol")

    def _op_95(self, op: int) -> None:  # FRAME: framing is only a hint for buffered readers
        self.u64()

    # --- constants

    def _op_4e(self, op: int) -> None:  # NONE
        self.push(None)

    def _op_88(self, op: int) -> None:  # NEWTRUE
        self.push(True)

    def _op_89(self, op: int) -> None:  # NEWFALSE
        self.push(False)

    def _op_4a(self, op: int) -> None:  # BININT
        self.push(self.i32())

    def _op_4b(self, op: int) -> None:  # BININT1
        self.push(self.u8())

    def _op_4d(self, op: int) -> None:  # BININT2
        self.push(self.u16())

    def _op_8a(self, op: int) -> None:  # LONG1, LONG4
        size = self.u8() if op == 0x8A else self.i32()
        if size < 0 or size > MAX_INT_BYTES:
            raise PickleError(f"integer literal of {size} bytes")
        self.push(int.from_bytes(self.read(size), "little", signed=True))

    def _op_49(self, op: int) -> None:  # INT (text; also the protocol-0 booleans)
        self.push(self._text_int(self.readline(), boolean=True))

    def _op_4c(self, op: int) -> None:  # LONG (text)
        self.push(self._text_int(self.readline().rstrip(b"L"), boolean=False))

    def _op_46(self, op: int) -> None:  # FLOAT (text)
        try:
            self.push(float(self.readline().decode("ascii")))
        except (ValueError, UnicodeDecodeError):
            raise PickleError("bad FLOAT literal") from None

    def _op_47(self, op: int) -> None:  # BINFLOAT
        self.push(float(struct.unpack(">d", self.read(8))[0]))

    # --- strings and bytes

    def _op_58(self, op: int) -> None:  # BINUNICODE
        self.push(self.new(self._utf8(self.read(self.u32()))))

    def _op_8c(self, op: int) -> None:  # SHORT_BINUNICODE
        self.push(self.new(self._utf8(self.read(self.u8()))))

    def _op_8d(self, op: int) -> None:  # BINUNICODE8
        self.push(self.new(self._utf8(self.read(self.u64()))))

    def _op_56(self, op: int) -> None:  # UNICODE (raw-unicode-escape text)
        try:
            self.push(self.new(self.readline().decode("raw-unicode-escape")))
        except UnicodeDecodeError:
            raise PickleError("bad UNICODE literal") from None

    def _op_42(self, op: int) -> None:  # BINBYTES
        self.push(self.new(self.read(self.u32())))

    def _op_43(self, op: int) -> None:  # SHORT_BINBYTES
        self.push(self.new(self.read(self.u8())))

    def _op_8e(self, op: int) -> None:  # BINBYTES8
        self.push(self.new(self.read(self.u64())))

    def _op_96(self, op: int) -> None:  # BYTEARRAY8
        self.push(self.new(self.read(self.u64())))

    def _op_54(
        self, op: int
    ) -> None:  # BINSTRING (Python 2 str: decoded as latin-1 like pickle's default)
        size = self.i32()
        if size < 0:
            raise PickleError("negative BINSTRING length")
        self.push(self.new(self.read(size).decode("latin-1")))

    def _op_55(self, op: int) -> None:  # SHORT_BINSTRING
        self.push(self.new(self.read(self.u8()).decode("latin-1")))

    def _op_53(self, op: int) -> None:  # STRING (quoted, escaped text)
        self.push(self.new(self._text_string(self.readline())))

    def _op_97(self, op: int) -> None:  # NEXT_BUFFER, READONLY_BUFFER
        if op == 0x97:
            self.push(self.new(Buffer()))
        else:
            self.top()

    # --- containers

    def _op_28(self, op: int) -> None:  # MARK
        self.mark()

    def _op_29(self, op: int) -> None:  # EMPTY_TUPLE
        self.push(())

    def _op_85(self, op: int) -> None:  # TUPLE1
        self.push(self.new((self.pop(),)))

    def _op_86(self, op: int) -> None:  # TUPLE2
        b, a = self.pop(), self.pop()
        self.push(self.new((a, b)))

    def _op_87(self, op: int) -> None:  # TUPLE3
        c, b, a = self.pop(), self.pop(), self.pop()
        self.push(self.new((a, b, c)))

    def _op_74(self, op: int) -> None:  # TUPLE
        self.push(self.new(tuple(self.pop_mark())))

    def _op_5d(self, op: int) -> None:  # EMPTY_LIST
        self.push(self.new([]))

    def _op_6c(self, op: int) -> None:  # LIST
        self.push(self.new(self.pop_mark()))

    def _op_7d(self, op: int) -> None:  # EMPTY_DICT
        self.push(self.new(PDict()))

    def _op_64(self, op: int) -> None:  # DICT
        items = self.pop_mark()
        if len(items) % 2:
            raise PickleError("DICT with an odd number of items")
        self.push(self.new(PDict(list(zip(items[::2], items[1::2], strict=True)))))

    def _op_8f(self, op: int) -> None:  # EMPTY_SET
        self.push(self.new(PSet()))

    def _op_91(self, op: int) -> None:  # FROZENSET
        self.push(self.new(PSet(self.pop_mark(), frozen=True)))

    def _op_61(self, op: int) -> None:  # APPEND
        value = self.pop()
        self._extend(self.top(), [value])

    def _op_65(self, op: int) -> None:  # APPENDS
        values = self.pop_mark()
        self._extend(self.top(), values)

    def _op_73(self, op: int) -> None:  # SETITEM
        value, key = self.pop(), self.pop()
        self._setitems(self.top(), [key, value])

    def _op_75(self, op: int) -> None:  # SETITEMS
        items = self.pop_mark()
        if len(items) % 2:
            raise PickleError("SETITEMS with an odd number of items")
        self._setitems(self.top(), items)

    def _op_90(self, op: int) -> None:  # ADDITEMS
        items = self.pop_mark()
        target = self.top()
        if not isinstance(target, PSet) or target.frozen:
            raise PickleError("ADDITEMS on something that is not a set")
        target.items.extend(items)

    # --- stack and memo

    def _op_30(self, op: int) -> None:  # POP
        if self.stack:
            self.stack.pop()
        else:
            self.pop_mark()

    def _op_31(self, op: int) -> None:  # POP_MARK
        self.pop_mark()

    def _op_32(self, op: int) -> None:  # DUP
        self.push(self.top())

    def _op_71(self, op: int) -> None:  # BINPUT
        self.put(self.u8())

    def _op_72(self, op: int) -> None:  # LONG_BINPUT
        self.put(self.u32())

    def _op_70(self, op: int) -> None:  # PUT
        self.put(self._text_int(self.readline(), boolean=False))

    def _op_94(self, op: int) -> None:  # MEMOIZE
        self.put(len(self.memo))

    def _op_68(self, op: int) -> None:  # BINGET
        self.get(self.u8())

    def _op_6a(self, op: int) -> None:  # LONG_BINGET
        self.get(self.u32())

    def _op_67(self, op: int) -> None:  # GET
        self.get(self._text_int(self.readline(), boolean=False))

    # --- names: placeholders only

    def _op_63(self, op: int) -> None:  # GLOBAL
        module = self._ascii(self.readline())
        self.push(self.global_(module, self._ascii(self.readline())))

    def _op_93(self, op: int) -> None:  # STACK_GLOBAL
        name, module = self.pop(), self.pop()
        if not isinstance(module, str) or not isinstance(name, str):
            raise PickleError("STACK_GLOBAL needs two strings")
        self.push(self.global_(module, name))

    def _op_82(self, op: int) -> None:  # EXT1, EXT2, EXT4: copyreg's extension registry
        code = self.u8() if op == 0x82 else self.u16() if op == 0x83 else self.i32()
        self.push(self.global_("copyreg._extension_registry", str(code)))

    # --- calls: recorded, never made

    def _op_52(self, op: int) -> None:  # REDUCE
        args, func = self.pop(), self.pop()
        self.push(self.call(func, args, "reduce"))

    def _op_81(self, op: int) -> None:  # NEWOBJ
        args, cls = self.pop(), self.pop()
        self.push(self.call(cls, args, "newobj"))

    def _op_92(self, op: int) -> None:  # NEWOBJ_EX
        kwargs, args, cls = self.pop(), self.pop(), self.pop()
        self.push(self.call(cls, args, "newobj_ex", kwargs))

    def _op_69(self, op: int) -> None:  # INST
        module = self._ascii(self.readline())
        cls = self.global_(module, self._ascii(self.readline()))
        self.push(self.call(cls, tuple(self.pop_mark()), "inst"))

    def _op_6f(self, op: int) -> None:  # OBJ
        items = self.pop_mark()
        if not items:
            raise PickleError("OBJ without a class")
        self.push(self.call(items[0], tuple(items[1:]), "obj"))

    def _op_62(self, op: int) -> None:  # BUILD
        state = self.pop()
        target = self.top()
        if isinstance(target, Call):
            target.state, target.has_state = state, True
            self.use(target.func, "build")
        # BUILD on anything else would fail in pickle; a placeholder has nothing to set.

    def _op_50(self, op: int) -> None:  # PERSID
        self.push(self._persistent(self._ascii(self.readline())))

    def _op_51(self, op: int) -> None:  # BINPERSID
        self.push(self._persistent(self.pop()))

    # ---------------------------------------------------------------- helpers

    def _extend(self, target: Any, values: list[Any]) -> None:
        if isinstance(target, list):
            target.extend(values)
        elif isinstance(target, Call):
            if not isinstance(target.listitems, list):
                target.listitems = []
            target.listitems.extend(values)
        else:
            raise PickleError("APPEND to something that is not a list")

    def _setitems(self, target: Any, items: list[Any]) -> None:
        pairs = list(zip(items[::2], items[1::2], strict=True))
        if isinstance(target, PDict):
            target.items.extend(pairs)
        elif isinstance(target, Call):
            if not isinstance(target.dictitems, list):
                target.dictitems = []
            target.dictitems.extend(pairs)
        else:
            raise PickleError("SETITEM on something that is not a dict")

    def _persistent(self, pid: Any) -> Any:
        if (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[1], Global)
            and isinstance(pid[2], str)
            and isinstance(pid[3], str)
            and isinstance(pid[4], int)
            and not isinstance(pid[4], bool)
        ):
            self.uses[pid[1].full].add("pid")
            return self.new(StorageRef(pid[1].full, pid[2], pid[3], pid[4]))
        if isinstance(pid, tuple):
            for x in pid:
                self.use(x, "pid")
        return self.new(PersistentId(pid))

    @staticmethod
    def _utf8(raw: bytes) -> str:
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise PickleError("string is not valid UTF-8") from None

    @staticmethod
    def _ascii(raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PickleError("global name is not valid UTF-8") from None

    @staticmethod
    def _text_int(raw: bytes, *, boolean: bool) -> Any:
        if boolean and raw == b"00":
            return False
        if boolean and raw == b"01":
            return True
        if len(raw) > 2 * MAX_INT_BYTES + 2:
            raise PickleError("integer literal too long")
        try:
            return int(raw.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            raise PickleError("bad integer literal") from None

    @staticmethod
    def _text_string(raw: bytes) -> str:
        if len(raw) < 2 or raw[:1] not in (b"'", b'"') or raw[-1:] != raw[:1]:
            raise PickleError("STRING argument is not quoted")
        try:
            return bytes(codecs.escape_decode(raw[1:-1])[0]).decode("latin-1")
        except (ValueError, UnicodeDecodeError):
            raise PickleError("bad STRING escape") from None


def run(data: bytes) -> Result:
    """Run a pickle's opcodes into inert data; raise :class:`PickleError` on anything malformed."""
    vm = _VM(data)
    try:
        value = vm.run()
    except RecursionError:  # pragma: no cover - the VM does not recurse
        raise PickleError("pickle nested too deeply") from None
    except MemoryError:
        raise PickleError("pickle needs too much memory") from None
    return Result(value, vm.globals, vm.uses)


def run_prefix(data: bytes, start: int = 0) -> tuple[Result, int]:
    """Run one pickle that starts at ``start`` of ``data``; also return where it ended.

    Legacy ``torch.save`` files are several pickles in a row followed by raw
    storage bytes.
    """
    vm = _VM(data)
    vm.pos = start
    try:
        value = vm.run()
    except MemoryError:
        raise PickleError("pickle needs too much memory") from None
    return Result(value, vm.globals, vm.uses), vm.pos
