"""The benchmark in quick mode (10k rows, local store, a backfill, the parse floor and the plain
peer): it must still run and check."""

from __future__ import annotations

from pathlib import Path

import jobs.cli  # noqa: F401 -- run as subprocesses: imported so Pants ships them
import peers.parse_floor
import peers.plain_orjson  # noqa: F401
from b2s.table import HEADER
from bronze_to_silver_bench import main


def _rows(report: Path) -> list[dict[str, str]]:
    lines = [line for line in report.read_text().splitlines() if line.startswith("| ")]
    cells = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]
    assert tuple(cells[0]) == HEADER
    return [dict(zip(HEADER, row, strict=True)) for row in cells[2:]]


def test_quick_mode_reports_the_job_the_backfill_and_the_plain_peer_ok_beside_the_parse_floor(
    tmp_path: Path,
) -> None:
    quick = ["--sizes", "10000", "--stores", "local", "--peers", "floor,plain"]
    quick += ["--agencies", "5", "--at-once", "2"]  # 5 job processes: seconds on a busy machine
    argv = [*quick, "--scratch", str(tmp_path), "--out", str(tmp_path / "out")]

    code = main(argv)

    (report,) = (tmp_path / "out").glob("*.md")
    rows = _rows(report)
    assert code == 0
    assert [row["implementation"] for row in rows] == [
        "job",
        "job (backfill --max-parallel 2)",
        "orjson parse only (floor)",
        "plain_orjson",
    ]
    checked = [row for row in rows if row["semantics"] != "floor"]
    assert all(row["invariant"] == "ok" for row in checked), rows
    assert [row["same output"] for row in rows] == ["ref", "yes", "-", "yes"]
    # CPU per row as a multiple of the floor's: the floor itself is 1, the plain peer more
    floors = [float(row["x floor CPU"]) for row in rows]
    assert floors[2] == 1.0
    assert floors[3] > 1.0
