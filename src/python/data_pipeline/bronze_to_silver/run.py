"""Fold one agency's new bronze into the silver and dead-letter tables, exactly once.

Flow: list the agency's bronze -> compare it with the ledger of silver's committed fold version
(fold_ledger) -> split the files not folded in before into batches of ~64 MB -> per batch:
transform (transform, parallel), dedupe among themselves (dedupe, accounting), then fold_commit:
write the fold's ledger -> commit its dead letters -> merge its survivors into silver (the
publish: silver's commit records the fold version) -> record per-partition counts. A folded
file that changed or vanished, another agencies file, or --reprocess rebuilds the agency from
its whole bronze instead.

A bad file never blocks the agency: a key that names no partition (dt=2024-02-30) is skipped
and reported (plan), a body that cannot be read (broken gzip) is one file-level dead letter
(transform.unreadable_batch) and is read again once fixed (its new etag means a rebuild).

Crash safety: every step before silver's commit is redone by the re-run under the same fold
version (the ledger is overwritten, the dead-letter table replaces the version's earlier attempt),
and after it the re-run finds nothing new.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs
from etl_core.failpoints import failpoint
from etl_core.model import ObjectInfo, PartitionStatus
from etl_core.ports import ObjectStore, SilverTables
from etl_core.runner import JobOutcome, RunContext

from data_pipeline.bronze_to_silver.commit import (
    DEFAULT_FOLD_BYTES,
    JOB,
    Fold,
    RunTally,
    commit_fold,
    split_by_bytes,
)
from data_pipeline.bronze_to_silver.corrected_bronze import with_corrections
from data_pipeline.bronze_to_silver.fingerprint import input_fingerprint
from data_pipeline.bronze_to_silver.ledger import FoldedFile, FoldLedger, load_ledger
from data_pipeline.bronze_to_silver.legacy_layout import legacy_files, remove_legacy_files
from data_pipeline.bronze_to_silver.plan import Plan, in_range, make_plan
from data_pipeline.bronze_to_silver.presence import check_bronze_agency, require_known
from data_pipeline.bronze_to_silver.workers import FileTransformer, TransformPool, choose_workers
from data_pipeline.silver.agencies import parse_agencies
from data_pipeline.silver.reasons import DeadLetterReason

if TYPE_CHECKING:
    from data_pipeline.bronze_to_silver.accounting import Accounting
    from data_pipeline.silver.file_transform import FileBatch

__all__ = ["JOB", "PromoteOptions", "promote"]


@attrs.frozen(kw_only=True)
class PromoteOptions:
    """What of the run's agency (ctx.agency_id) to promote, and how. Built once from a job's
    settings (configuration.py) and carried whole by backfill and replay, which only change what
    differs per agency or per pass (attrs.evolve)."""

    first: dt.date | None = None  # fold only new bronze of dt >= first
    last: dt.date | None = None
    reprocess: bool = False  # rebuild the agency from its whole bronze
    workers: int | None = None  # None: os.cpu_count(), inline for small inputs
    in_flight: int | None = None  # bronze files read and not yet folded; None: 2 per worker
    agencies_key: str = "agencies.csv"
    fold_bytes: int = DEFAULT_FOLD_BYTES  # bronze folded per commit: bounds memory
    # Worker processes shared with other agencies of the run (a backfill); None: promote's own.
    pool: TransformPool | None = attrs.field(default=None, eq=False)
    # Sees each bronze file's result as it is folded in (replay_dead_letters follows its rows).
    on_file: Callable[[FileBatch], None] | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Choice:
    """What a run folds in: new files (or all, rebuilding), and the ledger entries it keeps."""

    version: int  # silver's committed fold version before the run
    files: tuple[ObjectInfo, ...]
    rebuild: bool
    kept: tuple[FoldedFile, ...]


async def promote(
    ctx: RunContext,
    store: ObjectStore,
    bronze: ObjectStore,
    tables: SilverTables,
    options: PromoteOptions,
) -> JobOutcome:
    """Fold the agency's new bronze into the tables; bronze is only read. Writes nothing when
    nothing is new (unless options.reprocess), and nothing at all in a dry run."""
    agency_id = ctx.agency_id
    assert agency_id is not None, "bronze_to_silver runs for one agency"
    # The agency's stored corrections (replay_dead_letters) are part of its input.
    bronze = await with_corrections(store, bronze, agency_id)
    with ctx.span("plan"):
        plan = await make_plan(bronze, agency_id, agencies_key=options.agencies_key)
        version = await tables.silver.version(agency_id)
        ledger = await load_ledger(store, agency_id, version)
    for key in plan.ignored:
        ctx.log.warning("%s: not a bronze file (.ndjson or .ndjson.gz); ignored", key)
    for problem in plan.skipped:
        ctx.log.warning("%s: skipped, not folded (the agency's other files are)", problem)
    failpoint(f"{JOB}.planned")
    # An agency unknown to agencies.csv, or without a bronze file to fold, fails: "nothing to
    # do" would pass a typo'd --agency-id off as an agency without data (agency_presence). With
    # bronze files, the agency is checked once there is something to fold (_transform), so a
    # run that finds nothing new reads no body.
    if not plan.files:
        await check_bronze_agency(bronze, plan)
    # A fold that committed its dead letters but not silver was interrupted: rebuilding is the
    # one repair that is right whatever that fold was (a rebuild replaced every dead letter).
    unfinished = await tables.deadletter.version(agency_id) > version
    choice = _choose(ctx, plan, version, ledger, options, unfinished=unfinished)
    if not choice.files:
        return _with_skipped(plan, _up_to_date(plan, version))
    legacy = await legacy_files(store, agency_id) if version == 0 else []
    if legacy:
        ctx.log.warning(
            "agency %s: %d files of the old NDJSON silver layout found: folding its whole bronze "
            "into the Delta tables, then removing them",
            agency_id,
            len(legacy),
        )
    outcome = await _fold_in_pool(ctx, store, bronze, tables, plan, choice, options)
    if legacy and not ctx.dry_run:
        await remove_legacy_files(store, legacy)
        summary = {**outcome.summary, "old layout removed": f"{len(legacy)} files"}
        outcome = attrs.evolve(outcome, summary=summary)
    return _with_skipped(plan, outcome)


def _with_skipped(plan: Plan, outcome: JobOutcome) -> JobOutcome:
    """outcome, its summary naming the bronze files the plan skipped (if any)."""
    if not plan.skipped:
        return outcome
    shown = "; ".join(plan.skipped[:3]) + ("; ..." if len(plan.skipped) > 3 else "")
    summary = {**outcome.summary, "bronze files skipped": f"{len(plan.skipped)} ({shown})"}
    return attrs.evolve(outcome, summary=summary)


def _choose(
    ctx: RunContext,
    plan: Plan,
    version: int,
    ledger: FoldLedger,
    options: PromoteOptions,
    *,
    unfinished: bool,
) -> Choice:
    changes = list(ledger.changes(plan.agencies, plan.files))
    if unfinished:
        changes.append(f"fold {version + 1} was interrupted between its two commits")
    for change in changes[:20]:
        ctx.log.warning("agency %s: %s since fold %s", plan.agency_id, change, version)
    if options.reprocess or changes:
        why = "--reprocess" if options.reprocess else f"{len(changes)} change(s) in its input"
        ctx.log.warning("agency %s: rebuilding from its whole bronze (%s)", plan.agency_id, why)
        return Choice(version, plan.files, True, ())
    folded = ledger.keys()
    files = tuple(
        info
        for info in plan.files
        if info.key not in folded and in_range(plan.day_of(info.key), options.first, options.last)
    )
    return Choice(version, files, False, ledger.files)


def _up_to_date(plan: Plan, version: int) -> JobOutcome:
    return JobOutcome(
        summary={
            "outcome": f"up to date: all {len(plan.files)} bronze files already folded in "
            f"(fold {version})"
        }
    )


async def _fold_in_pool(
    ctx: RunContext,
    store: ObjectStore,
    bronze: ObjectStore,
    tables: SilverTables,
    plan: Plan,
    choice: Choice,
    options: PromoteOptions,
) -> JobOutcome:
    """_fold_all, its folds sharing one pool of worker processes when they need one: a pool per
    fold would start its workers again for every 64 MB of bronze (~0.3 s each on 2 cores)."""
    workers = choose_workers(options.workers, choice.files)
    if options.pool is not None or workers <= 1:
        return await _fold_all(ctx, store, bronze, tables, plan, choice, options)
    async with TransformPool(workers) as pool:
        shared = attrs.evolve(options, pool=pool)
        return await _fold_all(ctx, store, bronze, tables, plan, choice, shared)


async def _fold_all(
    ctx: RunContext,
    store: ObjectStore,
    bronze: ObjectStore,
    tables: SilverTables,
    plan: Plan,
    choice: Choice,
    options: PromoteOptions,
) -> JobOutcome:
    """Fold the chosen files in batches of about options.fold_bytes of bronze, each its own fold
    version and commits, so memory stays bounded by a batch (two while the next is transformed
    as one commits), not by the agency's history. A run cut short keeps the batches it
    committed; the next run folds the rest."""
    batches = split_by_bytes(choice.files, options.fold_bytes)
    folded = list(choice.kept)
    tally = RunTally()
    # The next fold's files are transformed while this fold commits (else the workers idle
    # through every commit): at most two folds' rows are held at once.
    ahead: asyncio.Task[Accounting] | None = None
    try:
        for index, files in enumerate(batches):
            version = choice.version + 1 + index
            folded.extend(FoldedFile.of(info) for info in files)
            ledger = FoldLedger(
                plan.agency_id,
                version,
                agencies=FoldedFile.of(plan.agencies),
                files=tuple(sorted(folded, key=_key)),
                run_id=ctx.run_id,
            )
            if ahead is None:
                accounting = await _transform(ctx, bronze, plan, files, options)
            else:
                accounting, ahead = await ahead, None
            if index + 1 < len(batches):
                following = _transform(ctx, bronze, plan, batches[index + 1], options)
                ahead = asyncio.create_task(following)
            fold = Fold(version, tuple(files), choice.rebuild and index == 0, ledger)
            tally.add(await commit_fold(ctx, store, tables, plan, fold, accounting))
    finally:
        if ahead is not None:  # a commit failed: the fold after it is not wanted
            ahead.cancel()
            await asyncio.gather(ahead, return_exceptions=True)
    status = (
        PartitionStatus.DRY_RUN
        if ctx.dry_run
        else PartitionStatus.REBUILT
        if choice.rebuild
        else PartitionStatus.MERGED
    )
    total = await tally.record(ctx, plan, input_fingerprint(plan.agencies, choice.files), status)
    failpoint(f"{JOB}.before_finish")
    last = choice.version + len(batches)
    versions = f"fold {last}" if len(batches) == 1 else f"folds {choice.version + 1}-{last}"
    return JobOutcome(
        counts=total,
        summary={
            "outcome": (
                f"{'rebuilt' if choice.rebuild else 'folded in'} {len(choice.files)} bronze "
                f"files as {versions}: {total.rows_inserted:,} inserted, "
                f"{total.rows_updated:,} updated, {tally.older:,} older or equal"
                + (" (dry run: nothing written)" if ctx.dry_run else "")
            ),
            "files rewritten": f"{tally.files_removed} removed, {tally.files_added} added "
            f"({tally.rows_rewritten:,} stored rows copied)",
            "dead-letter reasons": tally.describe_reasons(),
        },
    )


def _key(folded: FoldedFile) -> str:
    return folded.key


async def _transform(
    ctx: RunContext,
    bronze: ObjectStore,
    plan: Plan,
    files: Sequence[ObjectInfo],
    options: PromoteOptions,
) -> Accounting:
    # Arrow (~0.15 s to import) comes with the first fold: a run that finds nothing new skips it.
    from data_pipeline.bronze_to_silver.accounting import Accounting

    agencies = parse_agencies(await bronze.get(plan.agencies.key), source=plan.agencies.key)
    require_known(plan.agency_id, agencies, plan.agencies.key)
    workers = options.pool.workers if options.pool else 1  # _fold_in_pool chose inline
    in_flight = options.in_flight or 2 * workers
    days = frozenset(plan.day_of(info.key) for info in files)
    accounting = Accounting(plan.agency_id, days)
    rows = 0
    bytes_in = sum(info.size for info in files)
    with ctx.span("transform", files=len(files), workers=workers, bytes_in=bytes_in):
        transformer = FileTransformer(agencies, plan.agency_id, workers, in_flight, options.pool)
        async with transformer:
            async for result in transformer.results(bronze, files):
                accounting.add(result)
                for dead in result.dead_letters:
                    if (
                        dead.reason == DeadLetterReason.UNREADABLE_FILE
                    ):  # one dead letter; the run carries on
                        ctx.log.warning("%s", dead.detail)
                if options.on_file is not None:
                    options.on_file(result)
                rows += result.rows_in
                ctx.progress(
                    f"agency {plan.agency_id}: {accounting.files}/{len(files)} files, {rows:,} rows"
                )
                failpoint(f"{JOB}.transformed")
    return accounting
