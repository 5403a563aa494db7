"""The incremental benchmark in --quick mode: it must still run, print its table and check."""

from __future__ import annotations

from pathlib import Path

import jobs.cli  # noqa: F401 -- run as subprocesses: imported so Pants ships them
import peers.dlt_delta_incremental
import peers.polars_delta_incremental  # noqa: F401
import pytest
from incr.lanes import DLT, JOB, POLARS
from incr.table import HEADER, parse_markdown
from incremental_bench import main


def test_quick_mode_prints_the_table_and_the_peers_match_the_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--quick", "--scratch", str(tmp_path), "--out", str(tmp_path / "out")])

    printed = capsys.readouterr().out
    (report,) = (tmp_path / "out").glob("incremental-*.md")
    assert report.read_text().strip() in printed
    assert "| " + " | ".join(HEADER) + " |" in printed
    rows = parse_markdown(report.read_text())
    scenarios = ["a) full build, 3 d", "b) +1 day", "c) nothing new"]
    scenarios += ["o1) newest day first", "o2) then the other 3 d"]
    local = [row for row in rows if row["store"] == "local"]
    assert [row["scenario"] for row in local] == [s for s in scenarios for _ in range(3)]
    assert [row["implementation"] for row in local] == [JOB, POLARS, DLT] * len(scenarios)
    s3 = [(row["scenario"], row["implementation"]) for row in rows if row["store"] == "s3"]
    assert s3 == [(s, impl) for s in ("a) full build, 2 d", "b) +1 day") for impl in (JOB, POLARS)]
    for row in rows:
        if row["implementation"] == POLARS:
            assert row["check"] == "exact", row
            assert row["x fastest peer"] != "-", row
        if row["implementation"] == DLT:  # the dlt venv may be impossible to install here
            assert row["check"] == "exact" or row["check"].startswith("not run: dlt venv"), row
    with capsys.disabled():  # the table in the test's output, for whoever reads it
        print(f"\n{report.read_text()}")
