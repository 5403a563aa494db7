"""PgRecordSource: one agency's rows from a configured PostgreSQL table, by keyset pagination."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any

import asyncpg
import attrs

from etl_core.adapters.pg_identifiers import quote_identifier
from etl_core.errors import SourceError
from etl_core.model import SourceBatch
from etl_core.urls import redact

_CHECKPOINT = "_etl_checkpoint_"  # extra output column: the row's key as text
_JSON_TYPES = frozenset({"json", "jsonb"})


def _names(names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(names, str):  # a lone "id" would otherwise become ("i", "d")
        return (names,)
    return tuple(names)


@attrs.frozen
class PgSourceTable:
    """Where an agency's rows live. Names are validated and quoted; values are always bound.

    `key_column` orders the rows and must be unique within an agency; an index on
    (agency_column, key_column) keeps every batch an index range scan. Empty `columns` = all.
    """

    table: str
    key_column: str
    agency_column: str = "agency_id"
    columns: tuple[str, ...] = attrs.field(default=(), converter=_names)
    schema: str = "public"

    def __attrs_post_init__(self) -> None:
        self.relation  # noqa: B018 - validates every name now, at configuration time
        for column in (self.key_column, self.agency_column, *self.columns):
            quote_identifier(column, "column")

    @property
    def relation(self) -> str:
        """The quoted schema-qualified table name."""
        return f"{quote_identifier(self.schema, 'schema')}.{quote_identifier(self.table, 'table')}"


@attrs.define
class PgRecordSource:
    """RecordSource over a table; checkpoint = the last key of a batch, as PostgreSQL text.

    Each batch is its own short query (`WHERE key > checkpoint ORDER BY key LIMIT n`), so memory
    is bounded by batch_size, no transaction stays open between batches, and resuming costs one
    index seek. Values become JSON-able: timestamps ISO-8601, numerics and UUIDs strings, bytes
    base64, json/jsonb parsed.
    """

    pool: Any = attrs.field(repr=False)  # asyncpg.Pool
    table: PgSourceTable
    batch_size: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    _key_type: str | None = attrs.field(init=False, default=None, repr=False)

    async def batches(
        self, agency_id: int, checkpoint: str | None = None
    ) -> AsyncIterator[SourceBatch]:
        """Batches of the agency's rows after checkpoint, in key order. Raises SourceError."""
        first, after = await self._statements()
        last = checkpoint
        while True:
            with self._translated(agency_id, last):
                async with self.pool.acquire() as conn:
                    statement = await conn.prepare(first if last is None else after)
                    args = (
                        (agency_id, self.batch_size)
                        if last is None
                        else (agency_id, self.batch_size, last)
                    )
                    rows = await statement.fetch(*args)
                    json_columns = {
                        a.name for a in statement.get_attributes() if a.type.name in _JSON_TYPES
                    }
            if not rows:
                return
            last = rows[-1][_CHECKPOINT]
            yield SourceBatch(
                records=tuple(_record(row, json_columns) for row in rows), checkpoint=last
            )
            if len(rows) < self.batch_size:
                return

    async def _statements(self) -> tuple[str, str]:
        t = self.table
        key = quote_identifier(t.key_column)
        if self._key_type is None:
            self._key_type = await self._lookup_key_type()
        selected = ", ".join(quote_identifier(c) for c in t.columns) if t.columns else "*"
        base = (
            f"SELECT {selected}, {key}::text AS {_CHECKPOINT} FROM {t.relation}"
            f" WHERE {quote_identifier(t.agency_column)} = $1"
        )
        order = f" ORDER BY {key} LIMIT $2"
        # The checkpoint is cast to the key's own type, so any key type orders and resumes alike.
        return base + order, f"{base} AND {key} > CAST($3::text AS {self._key_type}){order}"

    async def _lookup_key_type(self) -> str:
        t = self.table
        sql = (
            "SELECT to_regclass($1) IS NOT NULL AS found, ("
            " SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
            " WHERE a.attrelid = to_regclass($1) AND a.attname = $2"
            " AND a.attnum > 0 AND NOT a.attisdropped) AS key_type"
        )
        with self._translated(None, None):
            row = await self.pool.fetchrow(sql, t.relation, t.key_column)
        if not row["found"]:
            raise SourceError(f"source table {t.schema}.{t.table} does not exist")
        if row["key_type"] is None:
            raise SourceError(f"source table {t.schema}.{t.table} has no column {t.key_column!r}")
        return str(row["key_type"])  # from the catalog (format_type quotes as needed), not config

    @contextlib.contextmanager
    def _translated(self, agency_id: int | None, checkpoint: str | None) -> Iterator[None]:
        try:
            yield
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            where = f"source {self.table.schema}.{self.table.table}"
            if agency_id is not None:
                where += f" agency {agency_id} after checkpoint {checkpoint!r}"
            raise SourceError(f"{where}: {type(exc).__name__}: {exc}") from exc


@contextlib.asynccontextmanager
async def open_pg_record_source(
    dsn: str, table: PgSourceTable, *, batch_size: int = 1000, max_size: int = 2
) -> AsyncIterator[PgRecordSource]:
    """A PgRecordSource on its own small asyncpg pool, closed on exit."""
    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, timeout=10)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        raise SourceError(f"cannot connect to record source {redact(dsn)}: {exc}") from None
    try:
        yield PgRecordSource(pool, table, batch_size=batch_size)
    finally:
        await pool.close()


def _record(row: Mapping[str, Any], json_columns: set[str]) -> dict[str, Any]:
    return {
        name: json.loads(value)
        if name in json_columns and isinstance(value, str)
        else _plain(value)
        for name, value in row.items()
        if name != _CHECKPOINT
    }


def _plain(value: Any) -> Any:
    """A JSON-able rendering of a value asyncpg decoded."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [_plain(v) for v in value]
    return str(value)
