"""Validated, quoted SQL identifiers for table/column/schema names that come from configuration."""

from __future__ import annotations

import re

from etl_core.errors import ConfigError

# Deliberately narrower than PostgreSQL allows: no quotes, dots, spaces or non-ASCII, and at most
# 63 bytes (NAMEDATALEN - 1), so a configured name can never change the shape of a statement.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def quote_identifier(name: str, what: str = "identifier") -> str:
    """`name` double-quoted for SQL after checking it is a plain identifier; ConfigError if not."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ConfigError(f"{what} {name!r} is not a plain SQL identifier")
    return f'"{name}"'
