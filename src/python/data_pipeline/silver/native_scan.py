"""The native line scanner (native/bronze_scan.rs, loaded with ctypes): a bronze body's lines
validated and normalised straight into Arrow columns, with no Python object per row or field.

The scanner finishes only the lines it can decide exactly: plain JSON (see bronze_scan.rs) whose
every field is valid in a form it knows. Every other line (not plain, or any field invalid or
of another form) is left to the Python path (orjson, the columnar kernels and the per-row
reference), so dead letters and their reasons always come from the reference. A local
occurred_at is left half done: its day in the agency's zone is native_rows.py's. Without the
library (a checkout where it was not built) scan() returns None and everything takes the Python
path.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import attrs
import pyarrow as pa

LIBRARY_ENV: Final = "ETL_BRONZE_SCAN_LIBRARY"  # a path to the built library, if not beside this
LIBRARY: Final = Path(__file__).parent / "native" / "libbronze_scan.so"
ABI: Final = 4  # bronze_scan.rs's ABI: the Params/ScanOut/StringsOut layout mirrored below


class _Params(ctypes.Structure):
    _fields_ = [
        ("agency_ids", ctypes.c_void_p),
        ("agencies", ctypes.c_size_t),
        ("record_types", ctypes.c_char_p),
        ("record_types_len", ctypes.c_size_t),
        ("statuses", ctypes.c_char_p),
        ("statuses_len", ctypes.c_size_t),
    ]


class _Strings(ctypes.Structure):
    _fields_ = [
        ("offsets", ctypes.c_void_p),
        ("data", ctypes.c_void_p),
        ("data_len", ctypes.c_size_t),
        ("valid", ctypes.c_void_p),
    ]


class _Scan(ctypes.Structure):
    _fields_ = [
        ("lines", ctypes.c_size_t),
        ("status", ctypes.c_void_p),
        ("line_starts", ctypes.c_void_p),
        ("rows", ctypes.c_size_t),
        ("line_numbers", ctypes.c_void_p),
        ("record_id", _Strings),
        ("agency", ctypes.c_void_p),
        ("occurred", ctypes.c_void_p),
        ("local_day", ctypes.c_void_p),
        ("updated_seconds", ctypes.c_void_p),
        ("updated_micros", ctypes.c_void_p),
        ("record_type", ctypes.c_void_p),
        ("status_code", ctypes.c_void_p),
        ("lat", ctypes.c_void_p),
        ("lon", ctypes.c_void_p),
        ("amount", ctypes.c_void_p),
        ("amount_valid", ctypes.c_void_p),
        ("badge", _Strings),
        ("last", _Strings),
        ("first", _Strings),
        ("tag_offsets", ctypes.c_void_p),
        ("tags", _Strings),
        ("tag_values", ctypes.c_size_t),
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
class ScannedRows:
    """The rows the scanner finished, column by column over its own buffers (no copies), in
    line order. Every value is the silver value validate_line gives, but occurred_at of a local
    time: `occurred` holds its second of the day and `local_day` its date as YYYYMMDD (-1 for
    the other forms)."""

    line_numbers: pa.Array  # int64, 1-based
    record_id: pa.Array  # string, trimmed
    agency: pa.Array  # int32: the position of the row's agency among the agency ids scanned with
    occurred: pa.Array  # int64 epoch seconds (local times: the second of the day)
    local_day: pa.Array  # int64
    updated_seconds: pa.Array  # int64
    updated_micros: pa.Array  # int64
    record_type: pa.Array  # int8: the position among the record types scanned with
    status: pa.Array  # int8: the position among the statuses scanned with
    lat: pa.Array  # float64
    lon: pa.Array  # float64
    amount: pa.Array  # float64, nullable
    officer_badge: pa.Array  # string, nullable
    officer_last: pa.Array
    officer_first: pa.Array
    tags: pa.Array  # list<string>

    @property
    def rows(self) -> int:
        return len(self.line_numbers)


# A line's status in Scanned.status.
PYTHON_PATH: Final = 0  # not finished by the scanner: the Python path decides it
FINISHED: Final = 1
BLANK: Final = 2  # nothing but spaces, tabs and CRs: not a row


@attrs.frozen
class Scanned:
    """What the scanner made of a body: the status of each of its lines (split at "\\n", as
    bytes.split does: PYTHON_PATH, FINISHED or BLANK, a byte each), where each starts, and the
    finished rows."""

    status: bytes
    rows: ScannedRows
    _text: bytes
    _starts: memoryview  # lines + 1 int64 offsets into text

    def line(self, number: int) -> bytes:
        """The 1-based line's bytes, without its newline."""
        return self._text[self._starts[number - 1] : self._starts[number] - 1]


