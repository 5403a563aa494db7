"""Build the main job's OCI image without a daemon, check it is reproducible, run it with podman."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from oci.build_image import BuiltImage, build_images

pytestmark = pytest.mark.images

JOB = os.environ.get("ETL_IMAGE_TEST_JOB", "bronze_to_silver")
# Where Pants puts a runtime_package_dependencies PEX in the test sandbox, then where
# `./pants package` leaves it in the repo; ETL_IMAGE_TEST_PEX overrides both.
PEX_CANDIDATES = (Path(f"src.python.jobs/{JOB}.pex"), Path(f"dist/src.python.jobs/{JOB}.pex"))
DRY_RUN_ARGS = shlex.split(os.environ.get("ETL_IMAGE_TEST_DRY_RUN_ARGS", "--dry-run --agency-id 1"))
# The job carries the Delta engine (deltalake) and pyarrow since silver is a Delta table: ~180 MB
# uncompressed, of which ~65 MB is the base.
MAX_IMAGE_BYTES = 200_000_000
INSTALL_HINT = "run tools/ci/install_image_tools.sh (as root) to install podman, runc and skopeo"


def find_pex() -> Path:
    override = os.environ.get("ETL_IMAGE_TEST_PEX")
    candidates = (Path(override),) if override else PEX_CANDIDATES
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    pytest.fail(
        f"no {JOB} PEX at {', '.join(map(str, candidates))} (cwd {Path.cwd()}): build it with "
        f"`./pants package src/python/jobs:{JOB}` or set ETL_IMAGE_TEST_PEX"
    )


def find_tool(name: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail(f"{name} not found: {INSTALL_HINT}")
    return found


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    pex = find_pex()
    first = build_images([pex], tmp_path_factory.mktemp("first"), revision="image-test")[0]
    again = build_images([pex], tmp_path_factory.mktemp("again"), revision="image-test")[0]
    assert first.archive_sha256 == again.archive_sha256, "two builds of one PEX differ"
    print(f"\nimage: {first.summary()}")
    return first


@pytest.fixture(scope="module")
def storage() -> Iterator[Path]:
    # Short and private: podman refuses a runroot longer than 50 characters.
    path = Path(tempfile.mkdtemp(prefix="etl-podman-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def podman(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # vfs storage, cgroupfs and a file events log: what works without a daemon or systemd here.
    storage = ["--root", str(tmp / "root"), "--runroot", str(tmp / "run")]
    command = [find_tool("podman"), *storage, "--storage-driver", "vfs"]
    command += ["--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=300, check=False
    )


def run_image(tmp: Path, image: BuiltImage, *args: str) -> subprocess.CompletedProcess[str]:
    sandbox = ["--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp"]
    sandbox += ["--user", "65534:65534", "--ulimit", "nofile=1024:1024"]
    sandbox += ["--ulimit", "nproc=1024:1024"]
    return podman(tmp, "run", *sandbox, f"oci-archive:{image.archive}", *args)


def test_image_is_small_and_configured_to_run_the_job_as_nobody(image: BuiltImage) -> None:
    inspected = subprocess.run(
        [find_tool("skopeo"), "inspect", "--config", f"oci-archive:{image.archive}"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    config = json.loads(inspected.stdout)["config"]

    assert image.uncompressed_bytes < MAX_IMAGE_BYTES, image.summary()
    assert config["User"] == "65534:65534"
    assert config["Entrypoint"][-1] == f"/app/{JOB}.pex"
    assert config["Labels"]["org.opencontainers.image.revision"] == "image-test"
    assert not [e for e in config["Env"] if "KEY" in e or "SECRET" in e or "TOKEN" in e]


def test_help_runs_in_a_locked_down_container(image: BuiltImage, storage: Path) -> None:
    result = run_image(storage, image, "--help")

    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def test_dry_run_runs_in_a_locked_down_container(image: BuiltImage, storage: Path) -> None:
    result = run_image(storage, image, *DRY_RUN_ARGS)

    assert result.returncode == 0, f"{DRY_RUN_ARGS}: {result.stdout}\n{result.stderr}"
