"""Promote one agency's bronze to silver: plan, skip if up to date, transform, publish, account."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import functools
from collections.abc import Callable

import attrs
from etl_core.errors import InvariantViolation
from etl_core.failpoints import FailpointObjectStore, failpoint
from etl_core.model import Counts, PartitionRecord
from etl_core.ports import ObjectStore
from etl_core.runner import JobOutcome, RunContext

from data_pipeline.accounting import Accounting
from data_pipeline.agencies import parse_agencies
from data_pipeline.corrected_bronze import with_corrections
from data_pipeline.generations import (
    DRY_RUN,
    UNCHANGED,
    Committed,
    Inspection,
    commit,
    inspect,
    would_commit,
)
from data_pipeline.parallel import FileTransformer, choose_workers
from data_pipeline.plan import Plan, make_plan
from data_pipeline.publish import PartitionPublisher
from data_pipeline.silver_output import DEFAULT_ROWS_PER_FILE, build_output
from data_pipeline.transform import FileResult

JOB = "bronze_to_silver"


@attrs.frozen(kw_only=True)
class PromoteOptions:
    """What to promote and how."""

    agency_id: int
    first: dt.date | None = None
    last: dt.date | None = None
    reprocess: bool = False
    workers: int | None = None  # None: os.cpu_count(), inline for small inputs
    in_flight: int | None = None  # bronze files read and not yet folded; None: 2 per worker
    rows_per_file: int = DEFAULT_ROWS_PER_FILE
    agencies_key: str = "agencies.csv"
    # Sees each bronze file's result as it is folded in (replay_dead_letters follows its rows).
    on_file: Callable[[FileResult], None] | None = attrs.field(default=None, eq=False)


async def promote(
    ctx: RunContext, store: ObjectStore, bronze: ObjectStore, options: PromoteOptions
) -> JobOutcome:
    """Publish the agency's silver partitions in range into store; bronze is only read.

    Writes nothing when every partition in range was published from the same input (unless
    options.reprocess), and nothing at all in a dry run.
    """
    # The agency's stored corrections (replay_dead_letters) are part of its input.
    bronze = await with_corrections(store, bronze, options.agency_id)
    with ctx.span("plan"):
        plan = await make_plan(
            bronze,
            options.agency_id,
            agencies_key=options.agencies_key,
            first=options.first,
            last=options.last,
        )
    for key in plan.ignored:
        ctx.log.warning("%s: not a bronze file (.ndjson or .ndjson.gz); ignored", key)
    failpoint(f"{JOB}.planned")
    if not plan.days:
        return _nothing_to_do(plan)
    store = FailpointObjectStore(store, f"{JOB}.store")
    publisher = PartitionPublisher(store)
    damaged: frozenset[str] = frozenset()
    if not options.reprocess:
        current = {p: await publisher.current(p) for p in plan.partitions}
        found = {p: await inspect(store, p, manifest) for p, manifest in current.items()}
        damaged = frozenset(p for p, inspection in found.items() if inspection.missing)
        for partition in sorted(damaged):
            missing = ", ".join(found[partition].missing)
            ctx.log.warning(
                "%s: committed files are missing (%s); republishing", partition, missing
            )
        fresh = (
            m is not None and m.input_fingerprint == plan.fingerprint for m in current.values()
        )
        if not damaged and all(fresh):
            return await _up_to_date(ctx, store, plan, found)
    accounting = await _transform(ctx, bronze, plan, options)
    return await _publish_all(ctx, publisher, plan, accounting, options, damaged)


def _nothing_to_do(plan: Plan) -> JobOutcome:
    what = "no bronze files" if not plan.files else "no bronze partitions in the date range"
    return JobOutcome(summary={"outcome": f"nothing to do: {what} for agency {plan.agency_id}"})


async def _up_to_date(
    ctx: RunContext, store: ObjectStore, plan: Plan, found: dict[str, Inspection]
) -> JobOutcome:
    """Record the partitions as unchanged (no body read); remove leftovers of crashed runs."""
    removed = 0
    for partition, inspection in found.items():
        if not ctx.dry_run:  # usually there are none
            for key in inspection.leftovers:
                await store.delete(key)
            removed += len(inspection.leftovers)
        await ctx.record_partition(
            PartitionRecord(
                run_id=ctx.run_id,
                job=ctx.job,
                partition=partition,
                input_fingerprint=plan.fingerprint,
                counts=Counts(),
                agency_id=plan.agency_id,
                status=DRY_RUN if ctx.dry_run else UNCHANGED,
            )
        )
    summary: dict[str, object] = {
        "outcome": f"up to date: {len(found)} partitions already published from this input",
    }
    if removed:
        summary["leftovers removed"] = removed
    return JobOutcome(summary=summary)


async def _transform(
    ctx: RunContext, bronze: ObjectStore, plan: Plan, options: PromoteOptions
) -> Accounting:
    agencies = parse_agencies(await bronze.get(plan.agencies.key), source=plan.agencies.key)
    if plan.agency_id not in agencies:
        ctx.log.warning(
            "agency %s is not in %s: its rows go to dead-letter", plan.agency_id, plan.agencies.key
        )
    workers = choose_workers(options.workers, plan.files)
    in_flight = options.in_flight or 2 * workers
    accounting = Accounting(days=frozenset(plan.days))
    rows = 0
    with ctx.span("transform", files=len(plan.files), workers=workers, bytes_in=plan.bytes_in):
        async with FileTransformer(agencies, plan.agency_id, workers, in_flight) as transformer:
            async for result in transformer.results(bronze, plan.files):
                accounting.add(result)
                if options.on_file is not None:
                    options.on_file(result)
                rows += result.rows_in
                ctx.progress(
                    f"agency {plan.agency_id}: {accounting.files}/{len(plan.files)} files, "
                    f"{rows:,} rows"
                )
                failpoint(f"{JOB}.transformed")
    return accounting


async def _publish_all(
    ctx: RunContext,
    publisher: PartitionPublisher,
    plan: Plan,
    accounting: Accounting,
    options: PromoteOptions,
    damaged: frozenset[str],
) -> JobOutcome:
    # Sorting and joining a large agency takes a while: off the event loop, so that heartbeats
    # keep renewing the lease meanwhile.
    survivors = await asyncio.to_thread(accounting.survivors, plan.agency_id)
    total = Counts()
    statuses: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    artifacts: list[str] = []
    for day in plan.days:
        partition = plan.partition(day)
        silver = survivors.pop(day, [])
        tally = accounting.tallies.get(day)
        dead_letters = tally.dead_letters if tally is not None else []
        reasons.update(dead.reason for dead in dead_letters)
        counts = accounting.partition_counts(day, len(silver))
        output = await asyncio.to_thread(
            functools.partial(build_output, rows_per_file=options.rows_per_file),
            partition, ctx.run_id, silver, dead_letters, counts,
        )  # fmt: skip
        del silver, dead_letters
        force = options.reprocess or partition in damaged
        with ctx.span("publish", partition=partition, rows_out=counts.rows_out):
            if ctx.dry_run:
                committed = Committed(DRY_RUN)
                statuses[await would_commit(publisher, output, force)] += 1
            else:
                committed = await commit(
                    publisher,
                    output,
                    run_id=ctx.run_id,
                    input_fingerprint=plan.fingerprint,
                    force=force,
                )
                statuses[committed.status] += 1
        failpoint(f"{JOB}.before_record")
        written = committed.written
        bytes_out = sum(len(output.files[key]) for key in written if key in output.files)
        record = PartitionRecord(
            run_id=ctx.run_id,
            job=ctx.job,
            partition=partition,
            input_fingerprint=plan.fingerprint,
            counts=attrs.evolve(counts, bytes_out=bytes_out),
            agency_id=plan.agency_id,
            status=committed.status,
            artifacts=written,
        )
        await ctx.record_partition(record)
        total += record.counts
        artifacts.extend(key for key in written if key.endswith(".json"))
        failpoint(f"{JOB}.partition_done")
    if not total.balanced:
        raise InvariantViolation(f"agency {plan.agency_id}: run totals do not balance: {total}")
    failpoint(f"{JOB}.before_finish")
    return JobOutcome(
        counts=total,
        artifacts=tuple(artifacts),
        summary={
            "outcome": _describe_statuses(statuses, len(plan.days)),
            "dead-letter reasons": _describe_reasons(reasons),
        },
    )


def _describe_statuses(statuses: collections.Counter[str], total: int) -> str:
    parts = [f"{count} {status}" for status, count in sorted(statuses.items())]
    return f"{', '.join(parts)} of {total} partitions"


def _describe_reasons(reasons: collections.Counter[str]) -> str:
    """Most frequent first; ties by name."""
    items = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{reason} {count}" for reason, count in items) or "none"
