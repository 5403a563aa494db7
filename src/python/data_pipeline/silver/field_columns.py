"""Where the columnar transform (columnar.validate_fields) takes a file's fields from, a column
at a time: the FieldColumns port, and ObjectFields over the lines orjson parsed.

The lines the native scanner finishes do not come this way: it validates and normalises them
itself (native_scan.py, native_rows.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Protocol

import attrs
import pyarrow as pa

_EMPTY: Final[dict[str, Any]] = {}
_TOP_LEVEL: Final = (
    "record_id", "agency_id", "occurred_at", "updated_at", "record_type", "status", "location",
    "amount", "officer", "tags",
)  # fmt: skip
_NESTED: Final = {"location": ("lat", "lon"), "officer": ("badge", "name")}
# How many leading rows _fields looks at for the key order most rows share.
_ORDER_PROBE: Final = 16


class FieldColumns(Protocol):
    """A file's rows, field by field. A path is a top-level field (`amount`) or one of the
    officer's or location's (`officer.badge`); a nested field of a row whose parent is not an
    object is absent."""

    @property
    def rows(self) -> int:
        ...

    def is_object(self) -> pa.Array:
        """bool: the row is a JSON object (the other rows' fields are all absent)."""

    def strings(self, path: str) -> pa.Array:
        """string: the JSON strings; null for anything else (absent, null, numbers...)."""

    def ints(self, path: str) -> pa.Array:
        """int64: the JSON integers (not bools) that fit int64; null for anything else."""

    def number(self, path: str) -> tuple[pa.Array, pa.Array | None]:
        """(strings(path), float64 of the JSON numbers (int or float, not bool; null for the
        rest and for ints beyond float range), or None when no row holds a number)."""

    def is_null(self, path: str) -> pa.Array:
        """bool: absent or JSON null."""

    def is_object_at(self, path: str) -> pa.Array:
        """bool: the field is a JSON object."""

    def raw_tags(self) -> pa.ListArray | Sequence[Any]:
        """The tags: a list<string> array when every row's are a list of strings (or absent or
        null: an empty list), else each row's JSON value."""


@attrs.define
class ObjectFields:
    """FieldColumns over parsed lines (anything orjson returned)."""

    _is_object: list[bool]
    _get: Callable[[str], Sequence[Any]]
    _nested: dict[str, Callable[[str], Sequence[Any]]] = attrs.field(factory=dict)

    @classmethod
    def of(cls, values: Sequence[Any]) -> ObjectFields:
        is_object = [isinstance(value, dict) for value in values]
        objects = values if all(is_object) else _objects(values)
        return cls(is_object, _fields(objects, _TOP_LEVEL))

    @property
    def rows(self) -> int:
        return len(self._is_object)

    def _values(self, path: str) -> Sequence[Any]:
        parent, _, child = path.partition(".")
        if not child:
            return self._get(parent)
        get = self._nested.get(parent)
        if get is None:
            get = self._nested[parent] = _fields(_objects(self._get(parent)), _NESTED[parent])
        return get(child)

    def is_object(self) -> pa.Array:
        return pa.array(self._is_object, pa.bool_())

    def strings(self, path: str) -> pa.Array:
        return _strings_only(self._values(path))[0]

    def ints(self, path: str) -> pa.Array:
        return _ints(self._values(path))

    def number(self, path: str) -> tuple[pa.Array, pa.Array | None]:
        values = self._values(path)
        strings, only_strings = _strings_only(values)
        return strings, None if only_strings else _floats(values)

    def is_null(self, path: str) -> pa.Array:
        return pa.array([value is None for value in self._values(path)], pa.bool_())

    def is_object_at(self, path: str) -> pa.Array:
        return pa.array([isinstance(value, dict) for value in self._values(path)], pa.bool_())

    def raw_tags(self) -> Sequence[Any]:
        return self._get("tags")


def _fields(
    objects: Sequence[dict[str, Any]], names: Sequence[str]
) -> Callable[[str], Sequence[Any]]:
    """A function giving the value of a field (one of names) in every object, None where absent.

    Rows one producer wrote share one key order: their values are transposed in C, a column at
    a time, and only rows in another order (or with other keys) are read key by key. A file with
    no row holding every name in its first rows is read key by key throughout.
    """
    wanted = set(names)
    order = next((tuple(row) for row in objects[:_ORDER_PROBE] if wanted <= row.keys()), None)
    if order is None:
        return _getter(objects)
    same = list(map(order.__eq__, map(tuple, objects)))
    rows: Iterable[Iterable[Any]] = map(dict.values, objects)
    if not all(same):
        rows = [
            row.values() if in_order else tuple(map(row.get, order))
            for row, in_order in zip(objects, same, strict=True)
        ]
    columns = dict(zip(order, zip(*rows, strict=True), strict=True))
    return columns.__getitem__


def _getter(objects: Sequence[dict[str, Any]]) -> Callable[[str], list[Any]]:
    def get(name: str) -> list[Any]:
        return list(map(dict.get, objects, itertools.repeat(name)))

    return get


def _objects(values: Sequence[Any]) -> list[dict[str, Any]]:
    """values with anything but a JSON object replaced by an empty one (its fields: None)."""
    return [value if isinstance(value, dict) else _EMPTY for value in values]


def _strings_only(values: Sequence[Any]) -> tuple[pa.Array, bool]:
    """(the JSON strings among values, null for the rest; whether every value is a string or
    null)."""
    try:
        return pa.array(values, pa.string()), True
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        strings = [value if isinstance(value, str) else None for value in values]
        return pa.array(strings, pa.string()), False


def _ints(values: Sequence[Any]) -> pa.Array:
    """The JSON ints among values (not bools) that fit int64; null for anything else."""
    ints = [value if type(value) is int else None for value in values]  # noqa: E721 (not bool)
    try:
        return pa.array(ints, pa.int64())
    except (OverflowError, pa.ArrowInvalid):
        return pa.array([value if _fits(value) else None for value in ints], pa.int64())


def _fits(value: int | None) -> bool:
    return value is not None and -(2**63) <= value < 2**63


def _floats(values: Sequence[Any]) -> pa.Array:
    """The JSON numbers among values (int or float, not bool) as float64; null for the rest and
    for ints beyond float range."""
    numbers = [v if type(v) is float or type(v) is int else None for v in values]  # noqa: E721
    try:
        return pa.array(numbers, pa.float64())
    except (OverflowError, pa.ArrowInvalid):
        return pa.array([_float(value) for value in numbers], pa.float64())


def _float(value: float | int | None) -> float | None:
    try:
        return None if value is None else float(value)
    except OverflowError:
        return None
