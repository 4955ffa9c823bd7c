"""Reading an untrusted weights file with limits, before torch inflates anything.

A weights file comes from the user or the network. ``torch.load(weights_only=True)``
refuses pickled code, but it trusts the sizes a file declares: an 8 MB archive can
hold one deflated 8 GiB tensor, and torch allocates it before checking anything.
So, in this order, each step cheap and bounded:

1. only a regular file (opened without blocking, so a FIFO or a device such as a
   symlink to /dev/zero is refused, not read) of at most ``MAX_FILE_BYTES``;
2. the storages the file declares (the zip directory and the pickle's storage
   records, read without torch: the pickle runs with inert stand-ins for every
   class and function) add up to at most ``MAX_TENSOR_BYTES``;
3. only then ``torch.load``; the whole read runs under ``TIME_LIMIT``.

InceptionResnetV1's state dict is ~94 MB (~112 MB with facenet-pytorch's classifier),
so the caps leave room for any real file and refuse the rest in well under a second.
This module imports torch only when it loads, so error types stay cheap to import.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import stat
import struct
import zipfile
from pathlib import Path
from typing import Any

from faceapp.engine.timelimit import TimeLimitExceeded, call_with_time_limit
from faceapp.errors import FaceAppError

MAX_FILE_BYTES = 320 * 2**20
MAX_TENSOR_BYTES = 256 * 2**20
MAX_PICKLE_BYTES = 16 * 2**20  # the state dict's structure: ~80 KB for InceptionResnetV1
TIME_LIMIT = 60.0  # seconds for read + checks + load (a real file takes 1-3 s)

# A torch file is a zip archive (torch >= 1.6) or the legacy pickle with its magic number.
ZIP_HEADER = b"PK\x03\x04"
LEGACY_HEADER = b"\x80\x02\x8a\x0a"

# Bytes per element of each storage type a state dict may hold.
_STORAGE_ITEMSIZE = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "UntypedStorage": 1,
}


class WeightsError(FaceAppError):
    """Weights are missing, unreadable or do not fit InceptionResnetV1; str() says why."""


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


# --- 1. the file ------------------------------------------------------------------------


def read_limited(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES, or a WeightsError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except FileNotFoundError:
        raise WeightsError(f"weights file not found: {path}") from None
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc.strerror or exc}") from None
    try:
        _check_stat(os.fstat(fd), path)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise WeightsError(f"cannot read weights file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:  # grew while being read
        raise WeightsError(f"{path}: larger than {_mib(MAX_FILE_BYTES)}; refused")
    return data


def _check_stat(info: os.stat_result, path: Path) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise WeightsError(f"cannot read weights file {path}: it is a folder")
    if not stat.S_ISREG(info.st_mode):
        raise WeightsError(f"{path}: not a regular file (a pipe, socket or device); refused unread")
    if info.st_size > MAX_FILE_BYTES:
        raise WeightsError(
            f"{path}: {_mib(info.st_size)}, larger than any FaceNet weights file"
            f" (limit {_mib(MAX_FILE_BYTES)}); refused unread"
        )


# --- 2. what the file declares ------------------------------------------------------------


class _Inert:
    """Stands in for every object the pickle builds: accepts anything, runs nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> _Inert:
        return _Inert()

    def __setstate__(self, state: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def append(self, item: object) -> None:
        pass

    def extend(self, items: object) -> None:
        pass


class _StorageType(_Inert):
    def __init__(self, name: str) -> None:
        self.name = name


class _Survey(pickle.Unpickler):
    """Reads one pickle and records its storages (key -> bytes) without running any code."""

    def __init__(self, stream: io.BytesIO, origin: str) -> None:
        super().__init__(stream)
        self.origin = origin
        self.storages: dict[str, tuple[int, int]] = {}  # key -> (elements, bytes each)

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        return _Inert  # torch's own weights_only load judges the globals later

    def persistent_load(self, pid: Any) -> _Inert:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise WeightsError(f"{self.origin}: damaged or truncated weights file (bad record)")
        kind, key, numel = pid[1], str(pid[2]), pid[4]
        itemsize = _STORAGE_ITEMSIZE.get(getattr(kind, "name", ""))
        if itemsize is None or not isinstance(numel, int) or numel < 0:
            raise WeightsError(f"{self.origin}: refused: storage {key} has an unknown type")
        self.storages[key] = (numel, itemsize)
        return _Inert()


def _survey(stream: io.BytesIO, origin: str) -> tuple[Any, dict[str, tuple[int, int]]]:
    """The next pickle in ``stream`` (inert stand-ins for any class) and its storages."""
    reader = _Survey(stream, origin)
    try:
        obj = reader.load()
    except WeightsError:
        raise
    except Exception as exc:  # malformed pickles raise many types
        raise WeightsError(f"{origin}: damaged or truncated weights file ({exc})") from None
    return obj, reader.storages


def _total(storages: dict[str, tuple[int, int]]) -> int:
    return sum(numel * itemsize for numel, itemsize in storages.values())


def _check_total(declared: int, origin: str, what: str) -> None:
    if declared > MAX_TENSOR_BYTES:
        raise WeightsError(
            f"{origin}: declares {_mib(declared)} of {what}, more than any FaceNet weights"
            f" (limit {_mib(MAX_TENSOR_BYTES)}); refused before loading"
        )


def check_declared_sizes(data: bytes, origin: str) -> int:
    """Total bytes of tensor data the file declares; a WeightsError when over the cap.

    Zip files: the directory's uncompressed sizes and the pickle's storage records
    (which must agree). Legacy files: the storage records and each storage's own
    size header.
    """
    if data.startswith(ZIP_HEADER):
        return _check_zip(data, origin)
    if data.startswith(LEGACY_HEADER):
        return _check_legacy(data, origin)
    raise WeightsError(f"{origin}: not a PyTorch weights file")


def _check_zip(data: bytes, origin: str) -> int:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WeightsError(f"{origin}: damaged or truncated weights file ({exc})") from None
    _check_total(sum(m.file_size for m in members), origin, "archive members")
    pickles = [m for m in members if m.filename.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise WeightsError(f"{origin}: damaged or truncated weights file (no data.pkl)")
    if pickles[0].file_size > MAX_PICKLE_BYTES:
        raise WeightsError(f"{origin}: refused: its structure is {_mib(pickles[0].file_size)}")
    try:
        with archive.open(pickles[0]) as handle:
            structure = handle.read(MAX_PICKLE_BYTES + 1)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise WeightsError(f"{origin}: damaged or truncated weights file ({exc})") from None
    storages = _survey(io.BytesIO(structure), origin)[1]
    total = _total(storages)
    _check_total(total, origin, "tensors")
    prefix = pickles[0].filename.removesuffix("data.pkl") + "data/"
    sizes = {m.filename.removeprefix(prefix): m.file_size for m in members}
    for key, (numel, itemsize) in storages.items():
        if sizes.get(key, -1) < numel * itemsize:
            raise WeightsError(f"{origin}: damaged or truncated weights file (storage {key})")
    return total


def _check_legacy(data: bytes, origin: str) -> int:
    """Legacy layout: magic, protocol, sys info, the state dict, the storage keys, then
    each storage as an 8-byte element count and its raw bytes."""
    stream = io.BytesIO(data)
    for _ in range(3):
        _survey(stream, origin)
    storages = _survey(stream, origin)[1]
    total = _total(storages)
    _check_total(total, origin, "tensors")
    keys = _survey(stream, origin)[0]
    if not isinstance(keys, list) or {str(k) for k in keys} != set(storages):
        raise WeightsError(f"{origin}: damaged or truncated weights file (storage keys)")
    for key in map(str, keys):
        head = stream.read(8)
        if len(head) < 8:
            raise WeightsError(f"{origin}: damaged or truncated weights file (storage {key})")
        if struct.unpack("<q", head)[0] != storages[key][0]:
            raise WeightsError(f"{origin}: storage {key} declares another size than its record")
        stream.seek(storages[key][0] * storages[key][1], io.SEEK_CUR)
    if stream.tell() > len(data):
        raise WeightsError(f"{origin}: damaged or truncated weights file (data missing)")
    return total


# --- 3. loading ----------------------------------------------------------------------------


def _load(data: bytes, origin: str) -> Any:
    import torch  # here, so that importing this module stays cheap

    check_declared_sizes(data, origin)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{origin}: refused: the file holds Python objects other than tensors "
            "(only a plain state dict is loaded; save model.state_dict())"
        ) from exc
    except Exception as exc:  # truncated archives, bad records: torch raises many types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{origin}: damaged or truncated weights file ({reason})") from exc


def _read_and_load(path: Path) -> tuple[Any, str]:
    data = read_limited(path)
    return _load(data, str(path)), hashlib.sha256(data).hexdigest()


def _check_file(path: Path) -> int:
    return check_declared_sizes(read_limited(path), str(path))


def _time_limited(fn: Any, path: Path, limit: float) -> Any:
    try:
        return call_with_time_limit(fn, Path(path), limit=limit, name="weights")
    except TimeLimitExceeded:
        raise WeightsError(
            f"{path}: reading the weights took longer than {limit:.0f} s (a stalled disk"
            " or network share?); refused"
        ) from None


def load_limited(path: Path, limit: float = TIME_LIMIT) -> tuple[Any, str]:
    """(what torch.load returns, sha256 of the bytes): every limit above applied."""
    return _time_limited(_read_and_load, path, limit)


def check_file(path: Path, limit: float = TIME_LIMIT) -> None:
    """Steps 1 and 2 only, without importing torch: the command line refuses a hostile
    file this way before it spends seconds loading torch."""
    _time_limited(_check_file, path, limit)
