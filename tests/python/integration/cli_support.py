"""Run the data-pipeline command as a subprocess, as users and Kubernetes Jobs do."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src" / "python"


def cli_env(cwd: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus env, with the sources on the path and HOME in cwd."""
    return {
        **os.environ,
        # This interpreter's own path too, so third-party packages resolve under a PEX as well.
        "PYTHONPATH": os.pathsep.join([str(SRC), *(p for p in sys.path if p)]),
        "HOME": str(cwd),
        **(env or {}),
    }


def cli(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m jobs.cli <args>` in cwd with this process's environment plus env."""
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        cwd=cwd,
        env=cli_env(cwd, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def cli_async(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """cli() in a thread, so servers on this test's event loop keep answering meanwhile."""
    return await asyncio.to_thread(cli, cwd, *args, env=env)


async def cli_process(
    cwd: Path, *args: str, output: Path, env: Mapping[str, str] | None = None
) -> asyncio.subprocess.Process:
    """cli() started, not awaited, its stdout and stderr into the file output (a pipe nobody
    reads could stall it): a test can kill it where it chooses."""
    with output.open("wb") as sink:  # the child holds its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "jobs.cli", *args, cwd=cwd, env=cli_env(cwd, env),
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
