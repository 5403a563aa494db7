"""Tests of the CI switch: what counts as CI, and skips that CI turns into failures."""

from __future__ import annotations

import pytest

from etl_core.testing.ci import in_ci, skip_unless_ci


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("", False), ("0", False), ("false", False), ("No", False),
     ("true", True), ("1", True), ("yes", True)],
)  # fmt: skip
def test_ci_is_any_value_but_an_empty_or_false_one(value: str | None, expected: bool) -> None:
    assert in_ci({} if value is None else {"CI": value}) is expected


def test_outside_ci_a_missing_capability_skips() -> None:
    with pytest.raises(pytest.skip.Exception, match="no xattrs"):
        skip_unless_ci("no xattrs", {})


def test_under_ci_a_missing_capability_fails() -> None:
    with pytest.raises(pytest.fail.Exception, match="no xattrs: CI must test this"):
        skip_unless_ci("no xattrs", {"CI": "true"})
