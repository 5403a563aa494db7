"""Export one agency's records (validated, deduped, enriched) as CSV and NDJSON artifacts.

write_export writes and uploads the artifacts of any reader of the agency: export_agency's
record source here, or the silver and dead-letter tables (silver_export).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import orjson
from etl_core import serde
from etl_core.errors import NothingForAgency
from etl_core.model import Counts, PartitionRecord, PartitionStatus
from etl_core.ports import ObjectStore, RecordSource
from etl_core.runner import JobOutcome, RunContext

from data_pipeline.export.csv_format import CsvWriter
from data_pipeline.ingest.records import RecordValidator
from data_pipeline.silver.agencies import Agency
from data_pipeline.silver.dedupe import Deduper
from data_pipeline.silver.validate import agency_infos
from data_pipeline.store.ndjson import dead_letter_line
from data_pipeline.store.put_once import put_once

FORMATS: Final = ("csv", "ndjson")
RECORD_FILES: Final = {"csv": "records.csv", "ndjson": "records.ndjson"}
DEADLETTER_FILE: Final = "deadletter.ndjson"
MANIFEST_FILE: Final = "manifest.json"


def export_prefix(agency_id: int, run_id: str) -> str:
    """exports/agency_id=<id>/run_id=<run_id>/."""
    return f"exports/agency_id={agency_id}/run_id={run_id}/"


@attrs.frozen
class ExportOptions:
    """What to export and how to name records whose source gives no file and line."""

    agency_id: int
    formats: tuple[str, ...] = FORMATS
    source_label: str = "source"
    temp_dir: str | None = None  # parent of the working directory (default: the system's)


@attrs.frozen
class Artifact:
    """One local artifact file, ready to upload."""

    name: str
    path: Path
    rows: int
    size: int
    sha256: str


@attrs.frozen
class Extracted:
    """What an export read: the rows to write and the run's accounting of them."""

    rows: Iterable[bytes]  # silver rows, one JSON object each, ordered by record_id
    counts: Counts
    reasons: Mapping[str, int]  # dead-letter reason -> rows
    fingerprint: str  # what the run read, for its ledger row


# Reads the agency, streaming its dead letters (dead_letter_line) to the file at the path given.
Extract = Callable[[Path], Awaitable[Extracted]]


async def export_agency(
    ctx: RunContext,
    source: RecordSource,
    store: ObjectStore,
    agencies: Mapping[int, Agency],
    options: ExportOptions,
) -> JobOutcome:
    """Read every record of the agency from source, validated and deduped as bronze -> silver
    does, and export the survivors and dead letters (write_export). Raises NothingForAgency,
    uploading nothing, when the source holds no record of the agency."""
    validator = RecordValidator(agency_infos(agencies), options.agency_id, options.source_label)

    async def extract(dead_path: Path) -> Extracted:
        deduper, reasons = await _fold(ctx, source, validator, dead_path)
        if validator.seen == 0:
            raise NothingForAgency(
                f"agency {options.agency_id}: nothing to export: {options.source_label} holds "
                "no record of this agency"
            )
        return Extracted(deduper, deduper.counts, reasons, validator.fingerprint)

    return await write_export(ctx, store, options, extract, phase="read+validate")


