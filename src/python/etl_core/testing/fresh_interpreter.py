"""Run code in a fresh Python interpreter, for tests of what importing something loads: the test
process itself has imported far more already."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def run_fresh(code: str, *, source_root: Path, env: Mapping[str, str] | None = None) -> str:
    """code's stripped stdout, run by this interpreter with source_root first on its path, in env
    (default: this process's environment). Fails the test with the child's stderr if it fails.

    The modules code imports must also be imported by the calling test module: Pants puts in a
    test's sandbox only what the test's own imports reach, never what a string names.
    """
    path = os.pathsep.join([str(source_root), *sys.path])
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={**(os.environ if env is None else env), "PYTHONPATH": path},
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr}"
    return done.stdout.strip()
