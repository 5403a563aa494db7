"""Replay dead-letter rows through the transform; rows that now pass land in silver exactly once.

Corrections are input, and a replay is a bronze -> silver pass of the agency:
1. Select the agency's current dead-letter rows (the dead-letter table's rows of bronze files
   silver's fold ledger covers, as silver's fold left them: a run killed between the two tables'
   commits left newer dead letters that silver does not agree with yet): all, or those a given
   run wrote (replay_select). A file-level dead letter (unreadable_file) has no line: it is
   reported, not replayed. A line that was not UTF-8 is judged by its exact bytes (raw_bytes),
   not by its U+FFFD text.
2. Store the supplied corrections that change anything, write-once, under
   `corrections/agency_id=<id>/`. `promote` reads bronze through them (corrected_bronze), and a
   corrected file lists with another etag, so the fold ledger sees it changed: every later
   bronze_to_silver run computes from the same corrected input, and a replayed row is never
   undone and never counted twice.
3. Run `promote` under the lease a bronze_to_silver run of the agency takes, over the bronze the
   ledger covers (new bronze is left to the next bronze_to_silver run, which counts it). The
   changed etags make it rebuild the agency: silver gets the rows that now pass (greatest
   updated_at wins, across partitions) with `_run_id` = the replay's run, and the agency's dead
   letters are replaced by those still failing.
4. Follow that pass (PromoteOptions.on_file) to account every replayed row as silver, duplicate
   or dead-letter again (with its new reason): rows_in = replayed rows = out + duplicate + dead,
   recorded per partition. The verdict of each replayed (source, line) is noted in
   `_replays/agency_id=<id>/<run_id>.ndjson` (replay_track), named by the run's artifacts and by
   the ledger rows of the partitions it covers.
A replay that would change nothing (no new correction, every row fails as before) writes
nothing. If the transform's verdict changed but its version (fingerprint.TRANSFORM_VERSION) did
not, the ledger would see nothing to redo: the replay then rebuilds the agency (reprocess).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping

import attrs
from etl_core.errors import ConfigError, RunNotFound
from etl_core.model import Counts, ObjectInfo, PartitionRecord, PartitionStatus, RunStatus
from etl_core.ports import ObjectStore, SilverTables
from etl_core.runner import JobOutcome, RunContext

from data_pipeline.bronze_to_silver.corrections import (
    Correction,
    StoredCorrections,
    corrections_body,
    load_corrections,
)
from data_pipeline.bronze_to_silver.fingerprint import input_fingerprint
from data_pipeline.bronze_to_silver.ledger import FoldLedger, load_ledger
from data_pipeline.bronze_to_silver.run import JOB as PROMOTE_JOB
from data_pipeline.bronze_to_silver.run import PromoteOptions, promote
from data_pipeline.replay.select import (
    DeadRow,
    Group,
    current_dead_letters,
    group_rows,
    resolve_corrections,
)
from data_pipeline.replay.track import (
    Tally,
    Tracker,
    classify,
    note_body,
    note_key,
    unchanged_tallies,
    watching_view,
)
from data_pipeline.runs.child_runs import CapturingContext
from data_pipeline.runs.leased import agency_lease, run_leased
from data_pipeline.silver.agencies import parse_agencies
from data_pipeline.silver.reasons import DeadLetterReason
from data_pipeline.silver.validate import (
    AgencyInfo,
    Rejected,
    ValidRow,
    agency_infos,
    validate_line,
)
from data_pipeline.store.layout import BRONZE_PREFIX, partition_of
from data_pipeline.store.put_once import put_once


@attrs.frozen(kw_only=True)
class ReplayOptions:
    """Which rows to replay, with which corrections, and how to run the pass."""

    agency_id: int
    source_run: str | None = None  # None: every current dead-letter row of the agency
    corrections: tuple[Correction, ...] = ()
    promote: PromoteOptions = PromoteOptions()  # the pass through bronze_to_silver


async def replay(
    ctx: RunContext,
    store: ObjectStore,
    bronze: ObjectStore,
    tables: SilverTables,
    options: ReplayOptions,
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
        write=False,  # promote's whole-agency rows: the replay records its own
    )
    return await run_leased(inner, lambda: _replay(ctx, inner, store, bronze, tables, options))


async def _replay(
    ctx: RunContext,
    inner: CapturingContext,
    store: ObjectStore,
    bronze: ObjectStore,
    tables: SilverTables,
    options: ReplayOptions,
) -> JobOutcome:
    agency_id = options.agency_id
    with ctx.span("select"):
        ledger = await load_ledger(store, agency_id, await tables.silver.version(agency_id))
        base = await _unrecorded_base(ctx, store, ledger)
        folded = ledger.keys()
        rows = [
            r
            for r in await current_dead_letters(tables, agency_id, base)
            if BRONZE_PREFIX + r.source in folded and options.source_run in (None, r.run_id)
        ]  # rows of files no committed fold covers are an unfinished fold's: the pass drops them
        # A file-level dead letter has no line to replay: fixing the file in bronze (a new
        # etag) is what makes the next bronze_to_silver run read it again.
        unreadable = [r for r in rows if r.reason == DeadLetterReason.UNREADABLE_FILE]
        rows = [r for r in rows if r.reason != DeadLetterReason.UNREADABLE_FILE]
        if options.source_run is not None and not rows:
            await _check_run_known(ctx, options.source_run)
        stored = await load_corrections(store, agency_id)
        groups = group_rows(rows, stored)
        resolved = resolve_corrections(options.corrections, groups, stored)
    summary: dict[str, object] = {"selected": _selected(rows, options.source_run)}
    if unreadable:
        summary["unreadable files"] = (
            f"{len(unreadable)} not replayed (no lines): replace the file in bronze, and the "
            "next bronze_to_silver run reads it again"
        )
    saved: str | None = None
    if resolved.new and ctx.dry_run:
        stored = stored.merged(resolved.new)
    elif resolved.new:
        saved = stored.next_key(ctx.run_id)
        await put_once(store, saved, corrections_body(resolved.new, ctx.run_id))
        stored = await load_corrections(store, agency_id)  # what later runs will read
    summary["corrections"] = _corrections(len(options.corrections), len(resolved.new), saved)
    texts = {
        (g.source, k): stored.replacement(g.source, k) or g.shown for g in groups for k in g.keys
    }
    exact = {(g.source, k): g.raw_bytes for g in groups for k in g.keys}
    agencies = parse_agencies(
        await bronze.get(options.promote.agencies_key), source=options.promote.agencies_key
    )
    infos = agency_infos(agencies)
    verdicts = {place: _judge(place, text, exact[place], infos, agency_id, stored)
                for place, text in texts.items()}  # fmt: skip
    note: str | None = None
    if not groups or not (resolved.new or _changes(groups, texts, verdicts)):
        tallies = unchanged_tallies(groups)
        summary["partitions"] = "nothing written: every selected row fails as it did"
    else:
        record_ids = frozenset(v.record_id for v in verdicts.values() if isinstance(v, ValidRow))
        rebuild = base != ledger.version  # the died replay's folds hold what its pass made
        tallies, outcome = await _pass(
            inner, store, bronze, tables, stored, groups, record_ids, folded, options, rebuild
        )
        summary["partitions"] = outcome.summary.get("outcome")
        if not ctx.dry_run:
            note = note_key(agency_id, ctx.run_id)
            await store.put(note, note_body(tallies, ctx.run_id))
    total = await _record(ctx, inner, _fingerprint(ledger), tallies, agency_id, note)
    summary.update(_outcome(tallies, total))
    if ctx.dry_run:
        summary["note"] = "dry run: no correction, silver or dead-letter row was written"
    artifacts = tuple(key for key in (saved, note) if key is not None)
    return JobOutcome(counts=total, artifacts=artifacts, summary=summary)


async def _pass(
    inner: CapturingContext,
    store: ObjectStore,
    bronze: ObjectStore,
    tables: SilverTables,
    stored: StoredCorrections,
    groups: tuple[Group, ...],
    record_ids: frozenset[str],
    folded: frozenset[str],
    options: ReplayOptions,
    rebuild: bool,
) -> tuple[dict[str, Tally], JobOutcome]:
    """promote through a watching view of the folded bronze; once more with reprocess if the
    ledger saw nothing to redo (with rebuild, reprocess at once)."""
    for reprocess in (True,) if rebuild else (False, True):
        inner.captured.clear()
        tracker = Tracker.of(watching_view(bronze, stored, groups, folded), groups, record_ids)
        promote_options = attrs.evolve(options.promote, reprocess=reprocess, on_file=tracker)
        outcome = await promote(inner, store, tracker.view, tables, promote_options)
        if tracker.files or reprocess:
            break
        inner.log.warning(
            "the transform now judges replayed rows differently, yet the agency's input and "
            "TRANSFORM_VERSION are unchanged (not bumped?): rebuilding agency %s",
            options.agency_id,
        )
    return classify(groups, tracker), outcome


async def _unrecorded_base(ctx: RunContext, store: ObjectStore, ledger: FoldLedger) -> int:
    """The fold to select dead letters as of: silver's, unless its newest folds are those of a
    replay that died (or failed) after committing them but before recording what it replayed.
    Then the fold before them: this run replays the same rows again (a rebuild that rewrites
    the same tables) and the history accounts for them, as if that replay had not run.

    The agency's lease is held, so a replay still shown as running is dead."""
    died = ledger.run_id
    if ledger.version == 0 or died is None or died == ctx.run_id:
        return ledger.version
    try:
        record = await ctx.history.get_run(died)
    except RunNotFound:
        return ledger.version
    if record.job != ctx.job or record.status is RunStatus.SUCCEEDED:
        return ledger.version
    version = ledger.version
    while version > 0 and (await load_ledger(store, ledger.agency_id, version)).run_id == died:
        version -= 1
    ctx.log.warning(
        "agency %s: replay %s (%s) committed folds %s-%s but did not record them: replaying "
        "the rows it selected again, so this run accounts for them",
        ledger.agency_id,
        died,
        record.status.value,
        version + 1,
        ledger.version,
    )
    return version


