"""The files of one published partition: silver parts, the dead-letter file, the fingerprint."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import orjson
from etl_core.model import Counts, DeadLetter

from data_pipeline.fingerprint import content_fingerprint
from data_pipeline.layout import DEADLETTER_PREFIX, SILVER_PREFIX
from data_pipeline.ndjson import join_lines

DEFAULT_ROWS_PER_FILE = 100_000


def dead_letter_row(dead: DeadLetter, run_id: str) -> bytes:
    """{"reason", "source", "raw", "run_id"}: exactly these keys."""
    return orjson.dumps(
        {"reason": dead.reason, "source": dead.source, "raw": dead.raw, "run_id": run_id}
    )


@attrs.frozen
class PartitionOutput:
    """A partition's new generation before publication."""

    partition: str  # agency_id=<id>/dt=<day>
    files: dict[str, bytes]  # key -> body
    fingerprint: str
    counts: Counts  # bytes_out is the generation's size

    @property
    def bytes_out(self) -> int:
        return sum(len(body) for body in self.files.values())


def build_output(
    partition: str,
    run_id: str,
    silver: Sequence[bytes],
    dead_letters: Sequence[DeadLetter],
    counts: Counts,
    *,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
) -> PartitionOutput:
    """silver/<partition>/part-<run_id>-<n>.ndjson (rows in the given order, at most
    rows_per_file each) and deadletter/<partition>/part-<run_id>.ndjson; no empty files."""
    if rows_per_file < 1:
        raise ValueError(f"rows_per_file must be at least 1, got {rows_per_file}")
    files: dict[str, bytes] = {}
    for n, start in enumerate(range(0, len(silver), rows_per_file)):
        key = f"{SILVER_PREFIX}{partition}/part-{run_id}-{n}.ndjson"
        files[key] = join_lines(silver[start : start + rows_per_file])
    if dead_letters:
        key = f"{DEADLETTER_PREFIX}{partition}/part-{run_id}.ndjson"
        files[key] = join_lines(dead_letter_row(dead, run_id) for dead in dead_letters)
    size = sum(len(body) for body in files.values())
    return PartitionOutput(
        partition=partition,
        files=files,
        fingerprint=content_fingerprint(silver, dead_letters),
        counts=attrs.evolve(counts, bytes_out=size),
    )
