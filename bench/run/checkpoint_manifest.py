"""What loading a checkpoint would build, read from its archive without unpickling anything.

``torch.load(weights_only=True)`` runs no code of the file's choosing, but it still calls the
callables torch allows (``bytearray``, storage and tensor classes, the tensor rebuilders) with
the arguments the file gives, before anything could look at the result: ``bytearray(2**33)``
in a 1 kB file asks for 8 GiB. So before a checkpoint is loaded, :func:`check_manifest` reads
what the load would do from the archive alone:

- its zip directory: at most :data:`MAX_MEMBERS` members, all in one folder, none twice, none
  compressed (``torch.save`` stores them), a ``data.pkl`` of at most :data:`MAX_PICKLE_BYTES`;
- the instructions of ``data.pkl`` (:func:`pickletools.genops` decodes them; nothing is run),
  with the stack followed just enough to know what each call builds: only the globals that
  mtlbench's checkpoints hold (:data:`CALLABLES`, :data:`STORAGE_ITEMSIZE`), no integer argument
  beyond the bytes the file's tensors hold, and each tensor within its storage;
- each storage the pickle names: ``numel`` times its element size must be exactly the size of its
  ``data/<key>`` record, and all records together at most the file's size and
  :data:`MAX_STORAGE_BYTES`. Loading then allocates no more than the file holds.

Every refusal is a one-line :class:`~mtlbench.bench.run.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlbench.bench.run.errors import CheckpointError

MAX_MEMBERS = 100_000  # a ResNet-50 checkpoint with Adam's moments holds about 2,000
MAX_DIRECTORY_BYTES = 16 * 2**20  # the zip's central directory (about 100 bytes a member)
MAX_PICKLE_BYTES = 16 * 2**20  # data.pkl: about 50 kB for the tiny model, under 1 MB for ResNet-50 with Adam
MAX_OTHER_BYTES = 2**16  # version, byteorder, .format_version, .storage_alignment, serialization_id
MAX_STORAGE_BYTES = 64 * 2**30  # all tensors together; the largest model here with its optimizer is about 1 GB
MAX_DIMENSIONS = 64
SMALL_INTEGER = 2**20  # integers up to this size build nothing large with the callables allowed
FIX = "it is not loaded: use a checkpoint written by mtlbench"

TENSOR_BUILDER, PARAMETER_BUILDER = "torch._utils _rebuild_tensor_v2", "torch._utils _rebuild_parameter"
CALLABLES = ("collections OrderedDict", TENSOR_BUILDER, PARAMETER_BUILDER, "torch device")  # what torch.save writes calls of
STORAGE_ITEMSIZE = {  # the storage types of torch.save's persistent ids, by their element size in bytes
    **dict.fromkeys(("torch BoolStorage", "torch ByteStorage", "torch CharStorage"), 1),
    **dict.fromkeys(("torch HalfStorage", "torch BFloat16Storage", "torch ShortStorage"), 2),
    **dict.fromkeys(("torch FloatStorage", "torch IntStorage"), 4),
    **dict.fromkeys(("torch DoubleStorage", "torch LongStorage", "torch ComplexFloatStorage"), 8),
    "torch ComplexDoubleStorage": 16,
}
PLAIN = {  # instructions that push plain data: what each pushes
    "NONE": None,
    "NEWTRUE": True,
    "NEWFALSE": False,
    "EMPTY_TUPLE": (),
}
CONTAINERS = {"EMPTY_LIST": "list", "EMPTY_DICT": "dict", "EMPTY_SET": "set"}  # (pushed as one stand-in each: contents untracked)
VALUES = ("BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT", "BINUNICODE", "SHORT_BINSTRING")
IGNORED = ("PROTO", "APPEND", "SETITEM")  # (APPEND and SETITEM pop what they add: see _step)


@dataclass(frozen=True)
class Global:
    """A global the pickle names (``module name``, as pickletools gives it)."""

    name: str


@dataclass(frozen=True)
class Storage:
    """A storage the pickle loads: its record's key and its number of elements."""

    key: str
    numel: int


@dataclass(frozen=True)
class Built:
    """What a call builds: a container of ``kind``, or a tensor (kind "tensor")."""

    kind: str


class Mark:
    """The MARK instruction's place on the stack."""


_CONTAINER = {name: Built(kind) for name, kind in CONTAINERS.items()}


def _refused(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} {what}; {FIX}")


def _dotted(name: str) -> str:
    return name.replace(" ", ".", 1)


def check_directory(path: Path) -> None:
    """Refuse ``path`` when its zip directory is larger than a checkpoint's, before zipfile
    reads the directory in: the end record gives its size and member count
    (:class:`zipfile.BadZipFile` without one)."""
    with open(path, "rb") as stream:
        end = zipfile._EndRecData(stream)  # the end-of-central-directory record (zip64 read too)
    if end is None:
        raise zipfile.BadZipFile("File is not a zip file")
    members, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if members > MAX_MEMBERS or size > MAX_DIRECTORY_BYTES:
        raise _refused(path, f"lists {members} members in {size} bytes, more than the {MAX_MEMBERS} members of a checkpoint")


