"""Replay dead-letter rows through the transform; rows that now pass land in silver exactly once.

Corrections are input, and a replay is a bronze -> silver pass of the agency:
1. Select the agency's current dead-letter rows (those the newest manifests list): all, or those
   a given run wrote.
2. Store the supplied corrections that change anything, write-once, under
   `corrections/agency_id=<id>/`. `promote` reads bronze through them (corrected_bronze) and they
   are part of the input fingerprint, so every later bronze_to_silver run (fast path,
   --reprocess, or a run after new bronze) computes from the same corrected input: a replayed row
   is never undone and never counted twice.
3. Run `promote` over the agency's whole bronze (its dedupe scope), under the lease a
   bronze_to_silver run of the agency takes. Partitions whose content changed get a new
   generation: silver with the rows that now pass (greatest updated_at wins, across partitions),
   dead-letter without them; the others are restamped with the new input fingerprint.
4. Follow that pass (PromoteOptions.on_file) to account every replayed row as silver, duplicate
   or dead-letter again (with its new reason): rows_in = replayed rows = out + duplicate + dead,
   recorded per partition.
A replay that would change nothing (no new correction, every row fails as before) writes
nothing. If the transform's verdict changed but its version (fingerprint.TRANSFORM_VERSION) did
not, the fast path would hide the fix: the replay then republishes the agency (reprocess).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping

import attrs
from etl_core.errors import ConfigError, RunNotFound
from etl_core.model import Counts, PartitionRecord
from etl_core.ports import ObjectStore
from etl_core.runner import JobOutcome, RunContext

from data_pipeline.agencies import Agency, parse_agencies
from data_pipeline.bronze_to_silver import JOB as PROMOTE_JOB
from data_pipeline.bronze_to_silver import PromoteOptions, promote
from data_pipeline.child_runs import CapturingContext
from data_pipeline.corrections import (
    Correction,
    StoredCorrections,
    corrections_body,
    load_corrections,
)
from data_pipeline.layout import BRONZE_PREFIX
from data_pipeline.leased import agency_lease, run_leased
from data_pipeline.parallel import transform_for_agency
from data_pipeline.publish import ConcurrentPublish, PartitionManifest
from data_pipeline.replay_select import (
    DeadRow,
    Group,
    current_dead_letters,
    group_rows,
    resolve_corrections,
)
from data_pipeline.replay_track import Tally, Tracker, classify, unchanged_tallies, watching_view
from data_pipeline.silver_output import DEFAULT_ROWS_PER_FILE
from data_pipeline.validate import ValidRow

UNCHANGED = "unchanged"


@attrs.frozen(kw_only=True)
class ReplayOptions:
    """Which rows to replay, with which corrections, and how to run the pass."""

    agency_id: int
    source_run: str | None = None  # None: every current dead-letter row of the agency
    corrections: tuple[Correction, ...] = ()
    workers: int | None = None
    in_flight: int | None = None
    rows_per_file: int = DEFAULT_ROWS_PER_FILE
    agencies_key: str = "agencies.csv"


async def replay(
    ctx: RunContext, store: ObjectStore, bronze: ObjectStore, options: ReplayOptions
) -> JobOutcome:
    """Replay under the agency's bronze_to_silver lease. Raises LeaseHeld if another run holds
    it, ConfigError if corrections match no selected row or the source run is unknown."""
    inner = CapturingContext(
        run_id=ctx.run_id,
        job=ctx.job,
        agency_id=options.agency_id,
        dry_run=ctx.dry_run,
        settings=ctx.settings,
        history=ctx.history,
        log=ctx.log,
        leases=ctx.leases,
        lease_name=agency_lease(PROMOTE_JOB, options.agency_id),
        write=False,  # promote's full-partition rows: the replay records its own
    )
    return await run_leased(inner, lambda: _replay(ctx, inner, store, bronze, options))


async def _replay(
    ctx: RunContext,
    inner: CapturingContext,
    store: ObjectStore,
    bronze: ObjectStore,
    options: ReplayOptions,
) -> JobOutcome:
    with ctx.span("select"):
        current = await current_dead_letters(store, options.agency_id)
        rows = [r for r in current.rows if options.source_run in (None, r.run_id)]
        if options.source_run is not None and not rows:
            await _check_run_known(ctx, options.source_run)
        stored = await load_corrections(store, options.agency_id)
        groups = group_rows(rows, stored)
        resolved = resolve_corrections(options.corrections, groups, stored)
    summary: dict[str, object] = {"selected": _selected(rows, options.source_run)}
    saved: str | None = None
    if resolved.new and ctx.dry_run:
        stored = stored.merged(resolved.new)
    elif resolved.new:
        saved = stored.next_key(ctx.run_id)
        if not await store.put_if_absent(saved, corrections_body(resolved.new, ctx.run_id)):
            raise ConcurrentPublish(f"{saved} was written by another run")
        stored = await load_corrections(store, options.agency_id)  # what later runs will read
    summary["corrections"] = _corrections(len(options.corrections), len(resolved.new), saved)
    texts = {
        (g.source, k): stored.replacement(g.source, k) or g.shown for g in groups for k in g.keys
    }
    agencies = parse_agencies(await bronze.get(options.agencies_key), source=options.agencies_key)
    verdicts = {place: _judge(place, text, agencies, options.agency_id, stored)
                for place, text in texts.items()}  # fmt: skip
    if not groups or not (resolved.new or _changes(groups, texts, verdicts)):
        tallies = unchanged_tallies(groups)
        summary["partitions"] = "nothing written: every selected row fails as it did"
    else:
        record_ids = frozenset(v.record_id for v in verdicts.values() if isinstance(v, ValidRow))
        tallies, outcome = await _pass(
            inner, store, bronze, stored, groups, texts, record_ids, options
        )
        summary["partitions"] = outcome.summary.get("outcome")
    total = await _record(ctx, inner, current.manifests, tallies, options.agency_id)
    summary.update(_outcome(tallies, total))
    artifacts = [saved] if saved else []
    artifacts += [k for r in inner.captured for k in r.artifacts if k.startswith("_manifests/")]
    return JobOutcome(counts=total, artifacts=tuple(artifacts), summary=summary)


async def _pass(
    inner: CapturingContext,
    store: ObjectStore,
    bronze: ObjectStore,
    stored: StoredCorrections,
    groups: tuple[Group, ...],
    texts: Mapping[tuple[str, str], str],
    record_ids: frozenset[str],
    options: ReplayOptions,
) -> tuple[dict[str, Tally], JobOutcome]:
    """promote through a watching view; once more with reprocess if it took the fast path."""
    for reprocess in (False, True):
        inner.captured.clear()
        tracker = Tracker(watching_view(bronze, stored, groups), record_ids)
        promote_options = PromoteOptions(
            agency_id=options.agency_id,
            reprocess=reprocess,
            workers=options.workers,
            in_flight=options.in_flight,
            rows_per_file=options.rows_per_file,
            agencies_key=options.agencies_key,
            on_file=tracker,
        )
        outcome = await promote(inner, store, tracker.view, promote_options)
        if tracker.files or reprocess:
            break
        inner.log.warning(
            "the transform now judges replayed rows differently, yet the input fingerprint is "
            "unchanged (TRANSFORM_VERSION not bumped?): republishing agency %s",
            options.agency_id,
        )
    return classify(groups, tracker, texts), outcome


def _judge(
    place: tuple[str, str],
    text: str,
    agencies: Mapping[int, Agency],
    agency_id: int,
    stored: StoredCorrections,
) -> ValidRow | str | None:
    """What the transform makes of the line alone: a ValidRow or a reason. None: unknown (an
    uncorrected line that was not UTF-8; its bytes are not in the dead-letter row)."""
    source, key = place
    if "\ufffd" in text and stored.replacement(source, key) is None:
        return None
    result = transform_for_agency(BRONZE_PREFIX + source, text.encode("utf-8"), agencies, agency_id)
    return result.valid_rows[0] if result.valid_rows else result.dead_letters[0].reason


def _changes(
    groups: tuple[Group, ...],
    texts: Mapping[tuple[str, str], str],
    verdicts: Mapping[tuple[str, str], ValidRow | str | None],
) -> bool:
    """Would a pass change any selected row: another text, or another verdict than its reason?"""
    for group in groups:
        for key in group.keys:
            verdict = verdicts[(group.source, key)]
            if texts[(group.source, key)] != group.shown or verdict not in (None, group.reason):
                return True
    return False


async def _record(
    ctx: RunContext,
    inner: CapturingContext,
    manifests: Mapping[str, PartitionManifest],
    tallies: Mapping[str, Tally],
    agency_id: int,
) -> Counts:
    """One ledger row per partition the replay touched: its replayed rows' counts, the pass's
    status, fingerprint and artifacts. Returns the total."""
    captured = {record.partition: record for record in inner.captured}
    total = Counts()
    for partition in sorted(set(captured) | set(tallies)):
        tally, record = tallies.get(partition, Tally()), captured.get(partition)
        manifest = manifests.get(partition)
        fingerprint = manifest.input_fingerprint if manifest is not None else ""
        bytes_out = record.counts.bytes_out if record is not None else 0
        row = PartitionRecord(
            run_id=ctx.run_id,
            job=ctx.job,
            partition=partition,
            input_fingerprint=record.input_fingerprint if record is not None else fingerprint,
            counts=attrs.evolve(tally.counts, bytes_out=bytes_out),
            agency_id=agency_id,
            status=record.status if record is not None else UNCHANGED,
            artifacts=record.artifacts if record is not None else (),
        )
        await ctx.record_partition(row)
        total += row.counts
    return total


async def _check_run_known(ctx: RunContext, run_id: str) -> None:
    try:
        await ctx.history.get_run(run_id)
    except RunNotFound:
        raise ConfigError(
            f"--source-run {run_id}: not in the run history, and no current dead-letter row "
            "names it"
        ) from None


def _selected(rows: list[DeadRow], source_run: str | None) -> str:
    partitions = {row.partition for row in rows}
    which = f"written by run {source_run}" if source_run else "every current one"
    return f"{len(rows)} dead-letter rows in {len(partitions)} partitions ({which})"


def _corrections(supplied: int, new: int, saved: str | None) -> str:
    if not supplied:
        return "none supplied"
    if saved:
        return f"{supplied} supplied: {new} stored in {saved}"
    if new:
        return f"{supplied} supplied: {new} new (dry run: not stored)"
    return f"{supplied} supplied: nothing new to store"


def _outcome(tallies: Mapping[str, Tally], total: Counts) -> dict[str, object]:
    reasons: collections.Counter[str] = collections.Counter()
    for tally in tallies.values():
        reasons.update(tally.reasons)
    fields: dict[str, object] = {
        "replayed": f"{total.rows_in} rows: {total.rows_out} now in silver, "
        f"{total.rows_duplicate} duplicates, {total.rows_dead_letter} still dead-letter",
        "still failing": ", ".join(f"{r} {n}" for r, n in reasons.most_common()) or "none",
    }
    missing = sum(tally.missing for tally in tallies.values())
    if missing:
        fields["not found in bronze"] = f"{missing} selected rows (bronze changed since)"
    return fields
