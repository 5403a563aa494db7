"""Counts: addition covers every field, and the audit invariant ignores the merge's counts."""

from __future__ import annotations

import attrs
from hypothesis import given
from hypothesis import strategies as st

from etl_core.model import Counts

_FIELDS = [field.name for field in attrs.fields(Counts)]
_counts = st.builds(Counts, **{name: st.integers(0, 10**12) for name in _FIELDS})


@given(_counts, _counts)
def test_adding_counts_adds_every_field(a: Counts, b: Counts) -> None:
    total = a + b
    assert {name: getattr(total, name) for name in _FIELDS} == {
        name: getattr(a, name) + getattr(b, name) for name in _FIELDS
    }


def test_summing_partitions_keeps_inserted_and_updated() -> None:
    partitions = [
        Counts(rows_in=3, rows_out=3, rows_inserted=2, rows_updated=1),
        Counts(rows_in=2, rows_out=2, rows_inserted=2),
    ]
    total = Counts(rows_in=5, rows_out=5, rows_inserted=4, rows_updated=1)
    assert sum(partitions, Counts()) == total


def test_inserted_and_updated_stay_outside_the_audit_invariant() -> None:
    # Of 4 rows out, 1 was older than the stored row: it is neither inserted nor updated.
    assert Counts(rows_in=5, rows_out=4, rows_duplicate=1, rows_inserted=2, rows_updated=1).balanced
    assert not Counts(rows_in=5, rows_out=4, rows_inserted=5).balanced
