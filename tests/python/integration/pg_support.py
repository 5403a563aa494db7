"""Test support for PostgreSQL: find a server (env DSN, local default, or a throwaway cluster)."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

import asyncpg

ENV_DSN = "ETL_TEST_PG_DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


async def _reachable(dsn: str) -> bool:
    try:
        connection = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb refuses to run as root; run the server tools as the postgres OS user then.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[str]:
    """initdb + pg_ctl in a temp dir on a free loopback port; yields its DSN, removes it after."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates:
        raise RuntimeError(
            f"No PostgreSQL for the integration tests: ${ENV_DSN} is unset, {DEFAULT_DSN} is not "
            "reachable, and no initdb was found under /usr/lib/postgresql/*/bin. Start a server "
            f"or set ${ENV_DSN}=postgresql://user@host:port/db."
        )
    bin_dir = os.path.dirname(candidates[0])
    root = tempfile.mkdtemp(prefix="etl-pg-")
    data, port = os.path.join(root, "data"), _free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    try:
        _start(bin_dir, data, root, port)
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                _as_postgres([f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "stop"]),
                check=False,
                capture_output=True,
                timeout=60,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _start(bin_dir: str, data: str, root: str, port: int) -> None:
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
    steps = [
        [f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "-A", "trust"],
        [f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-w", "-l", f"{root}/log", "start"],
    ]
    for step in steps:
        try:
            subprocess.run(_as_postgres(step), check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(
                f"Could not start a throwaway PostgreSQL ({step[0]}): "
                f"{exc.stderr.decode(errors='replace')[-2000:]}"
            ) from exc


@contextlib.contextmanager
def postgres_dsn() -> Iterator[str]:
    """$ETL_TEST_PG_DSN, else the local default if reachable, else a throwaway cluster."""
    explicit = os.environ.get(ENV_DSN)
    if explicit:
        if not asyncio.run(_reachable(explicit)):
            raise RuntimeError(f"${ENV_DSN} is set but that PostgreSQL is not reachable")
        yield explicit
    elif asyncio.run(_reachable(DEFAULT_DSN)):
        yield DEFAULT_DSN
    else:
        with throwaway_cluster() as dsn:
            yield dsn
