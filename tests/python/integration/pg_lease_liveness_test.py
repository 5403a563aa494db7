"""On a PostgreSQL history a lease is also a session advisory lock: a killed holder's session
ends with its process, so the next run takes the agency over at once (not after the 300 s TTL)
and the killed run is recorded as died. Real subprocesses against a real server."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from integration.cli_support import SRC, cli_async

LONG = ["--records", "400000", "--files", "4", "--agencies", "1"]
SHORT = ["--records", "50", "--files", "1", "--agencies", "1"]


def _argv(out: Path, history: str, sizes: list[str]) -> list[str]:
    return ["run", "generate", "--", *sizes, "--out", f"file://{out}", "--history", history,
            "--log-format", "json"]  # fmt: skip


def _start(cwd: Path, argv: list[str]) -> subprocess.Popen[bytes]:
    path = os.pathsep.join([str(SRC), *(p for p in sys.path if p)])  # as cli_support does
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", *argv], cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, "HOME": str(cwd)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def _running_run(dsn: str, schema: str, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 120
    conn = await asyncpg.connect(dsn)
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the holder ended before it was seen running"
            try:
                found = await conn.fetchval(
                    f'SELECT run_id FROM "{schema}".etl_runs WHERE status = $1', "running"
                )
            except asyncpg.UndefinedTableError:
                found = None
            if found:
                return str(found)
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    raise AssertionError("the run never showed as running")


async def test_a_killed_holder_frees_the_agency_at_once_and_is_recorded_as_died(
    tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    out, history = tmp_path / "out", f"{pg_dsn}?schema={pg_schema}"
    holder = _start(tmp_path, _argv(out, history, LONG))  # default lease TTL: 300 s
    try:
        holder_id = await _running_run(pg_dsn, pg_schema, holder)
        blocked = await cli_async(tmp_path, *_argv(out, history, SHORT))
    finally:
        holder.kill()
        holder.wait(timeout=60)

    assert blocked.returncode == 75, blocked.stderr[-2000:]
    message = blocked.stderr.strip().splitlines()[-1]
    assert f"run_id {holder_id} on host {socket.gethostname()} (pid {holder.pid})" in message
    assert "lease expires 20" in message

    # PostgreSQL ends the killed client's session (and its advisory lock) as soon as it sees the
    # connection close; allow it a few seconds of that, far below the 300 s TTL.
    deadline = time.monotonic() + 30
    while True:
        rerun = await cli_async(tmp_path, *_argv(out, history, SHORT))
        if rerun.returncode != 75 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    conn = await asyncpg.connect(pg_dsn)
    try:
        row = await conn.fetchrow(
            f'SELECT status, error, finished_at FROM "{pg_schema}".etl_runs WHERE run_id = $1',
            holder_id,
        )
    finally:
        await conn.close()
    assert row["status"] == "failed"
    assert row["error"].startswith(f"died: its process on host {socket.gethostname()}")
    assert "last heartbeat 20" in row["error"]
    assert row["finished_at"] is not None
