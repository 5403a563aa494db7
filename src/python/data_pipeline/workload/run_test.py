from __future__ import annotations

import json

import pytest
from etl_core import logs
from etl_core.model import Counts
from etl_core.testing.fakes import FakeObjectStore, FakeRunHistory
from etl_core.testing.run_contexts import started_run

from data_pipeline.workload.generate import MANIFEST_KEY, WorkloadOptions
from data_pipeline.workload.run import workload_outcome, write_reported

OPTIONS = WorkloadOptions(records=60, files=3, bad_rate=0.1, dup_rate=0.1, agencies=2)


async def test_each_written_object_advances_the_progress_line_and_the_manifest_lands_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shown: list[str] = []
    monkeypatch.setattr(logs, "show_progress", shown.append)
    store = FakeObjectStore()
    ctx = await started_run(FakeRunHistory(), "generate")

    manifest = await write_reported(ctx, store, OPTIONS)

    # 3 bronze files + agencies.csv + the manifest, counted as each put returns.
    assert shown == [f"generate: {n}/5 objects written" for n in range(1, 6)]
    assert len(store.objects) == 5
    assert json.loads(store.objects[MANIFEST_KEY]) == manifest
    assert list(store.objects)[-1] == MANIFEST_KEY


async def test_the_outcome_counts_every_generated_row_and_states_the_expectations() -> None:
    store = FakeObjectStore()
    manifest = await write_reported(await started_run(FakeRunHistory(), "generate"), store, OPTIONS)
    bronze = sum(len(body) for key, body in store.objects.items() if key.startswith("bronze/"))

    outcome = workload_outcome(manifest, out="file:///data", not_written=None)

    assert manifest["input_rows"] == 60
    assert outcome.counts == Counts(rows_in=60, rows_out=60, bytes_out=bronze)
    assert outcome.artifacts == (MANIFEST_KEY,)
    assert outcome.summary == {
        "out": "file:///data",
        "manifest": MANIFEST_KEY,
        "expected silver rows": manifest["silver_rows"],
        "expected duplicates": manifest["duplicates"],
        "expected dead-letter rows": manifest["dead_letter_rows"],
    }
    expected = manifest["silver_rows"] + manifest["duplicates"] + manifest["dead_letter_rows"]
    assert expected == 60


def test_a_dry_run_says_how_many_objects_it_did_not_write() -> None:
    manifest = {"input_rows": 4, "input_bytes": 400, "silver_rows": 4}
    outcome = workload_outcome(manifest, out="s3://b/", not_written=6)
    assert outcome.summary["objects not written (dry run)"] == 6
    assert outcome.summary["expected duplicates"] is None  # absent from the manifest: not shown
