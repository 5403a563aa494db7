"""buildah and podman on one private container storage, the way they work without a daemon or
systemd: vfs storage, chroot isolation, cgroupfs, a file events log and runc. Standard library
only: CI runs it with the system python3.11, outside Pants."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# No network reaches a container: none (or host loopback) is all a job image ever gets here.
# podman cannot raise the open-files and process limits on such a machine: it fails with
# "setrlimit RLIMIT_NOFILE: Operation not permitted" unless given these.
SANDBOX = ("--network=none", "--ulimit=nofile=1024:1024", "--ulimit=nproc=1024:1024")
# Production-like: read-only root, /tmp an empty tmpfs (an emptyDir in Kubernetes), nobody.
LOCKED_DOWN = (*SANDBOX, "--read-only", "--tmpfs=/tmp", "--user=65534:65534")


@dataclass(frozen=True)
class Storage:
    """One container storage directory shared by buildah and podman."""

    path: Path

    def storage_flags(self) -> list[str]:
        return [
            "--root",
            str(self.path / "root"),
            "--runroot",
            str(self.path / "run"),
            "--storage-driver",
            "vfs",
        ]

    def buildah(self, buildah: str = "buildah") -> list[str]:
        """The buildah command on this storage."""
        return [buildah, *self.storage_flags()]

    def podman(self, podman: str = "podman", runtime: str = "runc") -> list[str]:
        """The podman command on this storage."""
        return [
            podman,
            *self.storage_flags(),
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--runtime",
            runtime,
        ]

    def run_buildah(self, *args: str, timeout: float = 600) -> str:
        """buildah's stdout; CalledProcessError (with stderr) when it fails."""
        result = subprocess.run(
            [*self.buildah(), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, result.stdout, result.stderr
            )
        return result.stdout


@contextmanager
def private_storage() -> Iterator[Storage]:
    """A fresh storage under /tmp, removed afterwards. Short on purpose: podman refuses a runroot
    longer than 50 characters."""
    path = Path(tempfile.mkdtemp(prefix="etl-img-", dir="/tmp"))  # (short, see above)
    try:
        yield Storage(path)
    finally:
        # vfs layers hold root-owned read-only trees; buildah unmounts them on its own exit.
        subprocess.run(
            ["buildah", *Storage(path).storage_flags(), "rm", "--all"],
            capture_output=True,
            check=False,
            timeout=120,
        )
        shutil.rmtree(path, ignore_errors=True)
