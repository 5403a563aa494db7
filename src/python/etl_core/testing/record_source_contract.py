"""Reusable RecordSource contract suite: subclass RecordSourceContract, provide a `seeded` fixture.

The fixture returns a `SeededSource`: the source, the agency it was seeded for, and the records it
must return for that agency, in order, as the source returns them (so a database source may list
the exact mappings its rows come back as). Seed enough records for at least three batches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import pytest

from etl_core.errors import SourceError
from etl_core.model import SourceBatch
from etl_core.ports import RecordSource
from etl_core.testing.conformance import assert_implements


@attrs.frozen
class SeededSource:
    """What a RecordSourceContract fixture provides."""

    source: RecordSource
    agency_id: int
    records: Sequence[Mapping[str, Any]]


async def _read(seeded: SeededSource, checkpoint: str | None = None) -> list[SourceBatch]:
    return [b async for b in seeded.source.batches(seeded.agency_id, checkpoint)]


def _records(batches: Sequence[SourceBatch]) -> list[Mapping[str, Any]]:
    return [record for batch in batches for record in batch.records]


class RecordSourceContract:
    """Behaviour every RecordSource adapter and fake must show."""

    # A checkpoint the source must reject with SourceError; None if every string is valid.
    invalid_checkpoint: str | None = "not-a-checkpoint"

    async def test_implements_the_port(self, seeded: SeededSource) -> None:
        assert_implements(seeded.source, RecordSource)

    async def test_full_read_returns_every_record_in_order(self, seeded: SeededSource) -> None:
        batches = await _read(seeded)
        assert len(batches) >= 3, "seed enough records for at least three batches"
        assert _records(batches) == list(seeded.records)

    async def test_every_batch_is_non_empty_and_resumable(self, seeded: SeededSource) -> None:
        batches = await _read(seeded)
        for index, batch in enumerate(batches):
            assert batch.records
            assert batch.checkpoint is not None
            # Resuming at this batch's checkpoint goes on with the next batch's records.
            following = batches[index + 1].records if index + 1 < len(batches) else ()
            resumed = await _read(seeded, batch.checkpoint)
            assert _records(resumed)[: len(following)] == list(following)
            assert bool(resumed) == bool(following)

    async def test_resuming_after_any_batch_returns_exactly_the_rest(
        self, seeded: SeededSource
    ) -> None:
        batches = await _read(seeded)
        seen = 0
        for batch in batches:
            seen += len(batch.records)
            rest = _records(await _read(seeded, batch.checkpoint))
            assert rest == list(seeded.records[seen:])

    async def test_no_checkpoint_reads_from_the_start(self, seeded: SeededSource) -> None:
        assert _records(await _read(seeded, None)) == list(seeded.records)

    async def test_malformed_checkpoint_raises_source_error(self, seeded: SeededSource) -> None:
        if self.invalid_checkpoint is None:
            pytest.skip("every string is a valid checkpoint for this source")
        with pytest.raises(SourceError):
            await _read(seeded, self.invalid_checkpoint)
