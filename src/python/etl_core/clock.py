"""UTC time and sortable run ids, in one place so tests and adapters agree on both.

Run ids are UUIDv7 (RFC 9562) from the `uuid6` package rather than bit-twiddling of our own: its
`uuid7()` is the reference implementation the standard library adopted in Python 3.14, and it is
also monotonic within a process (a second id in the same millisecond takes the next millisecond),
which the hand-written generator this replaced did not promise: two ids made in one millisecond
sorted at random. It is imported when the first id is made, not with this module: `uuid6`
imports importlib.metadata (~25 ms), which a job's `--help` does not need.
"""

from __future__ import annotations

import datetime as dt


def now() -> dt.datetime:
    """Current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def new_run_id() -> str:
    """A UUIDv7 string: time-ordered, so run ids sort by start time (strictly, in one process)."""
    from uuid6 import uuid7

    return str(uuid7())