async def write_export(
    ctx: RunContext, store: ObjectStore, options: ExportOptions, extract: Extract, *, phase: str
) -> JobOutcome:
    """Write the artifacts of what extract reads, upload them (not in a dry run), record the run.

    Artifacts are written to a temporary local directory while the records stream in, then
    uploaded under `exports/agency_id=<id>/run_id=<run_id>/` write-once (put_if_absent; an
    identical object from an earlier attempt of the same run is accepted), `manifest.json`
    last: readers trust an export only once its manifest exists.
    """
    prefix = export_prefix(options.agency_id, ctx.run_id)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="etl-agency-export-", dir=options.temp_dir) as tmp:
        work = Path(tmp)
        with _timed(timings, phase), ctx.span("extract_transform"):
            extracted = await extract(work / DEADLETTER_FILE)
        with _timed(timings, "write"), ctx.span("write_artifacts"):
            artifacts = _write_records(extracted.rows, work, options.formats)
            reasons, fingerprint = extracted.reasons, extracted.fingerprint
            artifacts.append(_artifact(work / DEADLETTER_FILE, sum(reasons.values())))
            counts = attrs.evolve(extracted.counts, bytes_out=sum(a.size for a in artifacts))
            del extracted  # the rows live in the files now: free them before the upload
        manifest = _manifest(ctx.run_id, options, counts, reasons, artifacts, prefix)
        keys = tuple(prefix + name for name in [a.name for a in artifacts] + [MANIFEST_FILE])
        if not ctx.dry_run:
            with _timed(timings, "upload"), ctx.span("upload", artifacts=len(keys)):
                for artifact in artifacts:
                    await put_once(store, prefix + artifact.name, artifact.path.read_bytes())
                await put_once(store, prefix + MANIFEST_FILE, manifest)
    await ctx.record_partition(
        PartitionRecord(
            run_id=ctx.run_id,
            job=ctx.job,
            partition=f"agency_id={options.agency_id}",
            input_fingerprint=fingerprint,
            counts=counts,
            agency_id=options.agency_id,
            status=PartitionStatus.DRY_RUN if ctx.dry_run else PartitionStatus.PUBLISHED,
            artifacts=keys,
        )
    )
    summary: dict[str, Any] = {
        "export": prefix + (" (dry run: nothing uploaded)" if ctx.dry_run else ""),
        "dead-letter reasons": ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())) or "-",
        "timings": ", ".join(f"{phase} {seconds:.2f}s" for phase, seconds in timings.items()),
    }
    return JobOutcome(counts=counts, artifacts=() if ctx.dry_run else keys, summary=summary)


@contextlib.contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        timings[phase] = time.monotonic() - started


async def _fold(
    ctx: RunContext, source: RecordSource, validator: RecordValidator, dead_path: Path
) -> tuple[Deduper, collections.Counter[str]]:
    """Validate every batch into the Deduper, streaming dead letters to dead_path."""
    deduper = Deduper()
    reasons: collections.Counter[str] = collections.Counter()
    with dead_path.open("wb") as dead_file:
        async for batch in source.batches(validator.agency_id):
            for result in validator.validate(batch.records):
                for dead in result.dead_letters:
                    dead_file.write(dead_letter_line(dead, ctx.run_id) + b"\n")
                    reasons[dead.reason] += 1
                deduper.add(result)
            ctx.progress(f"{ctx.job}: {validator.seen:,} records read")
    return deduper, reasons


def _write_records(rows: Iterable[bytes], work: Path, formats: tuple[str, ...]) -> list[Artifact]:
    """The rows, in the order given, in one pass to every requested format."""
    ndjson = (work / RECORD_FILES["ndjson"]).open("wb") if "ndjson" in formats else None
    csv_file = (
        (work / RECORD_FILES["csv"]).open("w", newline="", encoding="utf-8")
        if "csv" in formats
        else None
    )
    written = 0
    try:
        writer = CsvWriter(csv_file) if csv_file is not None else None
        for row in rows:
            if ndjson is not None:
                ndjson.write(row + b"\n")
            if writer is not None:
                writer.write(row)
            written += 1
    finally:
        for file in (ndjson, csv_file):
            if file is not None:
                file.close()
    return [_artifact(work / RECORD_FILES[name], written) for name in FORMATS if name in formats]


def _artifact(path: Path, rows: int) -> Artifact:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return Artifact(path.name, path, rows, path.stat().st_size, digest.hexdigest())


def _manifest(
    run_id: str,
    options: ExportOptions,
    counts: Counts,
    reasons: Mapping[str, int],
    artifacts: list[Artifact],
    prefix: str,
) -> bytes:
    """Deterministic for the same run and records (no timestamps), so a retry can re-put it."""
    document = {
        "run_id": run_id,
        "agency_id": options.agency_id,
        "source": options.source_label,
        "counts": counts,
        "dead_letter_reasons": dict(sorted(reasons.items())),
        "artifacts": [
            {"key": prefix + a.name, "rows": a.rows, "bytes": a.size, "sha256": a.sha256}
            for a in artifacts
        ],
    }
    return orjson.dumps(serde.unstructure(document), option=orjson.OPT_INDENT_2) + b"\n"
