"""Run ids: UUIDv7 strings that sort by creation time."""

from __future__ import annotations

import time
import uuid

from etl_core import clock


def test_run_ids_are_uuid_version_7_of_the_rfc_variant() -> None:
    value = uuid.UUID(clock.new_run_id())
    assert (value.version, value.variant) == (7, uuid.RFC_4122)


def test_run_ids_carry_the_unix_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    stamp = uuid.UUID(clock.new_run_id()).int >> 80
    # Monotonic generation may run a little ahead of the clock, never behind it.
    assert before <= stamp <= time.time_ns() // 1_000_000 + 1_000


def test_run_ids_made_in_a_burst_sort_in_the_order_they_were_made() -> None:
    ids = [clock.new_run_id() for _ in range(2_000)]  # many per millisecond
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_run_ids_are_canonical_lowercase_strings() -> None:
    run_id = clock.new_run_id()
    assert run_id == str(uuid.UUID(run_id))
    assert len(run_id) == 36
