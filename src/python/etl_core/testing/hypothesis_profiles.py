"""Hypothesis profiles for the property tests, chosen by HYPOTHESIS_PROFILE or by CI."""

from __future__ import annotations

import os
from collections.abc import Mapping

from hypothesis import HealthCheck, settings

from etl_core.testing.ci import in_ci

__all__ = ["CI", "DEV", "load_profile", "profile_name"]

CI = "ci"
DEV = "dev"

# The properties state what the code does, not how fast: no deadline anywhere, or a loaded
# machine fails a correct test. CI runs a fixed number of examples from a fixed seed (the same
# examples on every run, nothing read from or written to an example database), so a red build
# reproduces; a developer's run explores new examples each time and remembers failing ones.
settings.register_profile(
    CI,
    deadline=None,
    max_examples=200,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],  # generation slowed by a loaded machine
)
settings.register_profile(DEV, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def profile_name(environ: Mapping[str, str]) -> str:
    """HYPOTHESIS_PROFILE if set, else `ci` when CI is set (to anything but 0/false), else `dev`."""
    chosen = environ.get("HYPOTHESIS_PROFILE", "").strip()
    if chosen:
        return chosen
    return CI if in_ci(environ) else DEV


def load_profile(environ: Mapping[str, str] | None = None) -> str:
    """Load the profile the environment selects; its name. Raises InvalidArgument if unknown."""
    name = profile_name(os.environ if environ is None else environ)
    settings.load_profile(name)
    return name
