"""Check that an object implements a port: every method with the port's signature and flavour.

`isinstance` against a runtime-checkable Protocol checks only that the names exist. This checks
what a caller relies on: each method takes the port's parameters (names, kinds, defaults) and is
awaited, iterated with `async for` or called plainly as the port declares; properties hold an
object that implements the port they are typed as.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

__all__ = ["assert_implements", "port_problems"]

_PROTOCOL_BASES = frozenset({"Protocol", "Generic", "object"})


def _members(port: type) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for klass in reversed(port.__mro__):
        if klass.__name__ in _PROTOCOL_BASES or not getattr(klass, "_is_protocol", False):
            continue
        members.update({k: v for k, v in vars(klass).items() if not k.startswith("_")})
    return members


def _flavour(function: Any) -> str:
    if inspect.iscoroutinefunction(function):
        return "async def"
    if inspect.isasyncgenfunction(function):
        return "async generator"
    return "def"


def _parameters(function: Any) -> list[inspect.Parameter]:
    return list(inspect.signature(function).parameters.values())[1:]  # without self


def _signature_problems(where: str, declared: Any, actual: Any) -> list[str]:
    problems = []
    want, have = _flavour(declared), _flavour(actual)
    # A port method declared `def ... -> AsyncIterator` may be an async generator or a plain
    # function returning an async iterator; an `async def` one must be awaitable.
    if want != have and not (want == "def" and have == "async generator"):
        problems.append(f"{where}: is `{have}`, the port declares `{want}`")
    ordered = _parameters(actual)
    position = {p.name: index for index, p in enumerate(ordered)}
    theirs = {p.name: p for p in ordered}
    variadic = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in ordered)
    for index, param in enumerate(_parameters(declared)):
        got = theirs.pop(param.name, None)
        if got is None:
            if not variadic:
                problems.append(f"{where}: has no parameter {param.name!r}")
            continue
        if got.kind != param.kind:
            problems.append(f"{where}: parameter {param.name!r} is {got.kind}, not {param.kind}")
        elif param.kind is param.POSITIONAL_OR_KEYWORD and position[param.name] != index:
            problems.append(f"{where}: parameter {param.name!r} is not at position {index + 1}")
        if param.default is not param.empty and got.default != param.default:
            problems.append(
                f"{where}: parameter {param.name!r} defaults to {got.default!r}, "
                f"the port's to {param.default!r}"
            )
    for extra in theirs.values():
        optional = extra.kind in (extra.VAR_POSITIONAL, extra.VAR_KEYWORD)
        if extra.default is extra.empty and not optional:
            problems.append(f"{where}: extra parameter {extra.name!r} has no default")
    return problems


def port_problems(obj: object, port: type) -> list[str]:
    """What keeps obj from implementing port, one message each; empty if nothing does."""
    problems: list[str] = []
    kind = type(obj).__name__
    for name, declared in _members(port).items():
        where = f"{kind}.{name}"
        if isinstance(declared, property):
            if not hasattr(obj, name):
                problems.append(f"{where}: missing (the port's property)")
                continue
            wanted = typing.get_type_hints(declared.fget).get("return")
            if isinstance(wanted, type) and getattr(wanted, "_is_protocol", False):
                problems.extend(port_problems(getattr(obj, name), wanted))
            continue
        actual = inspect.getattr_static(type(obj), name, None)
        if actual is None:
            problems.append(f"{where}: missing")
        elif not inspect.isfunction(actual):
            problems.append(f"{where}: is {type(actual).__name__}, not a method")
        else:
            problems.extend(_signature_problems(where, declared, actual))
    return problems


def assert_implements(obj: object, port: type) -> None:
    """Fail, listing every difference, unless obj implements port (see the module docstring)."""
    problems = port_problems(obj, port)
    listing = "\n".join(problems)
    assert not problems, f"{type(obj).__name__} does not implement {port.__name__}:\n{listing}"
