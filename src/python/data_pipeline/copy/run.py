"""get_s3_files as one recorded run: copy, write the copy manifest, ledger rows, outcome.

The manifest (`_copies/get_s3_files/agency_id=<id>/<run_id>.json` in the destination) lists
every listed source object with its etag, size, destination key and action. A run that changed
nothing and met no conflict or failure writes no manifest: a re-run leaves the destination
byte-identical, and its counts (all duplicates) are in the run history.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from etl_core import clock
from etl_core.errors import EtlError, TemporaryFailure
from etl_core.model import PartitionRecord, PartitionStatus
from etl_core.ports import ObjectStore
from etl_core.runner import JobOutcome, RunContext

from data_pipeline.copy.documents import MIB, CopyReport, copy_documents
from data_pipeline.copy.plan import Action, CopyOptions, Entry, manifest, manifest_key

_LISTED = 5  # conflicts / failures named in the summary and the error (all are in the manifest)


@attrs.frozen(kw_only=True)
class CopyJob:
    """What the job module resolved: stores' URLs (for reports) and the copy's options."""

    source_url: str  # redacted
    destination_url: str  # redacted
    options: CopyOptions
    concurrency: int = 8
    max_inflight_bytes: int = 256 * MIB


async def get_s3_files(
    ctx: RunContext, source: ObjectStore, destination: ObjectStore, job: CopyJob
) -> JobOutcome:
    """Copy, then record: manifest (if anything happened), one ledger row per dt partition."""
    tally: dict[Action, int] = dict.fromkeys(Action, 0)

    def progress(done: int, entry: Entry) -> None:
        tally[entry.action] += 1
        if entry.action in (Action.CONFLICT, Action.FAILED):
            ctx.log.warning("%s %s: %s", entry.action.value, entry.source_key, entry.reason)
        ctx.progress(
            f"get_s3_files: {done} done: {tally[Action.COPIED] + tally[Action.REPLACED]} "
            f"copied, {tally[Action.SKIPPED]} skipped, "
            f"{tally[Action.CONFLICT] + tally[Action.FAILED]} not copied"
        )

    options = job.options
    with ctx.span("copy_documents", prefix=options.agency_prefix, overwrite=options.overwrite):
        report = await copy_documents(
            source,
            destination,
            options,
            concurrency=job.concurrency,
            max_inflight_bytes=job.max_inflight_bytes,
            dry_run=ctx.dry_run,
            progress=progress,
        )
    key: str | None = None
    failure: EtlError | None = None
    if not ctx.dry_run and _changed_anything(report):
        key = manifest_key(options.agency_id, ctx.run_id)
        try:
            with ctx.span("write_manifest", key=key):
                await destination.put(key, _manifest_body(ctx, job, report))
        except EtlError as exc:  # the ledger still records what was copied
            key, failure = None, exc
    await _record_partitions(ctx, report, key)
    if failure is not None:
        raise failure
    _raise_if_only_temporary(report, ctx.settings.max_dead_letter_ratio)
    return JobOutcome(
        counts=report.counts(),
        artifacts=(key,) if key is not None else (),
        summary=_summary(job, report, ctx.dry_run),
        dead_letters=tuple(
            f"{entry.source_key} ({entry.action.value}: {entry.reason})"
            for entry in report.entries
            if entry.action in (Action.CONFLICT, Action.FAILED)
        ),
    )


def _changed_anything(report: CopyReport) -> bool:
    return any(entry.action is not Action.SKIPPED for entry in report.entries)


def _manifest_body(ctx: RunContext, job: CopyJob, report: CopyReport) -> bytes:
    options = job.options
    header: dict[str, Any] = {
        "job": ctx.job,
        "run_id": ctx.run_id,
        "agency_id": options.agency_id,
        "source": job.source_url,
        "source_prefix": options.agency_prefix,
        "destination": job.destination_url,
        "overwrite": options.overwrite,
        "dt": options.day,
        "written_at": clock.now(),
        "counts": report.counts(),
        "ignored": list(report.ignored),
    }
    return (json.dumps(manifest(header, report.entries), indent=1) + "\n").encode()


async def _record_partitions(ctx: RunContext, report: CopyReport, key: str | None) -> None:
    by_partition: dict[str, list[Entry]] = {}
    for entry in report.entries:
        by_partition.setdefault(entry.partition, []).append(entry)
    counts = report.partition_counts()
    for partition, entries in sorted(by_partition.items()):
        if ctx.dry_run:
            status = PartitionStatus.DRY_RUN
        else:
            status = (
                PartitionStatus.PUBLISHED if counts[partition].rows_out else PartitionStatus.SKIPPED
            )
        await ctx.record_partition(
            PartitionRecord(
                run_id=ctx.run_id,
                job=ctx.job,
                partition=partition,
                input_fingerprint=_fingerprint(entries),
                counts=counts[partition],
                agency_id=ctx.agency_id,
                status=status,
                artifacts=(key,) if key is not None else (),
            )
        )


def _fingerprint(entries: Iterable[Entry]) -> str:
    """sha256 over the sorted (source key, size, etag) of the partition's source objects."""
    digest = hashlib.sha256(b"get_s3_files/1\n")
    for entry in sorted(entries, key=lambda entry: entry.source_key):
        digest.update(json.dumps([entry.source_key, entry.size, entry.etag]).encode() + b"\n")
    return digest.hexdigest()


