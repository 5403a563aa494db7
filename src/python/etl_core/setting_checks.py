"""attrs validators for settings values; each failure is a FieldProblem naming the field."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import attrs

__all__ = ["FieldProblem", "at_least", "between", "greater_than", "not_blank", "one_of"]

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


class FieldProblem(ValueError):
    """A value outside what its field allows; load_settings names where the value came from."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _check(test: Callable[[Any], bool], problem: Callable[[Any], str]) -> Validator:
    # None is "unset" for every optional field: no check applies to it.
    def validate(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not test(value):
            raise FieldProblem(attribute.name, problem(value))

    return validate


def at_least(low: float) -> Validator:
    """value >= low."""
    return _check(lambda value: value >= low, lambda value: f"must be >= {low}, got {value}")


def greater_than(low: float) -> Validator:
    """value > low."""
    return _check(lambda value: value > low, lambda value: f"must be > {low}, got {value}")


def between(low: float, high: float) -> Validator:
    """low <= value <= high."""
    return _check(
        lambda value: low <= value <= high,
        lambda value: f"must be between {low:g} and {high:g}, got {value}",
    )


def one_of(choices: Collection[str]) -> Validator:
    """value in choices."""
    return _check(
        lambda value: value in choices,
        lambda value: f"must be one of {', '.join(choices)}, got {value!r}",
    )


def not_blank() -> Validator:
    """Text with something other than white space."""
    return _check(lambda value: bool(value.strip()), lambda _: "must not be empty")