def _judge(
    place: tuple[str, str],
    text: str,
    exact: bytes | None,
    infos: Mapping[int, AgencyInfo],
    agency_id: int,
    stored: StoredCorrections,
) -> ValidRow | str | None:
    """What the transform makes of the line alone: a ValidRow or a reason. An uncorrected line
    that was not UTF-8 is judged by its exact bytes (the dead-letter row's raw_bytes); None:
    unknown (such a line in a row written before raw_bytes existed)."""
    source, key = place
    corrected = stored.replacement(source, key)
    if corrected is None and exact is not None:
        line = exact
    elif corrected is None and "\ufffd" in text:
        return None
    else:
        line = text.encode("utf-8")
    # The transform's own per-line verdict (transform_file's, without its gzip sniffing: a line
    # of bytes may well start with the gzip magic).
    outcome = validate_line(line, 1, partition_of(BRONZE_PREFIX + source)[1], infos)
    if isinstance(outcome, Rejected):
        return outcome.reason
    return outcome if outcome.agency_id == agency_id else DeadLetterReason.AGENCY_MISMATCH


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


def _fingerprint(ledger: FoldLedger) -> str:
    """The input fingerprint of what silver's committed fold covers ("" before the first)."""
    if ledger.agencies is None:
        return ""
    agencies = ObjectInfo(ledger.agencies.key, ledger.agencies.size, ledger.agencies.etag)
    return input_fingerprint(agencies, (ObjectInfo(f.key, f.size, f.etag) for f in ledger.files))


async def _record(
    ctx: RunContext,
    inner: CapturingContext,
    fingerprint: str,
    tallies: Mapping[str, Tally],
    agency_id: int,
    note: str | None,
) -> Counts:
    """One ledger row per partition the replay touched: its replayed rows' counts, the pass's
    status and fingerprint, and the note if it covers rows of the partition. Returns the total."""
    captured = {record.partition: record for record in inner.captured}
    total = Counts()
    for partition in sorted(set(captured) | set(tallies)):
        tally, record = tallies.get(partition, Tally()), captured.get(partition)
        row = PartitionRecord(
            run_id=ctx.run_id,
            job=ctx.job,
            partition=partition,
            input_fingerprint=record.input_fingerprint if record is not None else fingerprint,
            counts=tally.counts,
            agency_id=agency_id,
            status=record.status if record is not None else PartitionStatus.UNCHANGED,
            artifacts=(note,) if note is not None and tally.rows else (),
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
