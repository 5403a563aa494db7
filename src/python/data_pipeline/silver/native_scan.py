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
_NULL, _OBJECT = 1, 4
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


class _Scanner:
    """The scanner's own buffers of one scan, freed when the last Arrow buffer over them is."""

    def __init__(self, library: ctypes.CDLL, out: _Scan) -> None:
        self._library, self.out = library, out

    def __del__(self) -> None:
        self._library.bronze_scan_free(self.out.handle)

    def buffer(self, address: int | None, size: int) -> pa.Buffer:
        """size bytes at address, without a copy (they live as long as the buffer)."""
        if not size or not address:
            return pa.py_buffer(b"")
        return pa.foreign_buffer(address, size, base=self)


@attrs.frozen
class ScannedFields:
    """FieldColumns (field_columns.py) over the plain lines of a scan, in line order. Each
    column is made from the scanner's buffers when asked for: a file's transform asks for about
    a third of what the scanner fills."""

    rows: int
    _scanner: _Scanner
    _is_plain: pa.Array  # bool over all the body's lines

    def is_object(self) -> pa.Array:
        return pa.repeat(pa.scalar(True), self.rows)

    def strings(self, path: str) -> pa.Array:
        column = self._column(path)
        buffers = [
            self._bitmap(column.string_valid),
            self._scanner.buffer(column.offsets, 4 * (self._lines + 1)),
            self._scanner.buffer(column.data, column.data_len),
        ]
        return self._plain(pa.string(), buffers)

    def ints(self, path: str) -> pa.Array:
        column = self._column(path)
        return self._plain(pa.int64(), [self._bitmap(column.int_valid), self._int64(column.ints)])

    def number(self, path: str) -> tuple[pa.Array, pa.Array | None]:
        ints = self.ints(path)
        numbers = None if ints.null_count == len(ints) else ints.cast(pa.float64(), safe=False)
        return self.strings(path), numbers

    def is_null(self, path: str) -> pa.Array:
        return pc.less_equal(self._kinds(path), _NULL)

    def is_object_at(self, path: str) -> pa.Array:
        return pc.equal(self._kinds(path), _OBJECT)

    def raw_tags(self) -> pa.ListArray:
        out, lines = self._scanner.out, self._lines
        values = pa.Array.from_buffers(
            pa.string(),
            out.tag_values,
            [
                None,
                self._scanner.buffer(out.tag_value_offsets, 4 * (out.tag_values + 1)),
                self._scanner.buffer(out.tag_data, out.tag_data_len),
            ],
        )
        offsets = pa.Array.from_buffers(
            pa.int32(), lines + 1, [None, self._scanner.buffer(out.tag_offsets, 4 * (lines + 1))]
        )
        return pa.ListArray.from_arrays(offsets, values).filter(self._is_plain)

    def iso(self, path: str) -> tuple[pa.Array, pa.Array, pa.Array] | None:
        if path not in _ISO_FIELDS:
            return None
        column = self._column(path)
        valid = self._bitmap(column.iso_valid)
        seconds = self._plain(pa.int64(), [valid, self._int64(column.iso_seconds)])
        micros = self._plain(pa.int64(), [valid, self._int64(column.iso_micros)])
        return pc.is_valid(seconds), seconds, micros

    @property
    def _lines(self) -> int:
        return int(self._scanner.out.lines)

    def _column(self, path: str) -> _Column:
        column: _Column = self._scanner.out.columns[_FIELDS[path]]
        return column

    def _kinds(self, path: str) -> pa.Array:
        kinds = self._scanner.buffer(self._column(path).kind, self._lines)
        return self._plain(pa.uint8(), [None, kinds])

    def _bitmap(self, address: int | None) -> pa.Buffer:
        return self._scanner.buffer(address, (self._lines + 7) // 8)

    def _int64(self, address: int | None) -> pa.Buffer:
        return self._scanner.buffer(address, 8 * self._lines)

    def _plain(self, kind: pa.DataType, buffers: list[pa.Buffer | None]) -> pa.Array:
        """The array of all the body's lines over these buffers, cut to the plain lines."""
        return pa.Array.from_buffers(kind, self._lines, buffers).filter(self._is_plain)


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
    scanner = _Scanner(library, out)  # from here on, frees the scan when no longer used
    plain = ctypes.string_at(out.status, out.lines)
    mask = pa.Array.from_buffers(pa.uint8(), out.lines, [None, pa.py_buffer(plain)])
    is_plain = pc.equal(mask, 1)
    numbers = pc.add(pc.indices_nonzero(is_plain), 1).cast(pa.int64())
    return Scanned(plain, numbers, ScannedFields(len(numbers), scanner, is_plain))


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
