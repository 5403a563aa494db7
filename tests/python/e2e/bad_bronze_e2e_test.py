"""bronze_to_silver through the CLI over bad bronze: a broken gzip, a key naming no calendar date,
lines that are not UTF-8, and a dead-letter table of the release before raw_bytes. None blocks
the agency; every readable line reaches silver or a dead letter; the fixed file is read again."""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import json
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from etl_core.model import PartitionRecord, RunRecord
from etl_core.testing.history_readback import recorded
from etl_core.testing.table_rows import OLD_DEAD_LETTER_SCHEMA

from e2e.cli_support import cli, generate
from e2e.reference_transform import reference_transform
from e2e.store_views import dead_letter_rows, silver_rows, summary

GENERATE = ["--records", "300", "--files", "4", "--agencies", "2", "--seed", "5", "--gzip"]
BROKEN = "bronze/agency_id=1/dt=2024-01-10/part-0.ndjson.gz"
BAD_DATE = "bronze/agency_id=1/dt=2024-02-30/part-0.ndjson"
NOT_UTF8 = "bronze/agency_id=1/dt=2024-01-11/part-0.ndjson"
EXACT = b'{"record_id": "A001-\xff\xfe", "agency_id": 1, "status": "op\xe9n"}'
OLD_ROW = {
    "agency_id": 2, "dt": dt.date(2024, 1, 8), "reason": "invalid_json",
    "source": "agency_id=2/dt=2024-01-08/part-0.ndjson.gz", "line": 7, "raw": "{",
    "detail": "agency_id=2/dt=2024-01-08/part-0.ndjson.gz:7: invalid_json", "run_id": "old-run",
}  # fmt: skip


def _record(record_id: str, day: int, **changes: object) -> bytes:
    record = {
        "record_id": record_id, "agency_id": 1, "record_type": " Incident", "status": "open",
        "occurred_at": int(dt.datetime(2024, 1, day, 18, tzinfo=dt.UTC).timestamp()),
        "updated_at": f"2024-01-{day:02d}T20:00:00Z", "location": {"lat": "34.1", "lon": "-118.2"},
        "officer": {"badge": "0045", "name": "o'brien, anne"}, "amount": "1,234.50", "tags": [],
    }  # fmt: skip
    record.update(changes)
    return json.dumps(record).encode()


def _shown(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(row["reason"], row["source"], row["raw"]) for row in rows]


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bronze = root / "bronze-store"
        self.store = root / "store"
        self.history = f"sqlite:///{root}/history.sqlite3"
        self.fixed = gzip.compress(
            b"\n".join([_record("A001-90000001", 10), _record("A001-90000002", 10), b"{cut"]),
            mtime=0,
        )
        self.first: subprocess.CompletedProcess[str] | None = None
        self.second: subprocess.CompletedProcess[str] | None = None

    def run(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return cli(
            self.root, "run", "bronze_to_silver", "--", "--agency-id", "1",
            "--bronze", f"file://{self.bronze}", "--store", f"file://{self.store}",
            "--history", self.history, "--log-format", "json", *extra,
        )  # fmt: skip

    def put(self, key: str, body: bytes) -> None:
        path = self.bronze / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)

    def reference(self, *skip: str) -> Any:
        bronze = {
            path.relative_to(self.bronze).as_posix(): path.read_bytes()
            for path in (self.bronze / "bronze" / "agency_id=1").rglob("*.ndjson*")
        }
        for key in skip:
            del bronze[key]
        return reference_transform(bronze, (self.bronze / "agencies.csv").read_bytes())

    def history_rows(self) -> tuple[list[RunRecord], list[PartitionRecord]]:
        found = recorded(self.history, job="bronze_to_silver", limit=100)
        return found.runs, found.all_partitions()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    world = World(tmp_path_factory.mktemp("bad-bronze"))
    generate(world.root, f"file://{world.bronze}", *GENERATE, history=world.history)
    # The dead-letter table as the release before raw_bytes left it.
    old = pa.Table.from_pylist([OLD_ROW], schema=OLD_DEAD_LETTER_SCHEMA)
    write_deltalake(str(world.store / "deadletter"), old, partition_by=["agency_id", "dt"])
    world.put(BROKEN, world.fixed[:-12])  # truncated: "EOFError: Compressed file ended..."
    world.put(BAD_DATE, _record("A001-80000001", 9) + b"\n")
    world.put(NOT_UTF8, b"\n".join([_record("A001-70000001", 11), EXACT, b"\xff\xfe{", b""]))
    world.first = world.run("--workers", "2")  # the worker pool's path: etag and the dead letter
    assert world.first.returncode == 0, (world.first.stdout, world.first.stderr[-3000:])
    return world


