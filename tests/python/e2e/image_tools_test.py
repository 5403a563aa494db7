"""The image tests' set-up says what to run when it cannot install podman & co. itself."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.image_tools import ensure_image_tools, installer

NOBODY = 65534


@pytest.fixture()
def bare_bin() -> Iterator[Path]:
    """A PATH directory with a shell and coreutils but no podman, readable by nobody."""
    directory = Path(tempfile.mkdtemp(prefix="etl-bare-bin-", dir="/tmp"))
    directory.chmod(0o755)
    for tool in ("bash", "id", "head", "printf"):
        found = shutil.which(tool)
        assert found is not None, tool
        (directory / tool).symlink_to(found)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_without_root_a_missing_tool_fails_the_set_up_saying_what_to_run(bare_bin: Path) -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        ensure_image_tools(installer(), path=str(bare_bin), user=NOBODY)

    message = str(failed.value)
    assert "the image tests need podman, skopeo, runc" in message
    assert "could not install them (exit 1)" in message
    assert "install_image_tools: missing podman skopeo umoci runc buildah" in message
    assert "must run as root to apt-get install" in message
    assert "Install them as root with `bash tools/ci/install_image_tools.sh`" in message
