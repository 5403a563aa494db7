"""The native line scanner (native/bronze_scan.rs, loaded with ctypes): a bronze body's plain
lines decoded straight into Arrow columns, with no Python object per row or field.

The scanner decides only lines of one plain shape (see bronze_scan.rs); every other line is
left to the Python path (orjson, then the columnar kernels or the per-row reference), so what
it accepts is always decoded as orjson would. Without the library (a checkout where it was not
built) scan() returns None and everything takes the Python path.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path
from typing import Final

import attrs
import pyarrow as pa
import pyarrow.compute as pc

LIBRARY_ENV: Final = "ETL_BRONZE_SCAN_LIBRARY"  # a path to the built library, if not beside this
LIBRARY: Final = Path(__file__).parent / "native" / "libbronze_scan.so"
ABI: Final = 2  # bronze_scan.rs's ABI: the ScanOut/ColumnOut layout _Scan/_Column mirror

# The scanner's field numbers (bronze_scan.rs) and what a field held on a line.
_FIELDS: Final = {
    "record_id": 0, "agency_id": 1, "occurred_at": 2, "updated_at": 3, "record_type": 4,
    "status": 5, "location": 6, "location.lat": 7, "location.lon": 8, "amount": 9,
    "officer": 10, "officer.badge": 11, "officer.name": 12, "tags": 13,
}  # fmt: skip
_ABSENT, _NULL, _OBJECT = 0, 1, 4
_ISO_FIELDS: Final = ("occurred_at", "updated_at")  # the scanner reads these as ISO instants too


class _Column(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_void_p),
        ("offsets", ctypes.c_void_p),
        ("data", ctypes.c_void_p),
        ("data_len", ctypes.c_size_t),
        ("ints", ctypes.c_void_p),
        ("string_valid", ctypes.c_void_p),
        ("int_valid", ctypes.c_void_p),
        ("iso_seconds", ctypes.c_void_p),
        ("iso_micros", ctypes.c_void_p),
        ("iso_valid", ctypes.c_void_p),
    ]


class _Scan(ctypes.Structure):
    _fields_ = [
        ("lines", ctypes.c_size_t),
        ("status", ctypes.c_void_p),
        ("columns", _Column * len(_FIELDS)),
        ("tag_offsets", ctypes.c_void_p),
        ("tag_value_offsets", ctypes.c_void_p),
        ("tag_values", ctypes.c_size_t),
        ("tag_data", ctypes.c_void_p),
        ("tag_data_len", ctypes.c_size_t),
        ("handle", ctypes.c_void_p),
    ]


@attrs.frozen
class ScannedFields:
    """FieldColumns (field_columns.py) over the plain lines of a scan, in line order."""

    rows: int
    _kinds: dict[str, pa.Array]
    _strings: dict[str, pa.Array]
    _ints: dict[str, pa.Array]
    _tags: pa.ListArray
    _isos: dict[str, tuple[pa.Array, pa.Array]]  # path -> (epoch seconds, micros), null if not ISO

    def is_object(self) -> pa.Array:
        return pa.repeat(pa.scalar(True), self.rows)

    def strings(self, path: str) -> pa.Array:
        return self._strings[path]

    def ints(self, path: str) -> pa.Array:
        return self._ints[path]

    def number(self, path: str) -> tuple[pa.Array, pa.Array | None]:
        ints = self._ints[path]
        numbers = None if ints.null_count == len(ints) else ints.cast(pa.float64(), safe=False)
        return self._strings[path], numbers

    def is_null(self, path: str) -> pa.Array:
        return pc.less_equal(self._kinds[path], _NULL)

    def is_object_at(self, path: str) -> pa.Array:
        return pc.equal(self._kinds[path], _OBJECT)

    def raw_tags(self) -> pa.ListArray:
        return self._tags

    def iso(self, path: str) -> tuple[pa.Array, pa.Array, pa.Array] | None:
        parsed = self._isos.get(path)
        if parsed is None:
            return None
        seconds, micros = parsed
        return pc.is_valid(seconds), seconds, micros


@attrs.frozen
class Scanned:
    """What the scanner made of a body: which of its lines (split at "\\n", as bytes.split does)
    are plain, and the plain lines' fields."""

    plain: bytes  # one byte a line: 1 plain, 0 for the Python path
    line_numbers: pa.Array  # int64, the 1-based numbers of the plain lines
    fields: ScannedFields


