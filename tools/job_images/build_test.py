"""The Dockerfile's job stages, and what build_images refuses before it runs anything."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from job_images.base import base_rootfs, prune, recipe_key
from job_images.build import DOCKERFILE, build_images, job_stages

_ENTRYPOINTS = re.compile(r"^FROM job AS (\S+)\nENTRYPOINT (\[.*\])$", re.MULTILINE)


def test_every_job_has_a_stage_whose_entrypoint_runs_its_pex_with_python_on_path() -> None:
    entrypoints = dict(_ENTRYPOINTS.findall(DOCKERFILE.read_text()))

    assert sorted(entrypoints) == job_stages()
    assert "bronze_to_silver" in entrypoints
    for job, entrypoint in entrypoints.items():
        assert json.loads(entrypoint) == ["python3.11", "-I", f"/app/{job}.pex"]


def test_a_pex_without_a_stage_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no stage for not_a_job"):
        build_images([tmp_path / "not_a_job.pex"], tmp_path, revision="test")


def test_the_base_recipe_names_its_cached_rootfs() -> None:
    assert recipe_key() == recipe_key()
    assert re.fullmatch(r"bookworm-[0-9a-f]{12}", recipe_key())


def test_a_new_recipe_prunes_the_rootfs_of_older_ones_and_partial_ones(tmp_path: Path) -> None:
    current = tmp_path / f"{recipe_key()}.tar"
    old, partial = tmp_path / "bookworm-000000000000.tar", tmp_path / "bookworm-1.partial"
    for path in (current, old, partial):
        path.write_bytes(b"rootfs")
    (tmp_path / ".lock").touch()

    assert prune(tmp_path, keep=current) == [old, partial]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", current.name]
    assert base_rootfs(tmp_path) == current  # cached: nothing made, nothing else removed