def check_manifest(path: Path, archive: zipfile.ZipFile) -> int:
    """Refuse ``archive`` (the opened ``path``) unless loading it builds only tensors and plain
    data, within the bytes of its own records; returns the bytes its storages hold."""
    prefix, records = _members(path, archive)
    pickle_info = records.get("data.pkl")
    if pickle_info is None:
        raise _refused(path, f"holds no {prefix}/data.pkl")
    if pickle_info.file_size > MAX_PICKLE_BYTES:
        raise _refused(path, f"holds a data.pkl of {pickle_info.file_size} bytes, more than the {MAX_PICKLE_BYTES} allowed")
    storages = {name.removeprefix("data/"): info.file_size for name, info in records.items() if name.startswith("data/")}
    total, size = sum(storages.values()), path.stat().st_size
    if total > min(size, MAX_STORAGE_BYTES):
        held = f"the {size} bytes of its file" if size <= MAX_STORAGE_BYTES else f"the {MAX_STORAGE_BYTES} a checkpoint may hold"
        raise _refused(path, f"holds storage records of {total} bytes in all, more than {held}")
    large = [
        name for name, info in records.items() if name != "data.pkl" and not name.startswith("data/") and info.file_size > MAX_OTHER_BYTES
    ]
    if large:
        raise _refused(path, f"holds a member {_shown(large[0])} of more than {MAX_OTHER_BYTES} bytes")
    _PickleWalk(path, storages, max(total, SMALL_INTEGER)).walk(archive.read(pickle_info))
    return total


def _shown(name: str) -> str:
    return name if name.isprintable() and len(name) <= 80 else repr(name[:80])


def _members(path: Path, archive: zipfile.ZipFile) -> tuple[str, dict[str, zipfile.ZipInfo]]:
    """The archive's folder and its members by their names within it; each member stored
    uncompressed, once, in that folder."""
    infos = archive.infolist()
    if not infos or len(infos) > MAX_MEMBERS:
        raise _refused(path, f"holds {len(infos)} members, not the 1 to {MAX_MEMBERS} of a checkpoint")
    prefix = infos[0].filename.split("/", 1)[0]
    records: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        folder, _, name = info.filename.partition("/")
        if folder != prefix or not name:
            raise _refused(path, f"holds {_shown(info.filename)} outside its folder {_shown(prefix)}")
        if name in records:
            raise _refused(path, f"holds {_shown(info.filename)} twice")
        if info.compress_type != zipfile.ZIP_STORED:
            raise _refused(path, f"holds {_shown(info.filename)} compressed (torch.save stores every member as it is)")
        records[name] = info
    return prefix, records


