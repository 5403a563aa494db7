"""Whether tests run under CI, and a skip that CI turns into a failure."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NoReturn

import pytest

__all__ = ["in_ci", "skip_unless_ci"]


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    """CI is set to anything but empty, 0, false or no (CI=true is what CI services set)."""
    value = (os.environ if environ is None else environ).get("CI", "").strip().lower()
    return value not in ("", "0", "false", "no")


def skip_unless_ci(reason: str, environ: Mapping[str, str] | None = None) -> NoReturn:
    """Skip a test of a behaviour the product relies on when this machine cannot show it; under
    CI fail instead, since CI counts skips but nobody reads them, and the behaviour would go
    untested for good."""
    if in_ci(environ):
        pytest.fail(f"{reason}: CI must test this, so this machine must support it (CI is set)")
    pytest.skip(reason)
