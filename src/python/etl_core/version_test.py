"""The code version: ETL_CODE_VERSION, else the release plus the checkout's git describe."""

from __future__ import annotations

import subprocess
from pathlib import Path

from etl_core import version


def test_etl_code_version_wins() -> None:
    assert version.code_version({"ETL_CODE_VERSION": " 2.0.1+abc "}) == "2.0.1+abc"


def test_an_images_commit_follows_the_release() -> None:
    commit = "6ebf79a1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7"
    assert version.code_version({"ETL_GIT_COMMIT": commit}) == f"{version.RELEASE}+6ebf79a1c2d3"
    assert version.code_version({"ETL_GIT_COMMIT": commit, "ETL_CODE_VERSION": "x"}) == "x"
    unknown = version.code_version({"ETL_GIT_COMMIT": "unknown"})  # built without GIT_COMMIT
    assert "unknown" not in unknown
    assert unknown.startswith(version.RELEASE)


def test_without_it_the_release_is_named_never_dev() -> None:
    found = version.code_version({})

    assert found == version.RELEASE or found.startswith(f"{version.RELEASE}+")
    assert "dev" not in found


def test_a_checkout_is_described_by_its_tag_commit_and_dirtiness(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "f").write_text("1")
    git("add", "f")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    git("tag", "v9.9.9")
    assert version.git_describe(tmp_path) == "v9.9.9"

    (tmp_path / "f").write_text("2")
    version.git_describe.cache_clear()
    assert version.git_describe(tmp_path) == "v9.9.9-dirty"


def test_a_directory_that_is_not_a_checkout_has_no_description(tmp_path: Path) -> None:
    assert version.git_describe(tmp_path) is None
