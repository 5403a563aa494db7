"""Backfill bronze -> silver over a date range for one, several or all agencies, resumably."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs
from data_pipeline.bronze_to_silver.configuration import (
    BronzeToSilverSettings,
    add_promote_arguments,
)
from etl_core.adapters.every_history import every_history
from etl_core.agency_list import parse_agencies
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from etl_core.setting_checks import at_least
from etl_core.settings import add_common_arguments
from etl_core.urls import redact
from opentelemetry import trace

from jobs import _wiring

if TYPE_CHECKING:
    from data_pipeline.backfill.run import BackfillOptions

NAME = "backfill"
EPILOG = """\
Each agency runs as its own bronze_to_silver run (its own run_id, `parent_run_id` = this run,
and the lease a standalone bronze_to_silver run on it takes); they all commit to the same silver
and dead-letter Delta tables. A child folds in only the bronze files of dt in range that its
agency has not folded in before (a changed or vanished one rebuilds the agency), so re-running an
interrupted backfill does only what is left: agencies already done are up to date.

exit codes: 0 every agency succeeded or was up to date; 75 no agency failed but some were busy
(lease held by another run) or hit a temporary failure: re-run later; 1 some agency failed
(without --continue-on-error the first failure stops launching more); 2 usage error.
"""


@attrs.frozen(kw_only=True)
class BackfillSettings(BronzeToSilverSettings):
    """bronze_to_silver's options plus which agencies and how many at once."""

    agencies: str | None = None  # "1,2,3"
    all_agencies: bool = False
    max_parallel: int = attrs.field(default=1, validator=at_least(1))
    continue_on_error: bool = False

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        chosen = [self.agency_id is not None, self.agencies is not None, self.all_agencies]
        if sum(chosen) != 1:
            yield "agencies", "choose one of --agency-id N, --agencies 1,2,3, --all-agencies"
        if self.agencies is not None and parse_agencies(self.agencies) is None:
            yield "agencies", f"expected agency ids like 1,2,3, got {self.agencies!r}"
        for name in ("date_from", "date_to"):
            if getattr(self, name) is None:
                yield name, f"--{name.removeprefix('date_')} YYYY-MM-DD is required"

    def agency_ids(self) -> tuple[int, ...] | None:
        """The agencies named; None for --all-agencies (every agency with bronze)."""
        if self.agency_id is not None:
            return (self.agency_id,)
        return None if self.agencies is None else parse_agencies(self.agencies)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"data-pipeline {NAME}",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    add = parser.add_argument
    add("--agencies", metavar="1,2,3", help="these agencies (or --agency-id N, --all-agencies)")
    add("--all-agencies", dest="all_agencies", action="store_true", default=None,
        help="every agency that has bronze files")  # fmt: skip
    add("--from", dest="date_from", metavar="YYYY-MM-DD",
        help="fold in new bronze of dt >= this (required; merges still span all of "
             "silver)")  # fmt: skip
    add("--to", dest="date_to", metavar="YYYY-MM-DD",
        help="fold in new bronze of dt <= this (required)")  # fmt: skip
    add("--reprocess", action="store_true", default=None,
        help="rebuild each agency's silver and dead letters from its whole bronze, even where "
             "nothing changed (a re-run rebuilds again: not resumable)")  # fmt: skip
    add("--max-parallel", dest="max_parallel", type=int, metavar="K",
        help="agencies processed at once (default 1)")  # fmt: skip
    add("--continue-on-error", dest="continue_on_error", action="store_true", default=None,
        help="keep launching agencies after one fails (the exit code still says so)")  # fmt: skip
    add_promote_arguments(
        parser, workers_help="transform processes per agency (default: CPU count / --max-parallel)"
    )
    add_common_arguments(parser, agency_required=False)
    return parser


def entrypoint(argv: list[str]) -> int:
    return _wiring.main(NAME, argv, _parser(), BackfillSettings, _plan, histories=every_history)


def _plan(settings: BackfillSettings, args: argparse.Namespace) -> _wiring.Planned:
    options = _options(settings)
    ids = settings.agency_ids()
    scope = "agencies=all" if ids is None else "agencies=" + ",".join(map(str, ids))

    async def body(ctx: RunContext) -> JobOutcome:
        return await backfill(ctx, settings, options)

    parameters = {
        "agencies": "all" if ids is None else list(ids),
        "from": settings.date_from,
        "to": settings.date_to,
        "reprocess": settings.reprocess,
        "max_parallel": settings.max_parallel,
        "continue_on_error": settings.continue_on_error,
        **_child_parameters(settings),
    }
    return _wiring.Planned(body=body, parameters=parameters, lease_scope=scope)


