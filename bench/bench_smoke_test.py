"""The benchmark in quick mode (10k rows, local store, a backfill, the plain peer): it must still
run and check."""

from __future__ import annotations

from pathlib import Path

import jobs.cli  # noqa: F401 -- run as subprocesses: imported so Pants ships them
import peers.plain_orjson  # noqa: F401
from b2s.table import HEADER
from bronze_to_silver_bench import main


def _rows(report: Path) -> list[dict[str, str]]:
    lines = [line for line in report.read_text().splitlines() if line.startswith("| ")]
    cells = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]
    assert tuple(cells[0]) == HEADER
    return [dict(zip(HEADER, row, strict=True)) for row in cells[2:]]


def test_quick_mode_reports_the_invariant_ok_for_the_job_the_backfill_and_the_plain_peer(
    tmp_path: Path,
) -> None:
    quick = ["--sizes", "10000", "--stores", "local", "--peers", "plain"]
    quick += ["--agencies", "5", "--at-once", "2"]  # 5 job processes: seconds on a busy machine
    argv = [*quick, "--scratch", str(tmp_path), "--out", str(tmp_path / "out")]

    code = main(argv)

    (report,) = (tmp_path / "out").glob("*.md")
    rows = _rows(report)
    assert code == 0
    assert [row["implementation"] for row in rows] == [
        "job",
        "job (backfill --max-parallel 2)",
        "plain_orjson",
    ]
    assert all(row["invariant"] == "ok" for row in rows), rows
    assert [row["same output"] for row in rows] == ["ref", "yes", "yes"]
