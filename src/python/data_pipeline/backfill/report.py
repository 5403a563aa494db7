"""Plain-text tables of a backfill: the plan, and the summary per agency with a total."""

from __future__ import annotations

from collections.abc import Sequence

from etl_core import text_table
from etl_core.model import Counts

from data_pipeline.backfill.plan import AgencyPlan
from data_pipeline.backfill.run import AgencyResult, BackfillReport

_PLAN = ("AGENCY", "PARTITIONS", "FIRST", "LAST", "FOLD", "CURRENT", "TO_FOLD", "FILES_TO_READ",
         "MB_TO_READ", "ACTION")  # fmt: skip
_SUMMARY = ("AGENCY", "PLANNED", "FOLDED", "CURRENT", "FAILED", "ROWS_IN", "ROWS_OUT",
            "DUP", "DEAD_LETTER", "INSERTED", "UPDATED", "SECONDS", "STATUS", "RUN_ID")  # fmt: skip
_LEFT = frozenset({"FIRST", "LAST", "ACTION", "STATUS", "RUN_ID"})


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    return text_table.aligned(columns, rows, right=set(columns) - _LEFT)


def plan_table(plans: Sequence[AgencyPlan]) -> str:
    """Per agency: partitions in range, the committed fold version, how many partitions are
    current (all their bronze folded in) or have bronze to fold, what the child will read (new
    files in range; the agency's whole bronze on a rebuild), and what it will do; then one line
    per agency that will rebuild or fail, saying why."""
    rows = [
        (
            str(plan.agency_id),
            str(len(plan.days)),
            plan.days[0] if plan.days else "-",
            plan.days[-1] if plan.days else "-",
            str(plan.fold),
            str(plan.current),
            str(plan.to_fold),
            str(_to_read(plan, plan.files)),
            f"{_to_read(plan, plan.bytes_in) / 1e6:.1f}",
            plan.action,
        )
        for plan in plans
    ]
    rows.append((
        "TOTAL", str(sum(len(p.days) for p in plans)), "", "", "",
        str(sum(p.current for p in plans)), str(sum(p.to_fold for p in plans)),
        str(sum(_to_read(p, p.files) for p in plans)),
        f"{sum(_to_read(p, p.bytes_in) for p in plans) / 1e6:.1f}", "",
    ))  # fmt: skip
    lines = [table(_PLAN, rows)]
    for plan in plans:
        if not plan.days:
            continue
        if plan.problem is not None:
            lines.append(f"agency {plan.agency_id}: {plan.problem}")
        elif plan.rebuild is not None:
            lines.append(f"agency {plan.agency_id}: rebuild: {plan.rebuild}")
    return "\n".join(lines)


def _to_read(plan: AgencyPlan, amount: int) -> int:
    """What the child will read: nothing for an agency without bronze in range."""
    return amount if plan.days else 0


def summary_table(report: BackfillReport, *, seconds: float) -> str:
    """One row per agency, a TOTAL row (seconds: the backfill's wall time), then one line per
    agency that did not succeed."""
    rows = [
        _summary_row(str(r.plan.agency_id), [r], r.seconds, r.status, r.run_id or "-")
        for r in report.results
    ]
    worst = "ok" if report.error() is None else f"exit {report.exit_code}"
    rows.append(_summary_row("TOTAL", report.results, seconds, worst, ""))
    lines = [table(_SUMMARY, rows)]
    lines.extend(f"agency {r.plan.agency_id}: {r.error}" for r in report.results if r.error)
    return "\n".join(lines)


def _summary_row(
    name: str, results: Sequence[AgencyResult], seconds: float, status: str, run_id: str
) -> tuple[str, ...]:
    counts = sum((r.counts for r in results), start=Counts())
    return (
        name,
        str(sum(len(r.plan.days) for r in results)),
        str(sum(r.folded for r in results)),
        str(sum(r.current for r in results)),
        str(sum(r.failed for r in results)),
        f"{counts.rows_in:,}",
        f"{counts.rows_out:,}",
        f"{counts.rows_duplicate:,}",
        f"{counts.rows_dead_letter:,}",
        f"{counts.rows_inserted:,}",
        f"{counts.rows_updated:,}",
        f"{seconds:.1f}",
        status,
        run_id,
    )


def run_summary(report: BackfillReport, plans: Sequence[AgencyPlan]) -> dict[str, object]:
    """The backfill run's summary: agencies, partitions folded in or current, child runs."""
    child_runs = [r.run_id for r in report.results if r.run_id is not None]
    return {
        "agencies": len(plans),
        "partitions": f"{sum(r.folded for r in report.results)} folded in, "
        f"{sum(r.current for r in report.results)} already current "
        f"of {sum(len(p.days) for p in plans)} in range",
        "child runs": ", ".join(child_runs) if len(child_runs) <= 5 else f"{len(child_runs)}",
    }
