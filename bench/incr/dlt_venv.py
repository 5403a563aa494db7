"""The dlt peer's own venv: created once, cached outside the repository, never in the lockfile.

`$XDG_CACHE_HOME/etl-platform-bench/venv-dlt-<dlt>-polars-<polars>` (default ~/.cache), made with
the machine's Python 3.11 and `pip install 'dlt[deltalake]==1.31.0' polars==<the bench's>` (the
peer shares the Polars transform with the Polars peer). A `.complete` marker is written only after
the install and an import check succeed; a lock file serialises concurrent benchmarks. When the
install fails, the reason comes back instead of a Python and the dlt rows print it.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

DLT_REQUIREMENT = "dlt[deltalake]==1.31.0"
INSTALL_TIMEOUT_S = 1200


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "etl-platform-bench"


def _base_python() -> str:
    """A plain interpreter (not this venv's or a test PEX's), to base the new venv on."""
    base = getattr(sys, "_base_executable", None)
    if base and Path(base).exists():
        return str(base)
    return shutil.which("python3.11") or sys.executable


def ensure_dlt_python() -> tuple[Path | None, str]:
    """(the venv's python, "") or (None, why it could not be made)."""
    polars = importlib.metadata.version("polars")
    venv = cache_root() / f"venv-dlt-1.31.0-polars-{polars}"
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".complete").exists():
            return python, ""
        print(f"# dlt peer: creating {venv} (once; pip install {DLT_REQUIREMENT})", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        steps = [
            [_base_python(), "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "-q", DLT_REQUIREMENT, f"polars=={polars}"],
            [str(python), "-c", "import dlt, deltalake, polars, pyarrow"],
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        for step in steps:
            try:
                done = subprocess.run(
                    step, capture_output=True, text=True, env=env, timeout=INSTALL_TIMEOUT_S
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return None, f"dlt venv: {' '.join(step[:4])}: {exc}"
            if done.returncode != 0:
                lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
                errors = [ln for ln in lines if "ERROR" in ln or "Error" in ln] or lines
                reason = errors[-1] if errors else f"exit {done.returncode}"
                return None, f"dlt venv: {' '.join(step[:4])} failed: {reason.strip()[:300]}"
        (venv / ".complete").write_text(DLT_REQUIREMENT + "\n")
        return python, ""
