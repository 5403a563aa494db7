"""Fixtures of the e2e tests."""

from __future__ import annotations

import pytest

from e2e.image_tools import ensure_image_tools, installer


@pytest.fixture(scope="session")
def image_tools() -> dict[str, str]:
    """podman, skopeo and runc (name -> path) for the image tests, installed first when missing:
    `./pants test ::` passes on a fresh machine (see e2e.image_tools)."""
    return ensure_image_tools(installer())
