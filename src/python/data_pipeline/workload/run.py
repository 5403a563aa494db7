"""The generate job's run: write the workload with a progress line, and what the run reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from etl_core.model import Counts
from etl_core.ports import ObjectStore
from etl_core.runner import JobOutcome, RunContext
from etl_core.store_views import DelegatingObjectStore

from data_pipeline.workload.generate import MANIFEST_KEY, WorkloadOptions, write_workload


async def write_reported(
    ctx: RunContext, store: ObjectStore, options: WorkloadOptions
) -> Mapping[str, Any]:
    """Write the workload to store in a span, showing progress; the manifest."""
    with ctx.span("write_workload", records=options.records, files=options.files):
        return await write_workload(_Progress(store, ctx, options.files + 2), options)


def workload_outcome(
    manifest: Mapping[str, Any], *, out: str, not_written: int | None
) -> JobOutcome:
    """Counts, manifest key and expectations of a written workload (out: the redacted store;
    not_written: the objects a dry run did not write, None outside one)."""
    rows = int(manifest["input_rows"])
    summary: dict[str, object] = {
        "out": out,
        "manifest": MANIFEST_KEY,
        "expected silver rows": manifest.get("silver_rows"),
        "expected duplicates": manifest.get("duplicates"),
        "expected dead-letter rows": manifest.get("dead_letter_rows"),
    }
    if not_written is not None:
        summary["objects not written (dry run)"] = not_written
    return JobOutcome(
        # Every generated row is written: rows_in == rows_out keeps the audit invariant.
        counts=Counts(rows_in=rows, rows_out=rows, bytes_out=int(manifest["input_bytes"])),
        artifacts=(MANIFEST_KEY,),
        summary=summary,
    )


@attrs.define
class _Progress(DelegatingObjectStore):
    """Delegates to the store, updating the progress line as objects are written."""

    ctx: RunContext
    total: int  # bronze files + agencies.csv + manifest.json
    written: int = 0

    async def put(self, key: str, body: bytes) -> None:
        await self.store.put(key, body)
        self.written += 1
        self.ctx.progress(f"generate: {self.written}/{self.total} objects written")