def test_a_broken_gzip_and_a_key_with_an_impossible_date_do_not_block_the_agency(
    world: World,
) -> None:
    assert world.first is not None
    fields = summary(world.first)
    assert fields["outcome"].startswith("folded in 4 bronze files as fold 1")
    assert fields["bronze files skipped"] == (
        f"1 ({BAD_DATE}: dt=2024-02-30 is not a calendar date)"
    )
    assert "unreadable_file 1" in fields["dead-letter reasons"]
    logged = [json.loads(line) for line in world.first.stderr.splitlines() if line.startswith("{")]
    messages = [entry["message"] for entry in logged if entry["level"] == "WARNING"]
    assert any(BAD_DATE in m and "skipped" in m for m in messages), messages
    assert any(BROKEN[7:] in m and "EOFError" in m for m in messages), messages


def test_an_unreadable_file_is_one_dead_letter_naming_its_key_etag_and_error(
    world: World,
) -> None:
    [row] = [r for r in dead_letter_rows(world.store, 1) if r["reason"] == "unreadable_file"]

    size = len(world.fixed) - 12
    assert (row["source"], row["dt"], row["line"]) == (BROKEN[7:], dt.date(2024, 1, 10), None)
    assert row["detail"].startswith(f"{BROKEN[7:]}: unreadable_file (etag ")
    assert f", {size} bytes): EOFError: Compressed file ended" in row["detail"]


def test_every_readable_line_reaches_silver_or_a_dead_letter_and_the_counts_balance(
    world: World,
) -> None:
    reference = world.reference(BROKEN, BAD_DATE)
    silver = silver_rows(world.store, 1)
    dead = dead_letter_rows(world.store, 1)

    assert {row["record_id"]: row for row in silver} == reference.silver
    expected = collections.Counter(_shown(reference.dead_letters))
    expected[("unreadable_file", BROKEN[7:], "")] += 1
    assert collections.Counter(_shown(dead)) == expected
    assert world.first is not None
    runs, ledger = world.history_rows()
    first = next(run for run in runs if run.run_id == summary(world.first)["run_id"])
    counts = first.counts
    assert counts.rows_in == reference.rows_in + 1  # the unreadable file counts as one row
    assert counts.rows_dead_letter == len(reference.dead_letters) + 1 == len(dead)
    assert counts.rows_in == counts.rows_out + counts.rows_duplicate + counts.rows_dead_letter
    assert all(p.counts.balanced for p in ledger if p.run_id == first.run_id)


def test_a_line_that_is_not_utf8_keeps_its_exact_bytes_and_every_row_its_line(
    world: World,
) -> None:
    rows = dead_letter_rows(world.store, 1)

    for row in rows:
        if row["reason"] == "unreadable_file":
            continue
        original = (world.bronze / "bronze" / row["source"]).read_bytes()
        if row["source"].endswith(".gz"):
            original = gzip.decompress(original)
        line = original.split(b"\n")[row["line"] - 1]
        assert (row["raw_bytes"] or row["raw"].encode()) == line
        assert row["detail"].startswith(f"{row['source']}:{row['line']}: {row['reason']}")
    exact = {row["raw_bytes"]: row["line"] for row in rows if row["raw_bytes"] is not None}
    assert exact == {EXACT: 2, b"\xff\xfe{": 3}


def test_the_dead_letter_table_of_the_release_before_raw_bytes_gained_the_column(
    world: World,
) -> None:
    table = DeltaTable(str(world.store / "deadletter"))

    assert "raw_bytes" in [field.name for field in table.schema().fields]
    assert dead_letter_rows(world.store, 2) == [{**OLD_ROW, "raw_bytes": None}]


def test_the_fixed_file_is_read_again_and_its_dead_letter_goes(world: World) -> None:
    world.put(BROKEN, world.fixed)

    second = world.run()

    assert second.returncode == 0, (second.stdout, second.stderr[-3000:])
    assert summary(second)["outcome"].startswith("rebuilt 4 bronze files as fold 2")
    reference = world.reference(BAD_DATE)
    assert {row["record_id"]: row for row in silver_rows(world.store, 1)} == reference.silver
    assert {"A001-90000001", "A001-90000002"} <= reference.silver.keys()
    dead = dead_letter_rows(world.store, 1)
    assert [r for r in dead if r["reason"] == "unreadable_file"] == []
    assert len(dead) == len(reference.dead_letters)
    assert summary(world.run())["outcome"].startswith("up to date")
