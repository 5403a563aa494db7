"""Peer: WORKLOAD.md's bronze -> silver in DuckDB SQL (read_text, JSON functions, ICU zones).

Faithful to the spec on everything the generator writes (the benchmark compares its output with
the job's, row by row); approximate on edges it never writes, hence "approx" in the table:
title case is DuckDB's upper/lower per character after a cased one (Python's str.title() uses
Unicode title-case mappings), wall times in a DST gap or fold follow ICU, JSON is yyjson's
(duplicate keys, numbers beyond double range), and .ndjson.gz bronze is not read.

Run: python -m peers.duckdb_peer STORE_DIR OUT_DIR   (prints the counts as JSON)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb

from peers import duckdb_sql as sql

AGENCIES = (
    "CREATE TABLE agencies AS SELECT * FROM read_csv($path, header = true, columns = "
    "{'agency_id': 'BIGINT', 'name': 'VARCHAR', 'state': 'VARCHAR', 'timezone': 'VARCHAR'})"
)


def transform(store: Path, out: Path) -> dict[str, int]:
    """Promote every bronze file under store/bronze/ into out/silver and out/deadletter."""
    con = duckdb.connect()  # in memory; threads = cores
    con.execute("SET TimeZone = 'UTC'")
    for macro in sql.MACROS.split(";"):
        con.execute(macro)
    con.execute(AGENCIES, {"path": str(store / "agencies.csv")})
    parameters = {"bronze": f"{store / 'bronze'}/", "paths": sql.PATHS}
    for stage in sql.STAGES:
        con.execute(stage, {k: v for k, v in parameters.items() if f"${k}" in stage})
    (out / "deadletter").mkdir(parents=True, exist_ok=True)
    con.execute(sql.SILVER.format(out=out))
    con.execute(sql.DEAD_LETTER.format(out=out))
    rows_in, dead, silver, duplicates = con.execute(sql.COUNTS).fetchone() or (0, 0, 0, 0)
    return {
        "rows_in": rows_in,
        "silver_rows": silver,
        "duplicates": duplicates,
        "dead_letter_rows": dead,
    }


if __name__ == "__main__":
    counts = transform(Path(sys.argv[1]), Path(sys.argv[2]))
    sys.stdout.write(json.dumps(counts) + "\n")
