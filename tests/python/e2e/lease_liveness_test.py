"""A dead run stops blocking its agency at once and is recorded as died; a live one names itself
to the run it blocks; a SIGTERM in a run's first moments is recorded and exits 75; killed local
writes leave no litter. Real `data-pipeline` subprocesses on a SQLite history and a local store.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2e.cli_support import cli, cli_env

# Long enough (seconds of work) that a run is still going when the test acts on it.
LONG = ["--records", "400000", "--files", "4", "--agencies", "1"]
SHORT = ["--records", "50", "--files", "1", "--agencies", "1"]


def _argv(out: Path, database: Path, sizes: list[str]) -> list[str]:
    return ["run", "generate", "--", *sizes, "--out", f"file://{out}",
            "--history", f"sqlite:///{database}", "--log-format", "json"]  # fmt: skip


def _start(tmp_path: Path, argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", *argv], cwd=tmp_path, env=cli_env(tmp_path),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _running_run(database: Path, process: subprocess.Popen[str]) -> str:
    """The run_id of the run process started, once its row says running (read-only polling)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        with contextlib.suppress(sqlite3.Error):
            uri = f"file:{database}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
                row = conn.execute("SELECT run_id FROM etl_runs WHERE status = 'running'")
                found = row.fetchone()
            if found:
                return str(found[0])
        time.sleep(0.02)
    raise AssertionError("the run never showed as running")


def _runs(tmp_path: Path, database: Path) -> dict[str, dict[str, object]]:
    result = cli(tmp_path, "runs", "--history", f"sqlite:///{database}", "--json")
    assert result.returncode == 0, result.stderr
    return {str(run["run_id"]): run for run in json.loads(result.stdout)}


def test_a_live_holder_is_named_and_a_killed_one_frees_the_lease_at_once_and_shows_died(
    tmp_path: Path,
) -> None:
    out, database = tmp_path / "out", tmp_path / "h.sqlite3"
    holder = _start(tmp_path, _argv(out, database, LONG))  # default lease TTL: 300 s
    try:
        holder_id = _running_run(database, holder)
        blocked = cli(tmp_path, *_argv(out, database, SHORT))
    finally:
        holder.kill()
        holder.wait(timeout=60)

    assert blocked.returncode == 75, blocked.stderr[-2000:]
    message = blocked.stderr.strip().splitlines()[-1]
    assert f"run_id {holder_id} on host {socket.gethostname()} (pid {holder.pid})" in message
    assert "lease expires 20" in message
    assert "freed as soon as that process exits" in message

    # Killed: its flock went with it, so the next run takes over now, not after the TTL.
    rerun = cli(tmp_path, *_argv(out, database, SHORT))
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    runs = _runs(tmp_path, database)
    dead = runs[holder_id]
    assert (dead["status"], dead["effective_status"]) == ("failed", "failed")
    assert str(dead["error"]).startswith(f"died: its process on host {socket.gethostname()}")
    assert "last heartbeat 20" in str(dead["error"])
    assert dead["finished_at"] is not None


def test_runs_shows_a_killed_run_as_died_without_waiting_for_a_rerun(tmp_path: Path) -> None:
    out, database = tmp_path / "out", tmp_path / "h.sqlite3"
    holder = _start(tmp_path, _argv(out, database, LONG))
    try:
        holder_id = _running_run(database, holder)
    finally:
        holder.kill()
        holder.wait(timeout=60)

    dead = _runs(tmp_path, database)[holder_id]

    assert dead["status"] == "failed"
    assert str(dead["error"]).startswith("died: ")


def _catches_sigterm(pid: int) -> bool:
    with contextlib.suppress(FileNotFoundError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/<pid>/status")
@pytest.mark.parametrize("after", [0.0, 0.1, 0.2, 0.3])
def test_a_sigterm_in_the_first_moments_is_recorded_and_exits_75(
    tmp_path: Path, after: float
) -> None:
    out, database = tmp_path / "out", tmp_path / "h.sqlite3"
    started = time.monotonic()
    process = _start(tmp_path, _argv(out, database, LONG))
    # `after` seconds into the process's life (loading the job, opening the history, taking
    # the lease...), but never before it has a handler: before that, nothing in the process
    # runs yet that could record anything (the interpreter is still starting).
    deadline = started + 60
    while not _catches_sigterm(process.pid):
        assert process.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.001)
    time.sleep(max(0.0, started + after - time.monotonic()))
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 75, stderr[-2000:]
    [run] = _runs(tmp_path, database).values()
    assert (run["status"], run["error"]) == ("failed", "Terminated: terminated by SIGTERM")


def test_temp_files_of_a_killed_local_write_are_gone_after_the_next_run(tmp_path: Path) -> None:
    out, database = tmp_path / "out", tmp_path / "h.sqlite3"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from etl_core.adapters.local_object_store import LocalObjectStore, _write_temp\n"
        "root = Path(sys.argv[1])\n"
        "print(_write_temp(root / 'bronze' / 'agency_id=1', b'x' * (1 << 20), True), flush=True)\n"
        "time.sleep(600)\n"
    )  # a put killed after writing its temp file, before the rename
    with subprocess.Popen(
        [sys.executable, "-c", script, str(out)], cwd=tmp_path, env=cli_env(tmp_path),
        stdout=subprocess.PIPE, text=True,
    ) as writer:  # fmt: skip
        assert writer.stdout is not None
        litter = Path(writer.stdout.readline().strip())
        writer.kill()
    assert litter.exists()

    result = cli(tmp_path, *_argv(out, database, SHORT))

    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in out.rglob(".etl-tmp-*")) == []
