"""The code version runs record and `data-pipeline --version` prints.

ETL_CODE_VERSION when set (a deployment may name its own); else the release below plus the commit
the code was built from: ETL_GIT_COMMIT, which every job image sets from its GIT_COMMIT build
argument (`0.1.0+6ebf79a1c2d3`), or `git describe` of the checkout when running from one
(`0.1.0+6ebf79a-dirty`). A PEX run outside an image holds no .git and no ETL_GIT_COMMIT: there it
is the release alone.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Final

RELEASE: Final = "0.1.0"
_REPO_ROOT: Final = Path(__file__).resolve().parents[3]  # src/python/etl_core/version.py


def code_version(env: Mapping[str, str]) -> str:
    """ETL_CODE_VERSION, else RELEASE[+the image's commit or git describe of this checkout]."""
    explicit = env.get("ETL_CODE_VERSION", "").strip()
    if explicit:
        return explicit
    commit = env.get("ETL_GIT_COMMIT", "").strip()
    if commit and commit != "unknown":  # the Dockerfile's default when no commit was passed
        return f"{RELEASE}+{commit[:12]}"
    described = git_describe(_REPO_ROOT)
    return f"{RELEASE}+{described}" if described else RELEASE


@functools.cache
def git_describe(root: Path) -> str | None:
    """`git describe --tags --always --dirty` of the checkout at root; None when root is not a
    checkout's top (no .git there) or git is missing or fails."""
    if not (root / ".git").exists():
        return None
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "describe", "--tags", "--always", "--dirty"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    described = result.stdout.strip()
    return described if result.returncode == 0 and described else None