def scan(
    text: bytes, agency_ids: Sequence[int], record_types: Sequence[str], statuses: Sequence[str]
) -> Scanned | None:
    """The scan of a decompressed body against agencies.csv's ids and the two enums (lower case),
    or None when the library is not there."""
    library = _library()
    if library is None:
        return None
    ids = (ctypes.c_int64 * len(agency_ids))(*agency_ids)
    types, states = "\n".join(record_types).encode(), "\n".join(statuses).encode()
    params = _Params(ctypes.addressof(ids), len(agency_ids), types, len(types), states, len(states))
    out = _Scan()
    if library.bronze_scan(text, len(text), ctypes.byref(params), ctypes.byref(out)) != 0:
        return None
    scanner = _Scanner(library, out)  # from here on, frees the scan when no longer used
    starts = memoryview(scanner.buffer(out.line_starts, 8 * (out.lines + 1))).cast("q")
    return Scanned(ctypes.string_at(out.status, out.lines), _rows(scanner, out), text, starts)


def _rows(scanner: _Scanner, out: _Scan) -> ScannedRows:
    rows = int(out.rows)

    def fixed(kind: pa.DataType, address: int | None, valid: int | None = None) -> pa.Array:
        data = scanner.buffer(address, rows * kind.bit_width // 8)
        bitmap = None if valid is None else scanner.buffer(valid, (rows + 7) // 8)
        return pa.Array.from_buffers(kind, rows, [bitmap, data])

    def strings(column: _Strings, count: int = rows) -> pa.Array:
        buffers = [
            scanner.buffer(column.valid, (count + 7) // 8),
            scanner.buffer(column.offsets, 4 * (count + 1)),
            scanner.buffer(column.data, column.data_len),
        ]
        return pa.Array.from_buffers(pa.string(), count, buffers)

    tag_offsets = pa.Array.from_buffers(
        pa.int32(), rows + 1, [None, scanner.buffer(out.tag_offsets, 4 * (rows + 1))]
    )
    return ScannedRows(
        line_numbers=fixed(pa.int64(), out.line_numbers),
        record_id=strings(out.record_id),
        agency=fixed(pa.int32(), out.agency),
        occurred=fixed(pa.int64(), out.occurred),
        local_day=fixed(pa.int64(), out.local_day),
        updated_seconds=fixed(pa.int64(), out.updated_seconds),
        updated_micros=fixed(pa.int64(), out.updated_micros),
        record_type=fixed(pa.int8(), out.record_type),
        status=fixed(pa.int8(), out.status_code),
        lat=fixed(pa.float64(), out.lat),
        lon=fixed(pa.float64(), out.lon),
        amount=fixed(pa.float64(), out.amount, out.amount_valid),
        officer_badge=strings(out.badge),
        officer_last=strings(out.last),
        officer_first=strings(out.first),
        tags=pa.ListArray.from_arrays(tag_offsets, strings(out.tags, int(out.tag_values))),
    )


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
    library.bronze_scan.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.POINTER(_Params),
        ctypes.POINTER(_Scan),
    ]
    library.bronze_scan.restype = ctypes.c_int
    library.bronze_scan_free.argtypes = [ctypes.c_void_p]
    library.bronze_scan_free.restype = None
    return library
