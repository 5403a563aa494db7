"""Build the main job's image from docker/Dockerfile with buildah (no daemon), as CI does; check it
is reproducible; run it with podman."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from job_images.build import BuiltImage, build_images
from job_images.storage import Storage, private_storage

pytestmark = pytest.mark.images

JOB = os.environ.get("ETL_IMAGE_TEST_JOB", "bronze_to_silver")
# Where Pants puts a runtime_package_dependencies PEX in the test sandbox, then where
# `./pants package` leaves it in the repo; ETL_IMAGE_TEST_PEX overrides both.
PEX_CANDIDATES = (Path(f"src.python.jobs/{JOB}.pex"), Path(f"dist/src.python.jobs/{JOB}.pex"))
# --demo: an image has no embedded store or history (ETL_EMBEDDED_DEFAULTS=off) unless asked.
DRY_RUN_ARGS = shlex.split(
    os.environ.get("ETL_IMAGE_TEST_DRY_RUN_ARGS", "--demo --dry-run --agency-id 1")
)
# The job carries the Delta engine (deltalake) and pyarrow since silver is a Delta table: ~197 MB
# uncompressed, of which ~62 MB is the Debian base (job_images.base).
MAX_IMAGE_BYTES = 200_000_000


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


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, image_tools: dict[str, str]) -> BuiltImage:
    pex = find_pex()
    first = build_images([pex], tmp_path_factory.mktemp("first"), revision="image-test")[0]
    again = build_images([pex], tmp_path_factory.mktemp("again"), revision="image-test")[0]
    assert first.archive_sha256 == again.archive_sha256, "two builds of one PEX differ"
    print(f"\nimage: {first.summary()}")
    return first


@pytest.fixture(scope="module")
def storage() -> Iterator[Storage]:
    with private_storage() as private:
        yield private


@pytest.fixture(scope="module")
def podman(storage: Storage, image_tools: dict[str, str]) -> list[str]:
    """The podman command: vfs storage, cgroupfs, a file events log and runc, which is what works
    without a daemon or systemd here."""
    return storage.podman(image_tools["podman"], runtime=image_tools["runc"])


def run_image(podman: list[str], image: BuiltImage, *args: str) -> subprocess.CompletedProcess[str]:
    sandbox = ["--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp"]
    sandbox += ["--user", "65534:65534", "--ulimit", "nofile=1024:1024"]
    sandbox += ["--ulimit", "nproc=1024:1024"]
    return subprocess.run(
        [*podman, "run", *sandbox, f"oci-archive:{image.archive}", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_image_is_small_and_configured_to_run_the_job_as_nobody(
    image: BuiltImage, image_tools: dict[str, str]
) -> None:
    inspected = subprocess.run(
        [image_tools["skopeo"], "inspect", "--config", f"oci-archive:{image.archive}"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    config = json.loads(inspected.stdout)["config"]

    assert image.uncompressed_bytes < MAX_IMAGE_BYTES, image.summary()
    assert config["User"] == "65534:65534"
    assert config["Entrypoint"][-1] == f"/app/{JOB}.pex"
    assert config["Labels"]["org.opencontainers.image.revision"] == "image-test"
    assert not [e for e in config["Env"] if "KEY" in e or "SECRET" in e or "TOKEN" in e]
    assert "ETL_EMBEDDED_DEFAULTS=off" in config["Env"]
    assert "ETL_GIT_COMMIT=image-test" in config["Env"]  # runs record code_version 0.1.0+image-test


def test_help_runs_in_a_locked_down_container(image: BuiltImage, podman: list[str]) -> None:
    result = run_image(podman, image, "--help")

    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def test_dry_run_runs_in_a_locked_down_container(image: BuiltImage, podman: list[str]) -> None:
    result = run_image(podman, image, *DRY_RUN_ARGS)

    assert result.returncode == 0, f"{DRY_RUN_ARGS}: {result.stdout}\n{result.stderr}"


def test_the_job_told_nothing_exits_2_saying_what_to_set(
    image: BuiltImage, podman: list[str]
) -> None:
    result = run_image(podman, image, "--agency-id", "1")

    assert result.returncode == 2, f"{result.stdout}\n{result.stderr}"
    assert "not configured (ETL_EMBEDDED_DEFAULTS=off" in result.stderr
    assert "ETL_STORE_URL" in result.stderr
    assert "ETL_HISTORY_URL" in result.stderr