class _PickleWalk:
    """``data.pkl``'s instructions followed on a stack of stand-ins: the calls it would make and
    the storages it would load are checked, and nothing is built."""

    def __init__(self, path: Path, storages: dict[str, int], bound: int) -> None:
        self.path, self.storages, self.bound = path, storages, bound
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}
        self.loaded: dict[str, Storage] = {}  # torch loads a key's storage once and hands it out again

    def walk(self, data: bytes) -> None:
        try:
            for opcode, argument, _ in pickletools.genops(data):
                self._step(opcode.name, argument)
                if opcode.name == "STOP":
                    return
        except CheckpointError:
            raise
        except (ValueError, IndexError, KeyError, TypeError) as error:
            raise _refused(self.path, f"holds a data.pkl that is not a checkpoint's pickle ({_shown(str(error))})") from None

    def _pop_mark(self) -> list[Any]:
        for index in range(len(self.stack) - 1, -1, -1):
            if isinstance(self.stack[index], Mark):
                items = self.stack[index + 1 :]
                del self.stack[index:]
                return items
        raise ValueError("no MARK")

    def _step(self, name: str, argument: Any) -> None:
        stack = self.stack
        if name in PLAIN:
            stack.append(PLAIN[name])
        elif name in CONTAINERS:
            stack.append(_CONTAINER[name])
        elif name in VALUES:
            stack.append(argument)
        elif name == "MARK":
            stack.append(Mark())
        elif name in ("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
            items = self._pop_mark() if name == "TUPLE" else [stack.pop() for _ in range(int(name[-1]))][::-1]
            stack.append(tuple(items))
        elif name in ("APPEND", "SETITEM"):
            del stack[-(1 if name == "APPEND" else 2) :]
        elif name in ("APPENDS", "SETITEMS"):
            self._pop_mark()
        elif name in ("BINPUT", "LONG_BINPUT"):
            self.memo[argument] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            stack.append(self.memo[argument])
        elif name == "GLOBAL":
            stack.append(self._global(argument))
        elif name == "BINPERSID":
            stack.append(self._storage(stack.pop()))
        elif name == "REDUCE":
            arguments = stack.pop()
            stack[-1] = self._call(stack[-1], arguments)
        elif name == "BUILD":
            stack.pop()
            if stack[-1] != Built("collections OrderedDict"):
                raise _refused(self.path, f"sets the state of {_kind(stack[-1])} (only an OrderedDict's is set in a checkpoint)")
        elif name not in (*IGNORED, "STOP"):
            raise _refused(self.path, f"holds the pickle instruction {name}, which checkpoints of mtlbench do not hold")

    def _global(self, name: str) -> Global:
        if name not in CALLABLES and name not in STORAGE_ITEMSIZE:
            refused = f"Unsupported global: GLOBAL {_dotted(name)}"
            raise CheckpointError(f"checkpoint {self.path} holds objects other than tensors and plain data ({refused}); {FIX}")
        return Global(name)

    def _storage(self, pid: Any) -> Storage:
        """The storage of persistent id ``('storage', type, key, location, numel)``, whose bytes
        must be exactly its record's."""
        if not (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] in ("storage", b"storage")
            and isinstance(pid[1], Global)
            and pid[1].name in STORAGE_ITEMSIZE
            and isinstance(pid[2], str)
            and isinstance(pid[3], str | bytes)
            and type(pid[4]) is int
        ):
            raise _refused(self.path, f"loads a persistent id other than a storage of torch.save ({_kind(pid)})")
        _, kind, key, _, numel = pid
        claimed = numel * STORAGE_ITEMSIZE[kind.name]
        held = self.storages.get(key)
        if held is None or numel < 0 or claimed != held:
            record = "no record" if held is None else f"a record of {held} bytes"
            raise _refused(self.path, f"names storage {_shown(key)} of {claimed} bytes ({numel} x {_dotted(kind.name)}) but has {record}")
        return self.loaded.setdefault(key, Storage(key, numel))

    def _call(self, function: Any, arguments: Any) -> Built:
        """What calling ``function`` with ``arguments`` builds, when the call is one torch.save writes."""
        if not isinstance(function, Global) or function.name not in CALLABLES:
            raise _refused(self.path, f"calls {_kind(function)}, which a checkpoint never calls (it would build what the file asks)")
        if not isinstance(arguments, tuple) or not _fits(function.name, arguments):
            raise _refused(self.path, f"calls {_dotted(function.name)} with arguments torch.save does not write")
        if function.name == TENSOR_BUILDER:
            self._check_extent(*arguments[:4])
        largest = max(
            (abs(value) for item in arguments for value in (item if isinstance(item, tuple) else (item,)) if _counts(value)), default=0
        )
        if largest > self.bound:
            raise _refused(
                self.path, f"calls {_dotted(function.name)} with the integer {largest}, more than its tensors' bytes allow ({self.bound})"
            )
        return Built("tensor" if function.name in (TENSOR_BUILDER, PARAMETER_BUILDER) else function.name)

    def _check_extent(self, storage: Storage, offset: int, size: tuple, stride: tuple) -> None:
        """A tensor must view its storage, not grow it (torch enlarges a storage to fit the view
        it is given)."""
        extent = 0 if 0 in size else offset + 1 + sum((length - 1) * step for length, step in zip(size, stride, strict=True))
        if extent > storage.numel:
            raise _refused(
                self.path,
                f"views storage {_shown(storage.key)} of {storage.numel} elements as a tensor of shape {size}, which needs {extent}",
            )


def _fits(name: str, arguments: tuple) -> bool:
    """Whether ``arguments`` are what torch.save writes for a call of ``name``: ``OrderedDict()``,
    ``device(type[, index])``, ``_rebuild_parameter(tensor, requires_grad, hooks)`` and
    ``_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])``."""
    hooks = Built("collections OrderedDict")
    if name == "collections OrderedDict":
        return arguments == ()
    if name == "torch device":
        return 1 <= len(arguments) <= 2 and isinstance(arguments[0], str) and all(_counts(index) for index in arguments[1:])
    if name == PARAMETER_BUILDER:
        return len(arguments) == 3 and arguments[0] == Built("tensor") and type(arguments[1]) is bool and arguments[2] == hooks
    storage, offset, size, stride, requires_grad, backward_hooks, *metadata = (*arguments, None, None, None, None, None, None)[:7]
    return (
        6 <= len(arguments) <= 7
        and isinstance(storage, Storage)
        and _counts(offset)
        and isinstance(size, tuple)
        and isinstance(stride, tuple)
        and len(size) == len(stride) <= MAX_DIMENSIONS
        and all(_counts(value) for value in (*size, *stride))
        and type(requires_grad) is bool
        and backward_hooks == hooks
        and metadata[0] in (None, Built("dict"))
    )


def _counts(value: Any) -> bool:
    return type(value) is int and value >= 0


def _kind(value: Any) -> str:
    """A stand-in named for a message."""
    if isinstance(value, Global):
        return _dotted(value.name)
    if isinstance(value, Built):
        return "a tensor" if value.kind == "tensor" else f"a {_dotted(value.kind)}"
    return f"a {type(value).__name__}"
