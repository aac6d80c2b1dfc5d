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

Bounds (hostile input): every opcode consumes at least one byte, so the work
is linear in the pickle's size; the number of objects created, the stack and
the memo are capped (``MAX_OBJECTS``), as are integer literals
(``MAX_INT_BYTES``) and the total pickle size the caller hands in. Any
malformed stream raises :class:`PickleError`, never another exception.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import struct
from dataclasses import dataclass, field
from typing import Any

MAX_OBJECTS = 1_000_000
MAX_PUSHES = 8_000_000
MAX_INT_BYTES = 256  # a LONG1/LONG4 literal: 2048 bits; torch never writes more than 8 bytes
MAX_TEXT_LINE = 1 << 16  # protocol-0 text arguments (numbers, names)


class PickleError(Exception):
    """The opcode stream is malformed or exceeds a bound (the caller adds the file's name)."""


@dataclass(frozen=True, eq=False)
class Global:
    """An inert placeholder for ``module.name``: never imported, never looked up."""

    module: str
    name: str

    @property
    def full(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
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
    dictitems: list[tuple[Any, Any]] = field(default_factory=list)
    listitems: list[Any] = field(default_factory=list)

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


@dataclass(eq=False)
class PDict:
    """A dict as a list of pairs: pickled keys may be unhashable placeholders."""

    items: list[tuple[Any, Any]] = field(default_factory=list)


@dataclass(eq=False)
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
        self.pushes = 0
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

    def new(self, obj: Any) -> Any:
        self.objects += 1
        if self.objects > MAX_OBJECTS:
            raise PickleError(f"the pickle creates more than {MAX_OBJECTS} objects")
        return obj

    def push(self, obj: Any) -> None:
        # Every reference held costs memory too (GET/DUP push without creating).
        self.pushes += 1
        if self.pushes > MAX_PUSHES:
            raise PickleError(f"the pickle pushes more than {MAX_PUSHES} values")
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
        return self.new(Call(func, args, kind, kwargs))

    # ---------------------------------------------------------------- run

    def run(self) -> Any:  # noqa: C901, PLR0912, PLR0915 - one branch per opcode
        n = len(self.data)
        while True:
            if self.pos >= n:
                raise PickleError("pickle ends without a STOP opcode")
            op = self.data[self.pos]
            self.pos += 1
            # --- protocol control
            if op == 0x2E:  # STOP
                return self.pop()
            if op == 0x80:  # PROTO
                if self.u8() > 5:
                    raise PickleError("unsupported pickle protocol")
            elif op == 0x95:  # FRAME: framing is only a hint for buffered readers
                self.u64()
            # --- constants
            elif op == 0x4E:  # NONE
                self.push(None)
            elif op == 0x88:  # NEWTRUE
                self.push(True)
            elif op == 0x89:  # NEWFALSE
                self.push(False)
            elif op == 0x4A:  # BININT
                self.push(self.i32())
            elif op == 0x4B:  # BININT1
                self.push(self.u8())
            elif op == 0x4D:  # BININT2
                self.push(self.u16())
            elif op in (0x8A, 0x8B):  # LONG1, LONG4
                size = self.u8() if op == 0x8A else self.i32()
                if size < 0 or size > MAX_INT_BYTES:
                    raise PickleError(f"integer literal of {size} bytes")
                self.push(int.from_bytes(self.read(size), "little", signed=True))
            elif op == 0x49:  # INT (text; also the protocol-0 booleans)
                self.push(self._text_int(self.readline(), boolean=True))
            elif op == 0x4C:  # LONG (text)
                self.push(self._text_int(self.readline().rstrip(b"L"), boolean=False))
            elif op == 0x46:  # FLOAT (text)
                try:
                    self.push(float(self.readline().decode("ascii")))
                except (ValueError, UnicodeDecodeError):
                    raise PickleError("bad FLOAT literal") from None
            elif op == 0x47:  # BINFLOAT
                self.push(float(struct.unpack(">d", self.read(8))[0]))
            # --- strings and bytes
            elif op == 0x58:  # BINUNICODE
                self.push(self.new(self._utf8(self.read(self.u32()))))
            elif op == 0x8C:  # SHORT_BINUNICODE
                self.push(self.new(self._utf8(self.read(self.u8()))))
            elif op == 0x8D:  # BINUNICODE8
                self.push(self.new(self._utf8(self.read(self.u64()))))
            elif op == 0x56:  # UNICODE (raw-unicode-escape text)
                try:
                    self.push(self.new(self.readline().decode("raw-unicode-escape")))
                except UnicodeDecodeError:
                    raise PickleError("bad UNICODE literal") from None
            elif op == 0x42:  # BINBYTES
                self.push(self.new(self.read(self.u32())))
            elif op == 0x43:  # SHORT_BINBYTES
                self.push(self.new(self.read(self.u8())))
            elif op == 0x8E:  # BINBYTES8
                self.push(self.new(self.read(self.u64())))
            elif op == 0x96:  # BYTEARRAY8
                self.push(self.new(self.read(self.u64())))
            elif op == 0x54:  # BINSTRING (Python 2 str: decoded as latin-1 like pickle's default)
                size = self.i32()
                if size < 0:
                    raise PickleError("negative BINSTRING length")
                self.push(self.new(self.read(size).decode("latin-1")))
            elif op == 0x55:  # SHORT_BINSTRING
                self.push(self.new(self.read(self.u8()).decode("latin-1")))
            elif op == 0x53:  # STRING (quoted, escaped text)
                self.push(self.new(self._text_string(self.readline())))
            elif op in (0x97, 0x98):  # NEXT_BUFFER, READONLY_BUFFER
                if op == 0x97:
                    self.push(self.new(Buffer()))
                else:
                    self.top()
            # --- containers
            elif op == 0x28:  # MARK
                self.mark()
            elif op == 0x29:  # EMPTY_TUPLE
                self.push(())
            elif op == 0x85:  # TUPLE1
                self.push(self.new((self.pop(),)))
            elif op == 0x86:  # TUPLE2
                b, a = self.pop(), self.pop()
                self.push(self.new((a, b)))
            elif op == 0x87:  # TUPLE3
                c, b, a = self.pop(), self.pop(), self.pop()
                self.push(self.new((a, b, c)))
            elif op == 0x74:  # TUPLE
                self.push(self.new(tuple(self.pop_mark())))
            elif op == 0x5D:  # EMPTY_LIST
                self.push(self.new([]))
            elif op == 0x6C:  # LIST
                self.push(self.new(self.pop_mark()))
            elif op == 0x7D:  # EMPTY_DICT
                self.push(self.new(PDict()))
            elif op == 0x64:  # DICT
                items = self.pop_mark()
                if len(items) % 2:
                    raise PickleError("DICT with an odd number of items")
                self.push(self.new(PDict(list(zip(items[::2], items[1::2], strict=True)))))
            elif op == 0x8F:  # EMPTY_SET
                self.push(self.new(PSet()))
            elif op == 0x91:  # FROZENSET
                self.push(self.new(PSet(self.pop_mark(), frozen=True)))
            elif op == 0x61:  # APPEND
                value = self.pop()
                self._extend(self.top(), [value])
            elif op == 0x65:  # APPENDS
                values = self.pop_mark()
                self._extend(self.top(), values)
            elif op == 0x73:  # SETITEM
                value, key = self.pop(), self.pop()
                self._setitems(self.top(), [key, value])
            elif op == 0x75:  # SETITEMS
                items = self.pop_mark()
                if len(items) % 2:
                    raise PickleError("SETITEMS with an odd number of items")
                self._setitems(self.top(), items)
            elif op == 0x90:  # ADDITEMS
                items = self.pop_mark()
                target = self.top()
                if not isinstance(target, PSet) or target.frozen:
                    raise PickleError("ADDITEMS on something that is not a set")
                target.items.extend(items)
            # --- stack and memo
            elif op == 0x30:  # POP
                if self.stack:
                    self.stack.pop()
                else:
                    self.pop_mark()
            elif op == 0x31:  # POP_MARK
                self.pop_mark()
            elif op == 0x32:  # DUP
                self.push(self.top())
            elif op == 0x71:  # BINPUT
                self.put(self.u8())
            elif op == 0x72:  # LONG_BINPUT
                self.put(self.u32())
            elif op == 0x70:  # PUT
                self.put(self._text_int(self.readline(), boolean=False))
            elif op == 0x94:  # MEMOIZE
                self.put(len(self.memo))
            elif op == 0x68:  # BINGET
                self.get(self.u8())
            elif op == 0x6A:  # LONG_BINGET
                self.get(self.u32())
            elif op == 0x67:  # GET
                self.get(self._text_int(self.readline(), boolean=False))
            # --- names: placeholders only
            elif op == 0x63:  # GLOBAL
                module = self._ascii(self.readline())
                self.push(self.global_(module, self._ascii(self.readline())))
            elif op == 0x93:  # STACK_GLOBAL
                name, module = self.pop(), self.pop()
                if not isinstance(module, str) or not isinstance(name, str):
                    raise PickleError("STACK_GLOBAL needs two strings")
                self.push(self.global_(module, name))
            elif op in (0x82, 0x83, 0x84):  # EXT1, EXT2, EXT4: copyreg's extension registry
                code = self.u8() if op == 0x82 else self.u16() if op == 0x83 else self.i32()
                self.push(self.global_("copyreg._extension_registry", str(code)))
            # --- calls: recorded, never made
            elif op == 0x52:  # REDUCE
                args, func = self.pop(), self.pop()
                self.push(self.call(func, args, "reduce"))
            elif op == 0x81:  # NEWOBJ
                args, cls = self.pop(), self.pop()
                self.push(self.call(cls, args, "newobj"))
            elif op == 0x92:  # NEWOBJ_EX
                kwargs, args, cls = self.pop(), self.pop(), self.pop()
                self.push(self.call(cls, args, "newobj_ex", kwargs))
            elif op == 0x69:  # INST
                module = self._ascii(self.readline())
                cls = self.global_(module, self._ascii(self.readline()))
                self.push(self.call(cls, tuple(self.pop_mark()), "inst"))
            elif op == 0x6F:  # OBJ
                items = self.pop_mark()
                if not items:
                    raise PickleError("OBJ without a class")
                self.push(self.call(items[0], tuple(items[1:]), "obj"))
            elif op == 0x62:  # BUILD
                state = self.pop()
                target = self.top()
                if isinstance(target, Call):
                    target.state, target.has_state = state, True
                    self.use(target.func, "build")
                # BUILD on anything else would fail in pickle; a placeholder has nothing to set.
            elif op == 0x50:  # PERSID
                self.push(self._persistent(self._ascii(self.readline())))
            elif op == 0x51:  # BINPERSID
                self.push(self._persistent(self.pop()))
            else:
                raise PickleError(f"unknown opcode 0x{op:02x} at offset {self.pos - 1}")

    # ---------------------------------------------------------------- helpers

    def _extend(self, target: Any, values: list[Any]) -> None:
        if isinstance(target, list):
            target.extend(values)
        elif isinstance(target, Call):
            target.listitems.extend(values)
        else:
            raise PickleError("APPEND to something that is not a list")

    def _setitems(self, target: Any, items: list[Any]) -> None:
        pairs = list(zip(items[::2], items[1::2], strict=True))
        if isinstance(target, PDict):
            target.items.extend(pairs)
        elif isinstance(target, Call):
            target.dictitems.extend(pairs)
        else:
            raise PickleError("SETITEM on something that is not a dict")

    def _persistent(self, pid: Any) -> Any:
        if (
            isinstance(pid, tuple)
            and len(pid) == 5  # noqa: PLR2004 - torch.save's storage record
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
        if len(raw) < 2 or raw[:1] not in (b"'", b'"') or raw[-1:] != raw[:1]:  # noqa: PLR2004
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