def _raise_if_only_temporary(report: CopyReport, max_ratio: float | None) -> None:
    """Failures a re-run should fix, and nothing else, that fail the run: exit 75, not 1."""
    counts = report.counts()
    if max_ratio is None or counts.rows_in == 0:
        return
    if counts.rows_dead_letter / counts.rows_in <= max_ratio:
        return
    failed = report.with_action(Action.CONFLICT, Action.FAILED)
    if all(entry.temporary for entry in failed):
        raise TemporaryFailure(
            f"{len(failed)} of {counts.rows_in} objects could not be copied for now "
            f"(throttling, or the source changed while copying); a re-run copies only those: "
            f"{_listing(failed)}"
        )


def _summary(job: CopyJob, report: CopyReport, dry_run: bool) -> Mapping[str, object]:
    """Where from and to, what happened, the first conflicts and failures (artifacts: the
    manifest, printed by the runner)."""
    options = job.options
    partitions = sorted({entry.partition.split("/")[-1] for entry in report.entries})
    verb = "would be " if dry_run else ""
    fields: dict[str, object] = {
        "source": f"{job.source_url.rstrip('/')}/{options.agency_prefix}",
        "destination": f"{job.destination_url.rstrip('/')}/bronze/agency_id={options.agency_id}/",
        f"{verb}copied": len(report.with_action(Action.COPIED)),
        f"{verb}replaced": len(report.with_action(Action.REPLACED)),
        "already present (skipped)": len(report.with_action(Action.SKIPPED)),
        "partitions": _range(partitions),
    }
    conflicts = report.with_action(Action.CONFLICT)
    if conflicts:
        fields["conflicts (not copied)"] = _listing(conflicts)
    failed = report.with_action(Action.FAILED)
    if failed:
        fields["failed"] = _listing(failed)
    if report.ignored:
        fields["ignored folder markers"] = len(report.ignored)
    if not report.entries:
        fields["note"] = "no documents found under the source prefix"
    return fields


def _range(partitions: list[str]) -> str | None:
    if not partitions:
        return None
    if len(partitions) == 1:
        return partitions[0]
    return f"{len(partitions)} ({partitions[0]} .. {partitions[-1]})"


def _listing(entries: list[Entry]) -> str:
    shown = "; ".join(f"{entry.source_key} ({entry.reason})" for entry in entries[:_LISTED])
    more = len(entries) - _LISTED
    return shown + (f"; and {more} more (see the manifest)" if more > 0 else "")
