"""Read an implementation's Delta tables back with deltalake and compare them with the reference.

Silver: the 16 WORKLOAD.md columns plus the lineage `_source`/`_line` (which version survived),
joined on (agency_id, record_id); a mismatch is a key missing on either side, a key held twice,
or a row differing in any compared column. Dead letters: the multisets of (reason, source, line)
(the rows' identity; their `raw` follows from it), a mismatch per row in one and not the other.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import polars as pl
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from incr.reference import (
    DEAD_COLUMNS,
    DEAD_SCHEMA,
    KEY,
    SILVER_COLUMNS,
    SILVER_SCHEMA,
    Expected,
)


@attrs.frozen
class Check:
    silver_rows: int = 0
    silver_mismatches: int = 0
    dead_mismatches: int = 0
    problem: str = ""  # a table missing or unreadable, columns missing

    @property
    def exact(self) -> bool:
        return not self.problem and self.silver_mismatches == 0 and self.dead_mismatches == 0

    def text(self) -> str:
        if self.problem:
            return self.problem
        if self.exact:
            return "exact"
        total = self.silver_mismatches + self.dead_mismatches
        silver, dead = self.silver_mismatches, self.dead_mismatches
        return f"{total} mismatches (silver {silver}, dead letters {dead})"


def _read(uri: str, options: Mapping[str, str], schema: Mapping[str, object]) -> pl.DataFrame:
    """The table's columns of schema, cast to the reference's types; KeyError names a column
    the table lacks."""
    table = DeltaTable(uri, storage_options=dict(options)).to_pyarrow_table()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    missing = [name for name in schema if name not in frame.columns]
    if missing:
        raise KeyError(", ".join(missing))
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())  # type: ignore[arg-type]


def check_tables(
    silver_uri: str, dead_uri: str, expected: Expected, options: Mapping[str, str] | None = None
) -> Check:
    options = options or {}
    try:
        silver = _read(silver_uri, options, SILVER_SCHEMA)
    except TableNotFoundError:
        return Check(problem=f"no Delta table at {silver_uri}")
    except KeyError as missing:
        return Check(problem=f"silver lacks columns {missing}")
    try:
        dead = _read(dead_uri, options, DEAD_SCHEMA)
    except TableNotFoundError:
        dead = pl.DataFrame(schema=DEAD_SCHEMA)  # a run with no dead letters may write none
    except KeyError as missing:
        return Check(problem=f"dead letters lack columns {missing}")
    return Check(
        silver_rows=silver.height,
        silver_mismatches=silver_mismatches(silver, expected.silver),
        dead_mismatches=dead_mismatches(dead, expected.dead),
    )


def silver_mismatches(have: pl.DataFrame, want: pl.DataFrame) -> int:
    repeated = have.height - have.select(KEY).n_unique()
    joined = want.join(have.unique(KEY), on=KEY, how="full", suffix="_have", coalesce=True)
    in_want = pl.col("_line").is_not_null()
    in_have = pl.col("_line_have").is_not_null()
    values = [c for c in SILVER_COLUMNS if c not in KEY]
    differs = pl.any_horizontal(~pl.col(c).eq_missing(pl.col(f"{c}_have")) for c in values)
    bad = joined.filter(~in_want | ~in_have | differs).height
    return repeated + bad


def dead_mismatches(have: pl.DataFrame, want: pl.DataFrame) -> int:
    counted_have = have.group_by(DEAD_COLUMNS).len("have")
    counted_want = want.group_by(DEAD_COLUMNS).len("want")
    joined = counted_want.join(counted_have, on=DEAD_COLUMNS, how="full", coalesce=True)
    want_n, have_n = (pl.col(c).cast(pl.Int64).fill_null(0) for c in ("want", "have"))
    difference = (want_n - have_n).abs()
    return int(joined.select(difference.sum()).item() or 0)
