"""The code version runs record and `data-pipeline --version` prints.

ETL_CODE_VERSION when set (images and CI pass the commit they were built from); else the release
below, plus `git describe` of the checkout when running from one (`0.1.0+6ebf79a-dirty`). A PEX
or an image holds no .git, so there it is the release alone unless ETL_CODE_VERSION says more.
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
    """ETL_CODE_VERSION, else RELEASE[+git describe of this checkout]."""
    explicit = env.get("ETL_CODE_VERSION", "").strip()
    if explicit:
        return explicit
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
