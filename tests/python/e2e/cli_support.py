"""Run the data-pipeline command as a subprocess, as a user or a Kubernetes Job does: in a
working directory of the test's, with nothing from this process's environment but PATH (and the
sources on PYTHONPATH), plus what the test passes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src" / "python"


def cli_env(cwd: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """PATH, HOME in cwd, the sources (and this interpreter's path, so third-party packages
    resolve under a PEX too) on PYTHONPATH, plus extra."""
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "PYTHONPATH": os.pathsep.join([str(SRC), *(p for p in sys.path if p)]),
    }
    return {**base, **(extra or {})}


def cli(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """`python -m jobs.cli <args>` in cwd with cli_env(cwd, env)."""
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        cwd=cwd,
        env=cli_env(cwd, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def generate(cwd: Path, out: str, *args: str, history: str | None = None) -> None:
    """`data-pipeline run generate -- <args> --out <out>` (the reference workload into a store
    URL or directory), its run recorded in history (default a SQLite file in cwd); fails the
    test if it does."""
    recorded = history or f"sqlite:///{cwd}/generate.sqlite3"
    result = cli(cwd, "run", "generate", "--", *args, "--out", out, "--history", recorded)
    assert result.returncode == 0, result.stderr[-3000:]


def one_error_line(result: subprocess.CompletedProcess[str], job: str) -> str:
    """The one line of stderr that is not a JSON log record: `<job>: error: ...`."""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{job}: error: "), lines[0]
    return lines[0]
