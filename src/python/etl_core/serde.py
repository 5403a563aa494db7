"""The one private cattrs converter: structure/unstructure with readable, path-carrying errors."""

from __future__ import annotations

import datetime as dt
import enum
import math
from typing import Any, TypeVar

import cattrs
from cattrs.errors import ClassValidationError, IterableValidationError
from cattrs.v import format_exception, transform_error

from etl_core.dates import parse_date
from etl_core.errors import ConfigError
from etl_core.urls import SecretUrl, redact

__all__ = ["InvalidValue", "structure", "unstructure"]

T = TypeVar("T")

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class InvalidValue(ValueError):
    """Raised by hooks whose own message is more helpful than cattrs' generic one."""


def _structure_datetime(value: Any, _: type) -> dt.datetime:
    # TOML hands us datetime objects already; JSON and env give ISO strings.
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidValue(f"not an ISO-8601 timestamp: {value!r}") from None
    else:
        raise InvalidValue(f"expected an ISO-8601 timestamp string, got {type(value).__name__}")
    if parsed.tzinfo is None:
        raise InvalidValue(f"timestamp needs a UTC offset: {value!r}")
    return parsed


def _structure_date(value: Any, _: type) -> dt.date:
    # TOML and argparse (a flag's type) hand us dates already; env and JSON give text.
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return parse_date(value)
        except ValueError as exc:
            raise InvalidValue(str(exc)) from None
    raise InvalidValue(f"expected a date string YYYY-MM-DD, got {type(value).__name__}")


def _structure_bool(value: Any, _: type) -> bool:
    # bool("false") is True, so the default hook is wrong for env and config strings.
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise InvalidValue(f"expected a boolean (true/false), got {value!r}")


def _structure_int(value: Any, _: type) -> int:
    # int(2.7) silently truncates and int(True) is 1; accept only exact integers.
    if isinstance(value, bool):
        raise InvalidValue(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InvalidValue(f"expected an integer, got {value!r}")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, bool):
        raise InvalidValue(f"expected a number, got {value!r}")
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            raise InvalidValue(f"expected a number, got {value!r}") from None
    else:
        raise InvalidValue(f"expected a number, got {value!r}")
    if math.isnan(result):
        raise InvalidValue("expected a number, got NaN")
    return result


def _structure_str(value: Any, _: type) -> str:
    # The default hook is str(), which would turn a TOML table or a number into text.
    if isinstance(value, str):
        return value
    raise InvalidValue(f"expected a string, got {type(value).__name__} {value!r}")


def _structure_enum(value: Any, cls: type[enum.Enum]) -> enum.Enum:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in cls)
        raise InvalidValue(f"expected one of {choices}, got {value!r}") from None


def _enum_aware(hook: Any) -> Any:
    # A str- or int-based Enum dispatches to the str/int hook (singledispatch follows the MRO).
    def structure(value: Any, cls: type) -> Any:
        if isinstance(cls, type) and issubclass(cls, enum.Enum):
            return _structure_enum(value, cls)
        return hook(value, cls)

    return structure


def _unstructure_scalar(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)
    scalars: dict[type, Any] = {
        bool: _structure_bool,
        int: _structure_int,
        float: _structure_float,
        str: _structure_str,
        enum.Enum: _structure_enum,
    }
    for scalar, hook in scalars.items():
        converter.register_structure_hook(scalar, _enum_aware(hook))
        converter.register_unstructure_hook(scalar, _unstructure_scalar)
    converter.register_structure_hook(dt.datetime, _structure_datetime)
    converter.register_unstructure_hook(dt.datetime, dt.datetime.isoformat)
    converter.register_structure_hook(dt.date, _structure_date)
    # A str subclass: without its own hooks, the str ones would strip the type (and unredact).
    converter.register_structure_hook(
        SecretUrl, lambda value, _: SecretUrl(_structure_str(value, str))
    )
    converter.register_unstructure_hook(SecretUrl, lambda url: redact(url.reveal()))
    converter.register_unstructure_hook(dt.date, dt.date.isoformat)
    # Tuples unstructure to lists so the output is plain JSON data.
    converter.register_unstructure_hook_func(
        lambda t: t is tuple or getattr(t, "__origin__", None) is tuple,
        lambda value: [converter.unstructure(item) for item in value],
    )
    return converter


_converter = _make_converter()


def _describe(exc: BaseException, cls: type | None) -> str:
    if isinstance(exc, InvalidValue):
        return str(exc)
    if isinstance(exc, AttributeError) and "has no attribute" in str(exc):
        return "expected a table (mapping)"
    return format_exception(exc, cls)


def error_lines(exc: BaseException, cls: type | None, *, path: str = "$") -> list[str]:
    """Each problem in a structuring error as `<path>: <problem>`."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        raw = transform_error(exc, path, _describe)
    else:
        # transform_error would drop the target type for a top-level failure.
        raw = [f"{_describe(exc, cls)} @ {path}"]
    lines = []
    for item in raw:
        problem, _, where = item.rpartition(" @ ")
        lines.append(f"{where}: {problem}")
    return lines


def structure(data: Any, cls: type[T], *, source: str, path: str = "$") -> T:
    """Build cls from plain data; ConfigError like `config.toml @ $.x: expected a number`."""
    try:
        return _converter.structure(data, cls)
    except Exception as exc:  # cattrs raises many types; all mean "bad input"
        lines = error_lines(exc, cls, path=path)
        message = "; ".join(f"{source} @ {line}" for line in lines)
        raise ConfigError(message) from exc


def unstructure(obj: Any) -> Any:
    """Plain JSON-ready data (dicts, lists, scalars); dates and datetimes as ISO strings, enums
    by value, SecretUrls redacted."""
    return _converter.unstructure(obj)
