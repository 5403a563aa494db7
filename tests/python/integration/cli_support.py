"""Run the data-pipeline command as a subprocess, as users and Kubernetes Jobs do."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src" / "python"


def cli(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m jobs.cli <args>` in cwd with this process's environment plus env."""
    merged = {
        **os.environ,
        # This interpreter's own path too, so third-party packages resolve under a PEX as well.
        "PYTHONPATH": os.pathsep.join([str(SRC), *(p for p in sys.path if p)]),
        "HOME": str(cwd),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        cwd=cwd,
        env=merged,
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