def scan(text: bytes) -> Scanned | None:
    """The scan of a decompressed body, or None when the library is not there."""
    library = _library()
    if library is None:
        return None
    out = _Scan()
    if library.bronze_scan(text, len(text), ctypes.byref(out)) != 0:
        return None
    try:
        return _scanned(out)
    finally:
        library.bronze_scan_free(out.handle)


def _scanned(out: _Scan) -> Scanned:
    lines = out.lines
    plain = ctypes.string_at(out.status, lines)
    mask = pa.Array.from_buffers(pa.uint8(), lines, [None, pa.py_buffer(plain)])
    is_plain = pc.equal(mask, 1)
    bitmap = (lines + 7) // 8
    kinds, strings, ints = {}, {}, {}
    for path, index in _FIELDS.items():
        column = out.columns[index]
        kinds[path] = pa.Array.from_buffers(
            pa.uint8(), lines, [None, _buffer(column.kind, lines)]
        ).filter(is_plain)
        strings[path] = pa.Array.from_buffers(
            pa.string(),
            lines,
            [
                _buffer(column.string_valid, bitmap),
                _buffer(column.offsets, 4 * (lines + 1)),
                _buffer(column.data, column.data_len),
            ],
        ).filter(is_plain)
        ints[path] = pa.Array.from_buffers(
            pa.int64(),
            lines,
            [_buffer(column.int_valid, bitmap), _buffer(column.ints, 8 * lines)],
        ).filter(is_plain)
    isos = {}
    for path in _ISO_FIELDS:
        column = out.columns[_FIELDS[path]]
        valid = _buffer(column.iso_valid, bitmap)
        seconds = pa.Array.from_buffers(
            pa.int64(), lines, [valid, _buffer(column.iso_seconds, 8 * lines)]
        )
        micros = pa.Array.from_buffers(
            pa.int64(), lines, [valid, _buffer(column.iso_micros, 8 * lines)]
        )
        isos[path] = (seconds.filter(is_plain), micros.filter(is_plain))
    values = pa.Array.from_buffers(
        pa.string(),
        out.tag_values,
        [
            None,
            _buffer(out.tag_value_offsets, 4 * (out.tag_values + 1)),
            _buffer(out.tag_data, out.tag_data_len),
        ],
    )
    offsets = pa.Array.from_buffers(
        pa.int32(), lines + 1, [None, _buffer(out.tag_offsets, 4 * (lines + 1))]
    )
    tags = pa.ListArray.from_arrays(offsets, values).filter(is_plain)
    numbers = pc.add(pc.indices_nonzero(is_plain), 1).cast(pa.int64())
    fields = ScannedFields(len(numbers), kinds, strings, ints, tags, isos)
    return Scanned(plain, numbers, fields)


def _buffer(address: int | None, size: int) -> pa.Buffer:
    return pa.py_buffer(ctypes.string_at(address, size) if size and address else b"")


class ScannerMismatch(RuntimeError):
    """The library found was built from another version of bronze_scan.rs."""


@functools.cache
def _library() -> ctypes.CDLL | None:
    path = Path(os.environ.get(LIBRARY_ENV) or LIBRARY)
    if not path.is_file():
        return None
    library = ctypes.CDLL(str(path))
    # A library of another layout would be read as garbage: refuse it, naming it.
    try:
        library.bronze_scan_abi.restype = ctypes.c_uint32
        abi = library.bronze_scan_abi()
    except AttributeError:
        abi = None
    if abi != ABI:
        raise ScannerMismatch(
            f"{path}: not a native bronze scanner of ABI {ABI} (found {abi}); rebuild it from "
            "src/python/data_pipeline/silver/native/bronze_scan.rs (./pants export-codegen "
            f"src/python/data_pipeline/silver/native:build) or unset {LIBRARY_ENV}"
        )
    library.bronze_scan.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_Scan)]
    library.bronze_scan.restype = ctypes.c_int
    library.bronze_scan_free.argtypes = [ctypes.c_void_p]
    library.bronze_scan_free.restype = None
    return library
