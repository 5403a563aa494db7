"""Tests for logging: JSON lines with run context, readable TTY lines, the progress line."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from etl_core import logs, telemetry
from etl_core.errors import ConfigError
from etl_core.model import Counts


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_lines_carry_the_run_context_and_extra_fields() -> None:
    stream = io.StringIO()
    logs.configure_logging(job="generate", log_format="auto", stream=stream)
    attributes = telemetry.run_attributes(run_id="r1", job="generate", agency_id=7)
    with telemetry.run_scope(attributes):
        logging.getLogger("jobs.generate").info("wrote %d files", 3, extra={"bytes": 10})
    [line] = _lines(stream)
    entry = json.loads(line)
    assert entry["message"] == "wrote 3 files"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "jobs.generate"
    assert (entry["job"], entry["run_id"], entry["agency_id"]) == ("generate", "r1", 7)
    assert set(entry) >= {"timestamp", "trace_id", "span_id"}
    assert entry["timestamp"].endswith("Z")
    assert entry["bytes"] == 10


def test_json_lines_include_the_traceback() -> None:
    stream = io.StringIO()
    logs.configure_logging(job="j", log_format="json", stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed")
    entry = json.loads(_lines(stream)[0])
    assert "ValueError: boom" in entry["exception"]


def test_unserialisable_extras_are_stringified() -> None:
    stream = io.StringIO()
    logs.configure_logging(job="j", log_format="json", stream=stream)
    logging.getLogger("x").info("m", extra={"obj": object()})
    assert json.loads(_lines(stream)[0])["obj"].startswith("<object object")


def test_a_tty_gets_readable_lines() -> None:
    stream = _Tty()
    logs.configure_logging(job="j", log_format="auto", stream=stream)
    logging.getLogger("x").warning("disk %s", "low", extra={"free": "1G"})
    [line] = _lines(stream)
    assert not line.startswith("{")
    assert "WARNING" in line
    assert line.endswith("disk low  free=1G")


def test_json_can_be_forced_on_a_tty() -> None:
    stream = _Tty()
    logs.configure_logging(job="j", log_format="json", stream=stream)
    logging.getLogger("x").info("m")
    assert json.loads(_lines(stream)[0])["message"] == "m"


def test_reconfiguring_replaces_the_previous_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure_logging(job="j", log_format="json", stream=first)
    logs.configure_logging(job="j", log_format="json", stream=second)
    logging.getLogger("x").info("once")
    assert (first.getvalue(), len(_lines(second))) == ("", 1)


def _screen(written: str) -> list[str]:
    """What a terminal shows after `written`: the escape codes a one-line live display uses
    (carriage return, erase line, cursor up, show/hide cursor) applied; the cursor's line last."""
    lines, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[\??[0-9;]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", written):
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            lines += [""] * (row + 1 - len(lines))
        elif token in ("\x1b[2K", "\x1b[K"):  # whole line / to its end: the cursor is at 0 here
            lines[row] = lines[row][:col]
        elif token.startswith("\x1b[") and token.endswith("A"):
            row -= int(token[2:-1] or 1)
        elif not token.startswith("\x1b"):
            lines[row] = lines[row][:col] + token + lines[row][col + len(token) :]
            col += len(token)
    return lines


def test_progress_line_is_redrawn_around_log_records_on_a_tty() -> None:
    stream = _Tty()
    logs.configure_logging(job="j", log_format="text", stream=stream)
    progress = "10/100 files, 12,345 rows, 6.7 MB read so far"  # longer than the record line
    logs.show_progress(progress)
    assert _screen(stream.getvalue()) == [progress]
    logging.getLogger("x").info("hello")
    written = stream.getvalue()
    # The progress line was erased before the record (no leftover of it) and redrawn below it.
    [record, redrawn] = _screen(written)
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO    hello", record), record
    assert redrawn == progress
    logs.end_progress()
    assert stream.getvalue().startswith(written)
    assert _screen(stream.getvalue())[1:] == [progress, ""]  # ended by a newline


def test_progress_is_logged_sparingly_without_a_tty() -> None:
    stream = io.StringIO()
    logs.configure_logging(job="j", log_format="json", stream=stream)
    logs.show_progress("1/3")
    logs.show_progress("2/3")  # within the interval: not logged
    logs.end_progress()
    messages = [json.loads(line)["message"] for line in _lines(stream)]
    assert messages == ["1/3"]


def test_level_comes_from_etl_log_level() -> None:
    assert logs.level_from_env({}) == logging.INFO
    assert logs.level_from_env({"ETL_LOG_LEVEL": "debug"}) == logging.DEBUG
    with pytest.raises(ConfigError, match="ETL_LOG_LEVEL: unknown level 'LOUD'"):
        logs.level_from_env({"ETL_LOG_LEVEL": "loud"})


def test_summary_lists_counts_and_set_fields(capsys: pytest.CaptureFixture[str]) -> None:
    logs.print_summary(
        "job run r succeeded", Counts(rows_in=1200, rows_out=1200), {"a": 1, "b": None}
    )
    assert capsys.readouterr().out.splitlines() == [
        "job run r succeeded",
        "  rows: in 1,200  out 1,200  duplicate 0  dead-letter 0",
        "  bytes: in 0  out 0",
        "  a: 1",
    ]


def test_summary_shows_what_a_run_did_to_silver(capsys: pytest.CaptureFixture[str]) -> None:
    counts = Counts(rows_in=5, rows_out=5, rows_inserted=3_000, rows_updated=1)
    logs.print_summary("bronze_to_silver run r succeeded", counts, {})
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  rows: in 5  out 5  duplicate 0  dead-letter 0",
        "  bytes: in 0  out 0",
        "  silver: inserted 3,000  updated 1",
    ]


def test_json_logging_with_progress_never_loads_rich() -> None:
    script = (
        "import io, logging, sys\n"
        "from etl_core import logs\n"
        "logs.configure_logging(job='j', log_format='json', stream=io.StringIO())\n"
        "logs.show_progress('1/3')\n"
        "logs.end_progress()\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'rich'))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "[]"
