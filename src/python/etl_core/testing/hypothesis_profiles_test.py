"""Tests of the hypothesis profiles: chosen by HYPOTHESIS_PROFILE or CI, loaded by the conftest."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from etl_core.testing.hypothesis_profiles import CI, DEV, load_profile, profile_name


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, DEV),
        ({"CI": "true"}, CI),
        ({"CI": "1"}, CI),
        ({"CI": "false"}, DEV),
        ({"CI": ""}, DEV),
        ({"HYPOTHESIS_PROFILE": "dev", "CI": "true"}, DEV),
        ({"HYPOTHESIS_PROFILE": " ci "}, CI),
    ],
)
def test_the_profile_is_chosen_by_hypothesis_profile_then_by_ci(
    environ: dict[str, str], expected: str
) -> None:
    assert profile_name(environ) == expected


def test_the_ci_profile_has_no_deadline_a_fixed_count_and_a_fixed_seed() -> None:
    ci = settings.get_profile(CI)
    assert (ci.deadline, ci.max_examples, ci.derandomize, ci.database) == (None, 200, True, None)
    assert settings.get_profile(DEV).deadline is None


def test_an_unknown_profile_is_an_error() -> None:
    with pytest.raises(InvalidArgument):
        load_profile({"HYPOTHESIS_PROFILE": "no-such-profile"})


def test_the_conftest_loaded_a_profile_without_the_default_deadline() -> None:
    # The default profile's 200 ms deadline fails correct property tests on a loaded machine.
    assert settings.default is not None
    assert settings.default.deadline is None


@given(st.integers())
def test_property_tests_run_under_the_loaded_profile(value: int) -> None:
    assert settings().deadline is None
    assert isinstance(value, int)
