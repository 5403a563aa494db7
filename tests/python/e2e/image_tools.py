"""The container tools the image tests need, installed on first use (the `image_tools` fixture
of conftest.py).

`./pants test ::` must pass on a fresh machine, so the image tests install buildah, debootstrap,
podman, skopeo and runc the way the PostgreSQL fixture starts its server:
tools/ci/install_image_tools.sh, the script .ci/run uses, run once per session. It does nothing
when everything is there, and needs root plus the Debian registry otherwise.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# buildah builds docker/Dockerfile on a base debootstrap makes; podman and runc run the image.
IMAGE_TOOLS = ("podman", "skopeo", "runc", "buildah", "debootstrap")
INSTALLER = Path("tools/ci/install_image_tools.sh")
# apt-get and dpkg need the sbin directories, which a sandbox's PATH may lack.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Two test processes (or a person's shell) installing at once would fight over dpkg's lock.
INSTALL_LOCK = Path("/tmp/etl-install-image-tools.lock")
INSTALL_TIMEOUT_SECONDS = 900


def search_path() -> str:
    return os.pathsep.join(filter(None, (os.environ.get("PATH"), SYSTEM_PATH)))


def find_tool(name: str, path: str | None = None) -> str | None:
    """The tool's path on PATH or in the system directories (or on path), or None."""
    return shutil.which(name, path=path or search_path())


def installer() -> Path:
    """The install script: relative to the working directory (a Pants sandbox or the repo root),
    else beside this file's checkout."""
    for candidate in (INSTALLER, Path(__file__).resolve().parents[3] / INSTALLER):
        if candidate.is_file():
            return candidate
    pytest.fail(f"{INSTALLER} not found (cwd {Path.cwd()}): the image tests depend on it")


def install_image_tools(
    script: Path, *, path: str | None = None, user: int | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the idempotent install script under a lock; its output is returned, not printed."""
    with INSTALL_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return subprocess.run(
            ["bash", str(script.resolve())],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
            env={**os.environ, "PATH": path or search_path()},
            user=user,
            check=False,
        )


def ensure_image_tools(
    script: Path, *, path: str | None = None, user: int | None = None
) -> dict[str, str]:
    """name -> path of each of IMAGE_TOOLS, installed first if anything is missing; a test
    failure saying what to run where that cannot be done."""
    result = install_image_tools(script, path=path, user=user)
    output = f"{result.stdout}{result.stderr}".strip()
    if result.returncode != 0:
        pytest.fail(
            f"the image tests need {', '.join(IMAGE_TOOLS)}, and {script} could not install "
            f"them (exit {result.returncode}):\n{output}\nInstall them as root with "
            f"`bash {INSTALLER}` (Debian: apt-get install podman skopeo runc umoci buildah "
            "debootstrap)."
        )
    found = {name: find_tool(name, path) for name in IMAGE_TOOLS}
    missing = sorted(name for name, found_at in found.items() if found_at is None)
    if missing:
        pytest.fail(f"{', '.join(missing)} still not found after {script} ran:\n{output}")
    print(f"\n{output}")
    return {name: found_at for name, found_at in found.items() if found_at is not None}