def _options(settings: BackfillSettings) -> BackfillOptions:
    from data_pipeline.backfill.run import BackfillOptions  # not at import: `list` stays cheap

    assert settings.date_from is not None  # problems() insists
    assert settings.date_to is not None
    return BackfillOptions(
        promote=settings.promote_options(),
        max_parallel=settings.max_parallel,
        continue_on_error=settings.continue_on_error,
        parameters={
            "from": settings.date_from.isoformat(),
            "to": settings.date_to.isoformat(),
            "reprocess": settings.reprocess,
            **_child_parameters(settings),
        },
    )


def _child_parameters(settings: BackfillSettings) -> dict[str, Any]:
    return {
        "workers": settings.workers,
        "batch_files": settings.batch_files,
        "rows_per_file": settings.rows_per_file,
        "store_url": redact(settings.store_url),
        "bronze": redact(settings.bronze or settings.store_url),
        "agencies_key": settings.agencies_key,
    }


async def backfill(
    ctx: RunContext, settings: BackfillSettings, options: BackfillOptions
) -> JobOutcome:
    """Open the stores (bronze read-only) and the tables, plan, print the plan, run, print the
    summary table."""
    from data_pipeline.backfill.plan import bronze_agencies, plan_backfill
    from data_pipeline.backfill.report import plan_table, summary_table
    from data_pipeline.backfill.run import run_backfill
    from etl_core.adapters.delta_tables import Tables, open_tables
    from etl_core.adapters.object_stores import open_object_store
    from etl_core.failpoints import FailpointObjectStore

    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(
            open_object_store(settings.store_url, dry_run=ctx.dry_run)
        )
        bronze = store
        if settings.bronze is not None and settings.bronze != settings.store_url:
            bronze = await stack.enter_async_context(
                open_object_store(settings.bronze, dry_run=True)  # never written
            )
        tables_store = FailpointObjectStore(store, "bronze_to_silver.store")

        def tables(run_id: str) -> Tables:
            return open_tables(
                settings.store_url, tables_store, os.environ, dry_run=ctx.dry_run,
                run_id=run_id, rows_per_file=settings.rows_per_file,
            )  # fmt: skip

        root = trace.get_current_span()  # the run's own span (run_job's)
        with ctx.span("plan") as span:
            ids = settings.agency_ids() or await bronze_agencies(bronze)
            # A run of many agencies: its own spans carry them all (each child's, its own).
            for named in (root, span):
                named.set_attribute("agency_ids", list(ids))
            plans = await plan_backfill(
                store, bronze, tables(ctx.run_id).silver, ids, first=options.first,
                last=options.last, agencies_key=options.promote.agencies_key,
                reprocess=options.promote.reprocess,
            )  # fmt: skip
        mode = " (dry run: nothing is written)" if ctx.dry_run else ""
        _print(f"backfill plan {options.first}..{options.last}{mode}\n{plan_table(plans)}")
        with ctx.span("run", agencies=len(plans), max_parallel=options.max_parallel,
                      agency_ids=list(ids)):  # fmt: skip
            report = await run_backfill(ctx, store, bronze, tables, plans, options)
    _print(f"backfill summary{mode}\n{summary_table(report, seconds=time.monotonic() - started)}")
    error = report.error()
    if error is not None:
        ctx.recorded = report.counts  # the failed run's row still shows what was done
        raise error
    child_runs = [r.run_id for r in report.results if r.run_id is not None]
    return JobOutcome(
        counts=report.counts,
        summary={
            "agencies": len(plans),
            "partitions": f"{sum(r.folded for r in report.results)} folded in, "
            f"{sum(r.current for r in report.results)} already current "
            f"of {sum(len(p.days) for p in plans)} in range",
            "child runs": ", ".join(child_runs) if len(child_runs) <= 5 else f"{len(child_runs)}",
            "run_id": ctx.run_id,
        },
    )


def _print(text: str) -> None:
    from etl_core import logs

    logs.end_progress()
    print(text, flush=True)


JOB = (entrypoint, "Backfill bronze -> silver over a date range for many agencies (resumable)")

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
