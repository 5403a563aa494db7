"""Compact, vacuum and checkpoint the silver and dead-letter Delta tables of a store."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs
from etl_core.adapters.every_history import every_history
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from etl_core.setting_checks import at_least
from etl_core.settings import CommonSettings, add_common_arguments

from jobs import _wiring
from jobs._agency_ids import parse_agencies

if TYPE_CHECKING:
    from data_pipeline.maintenance.run import MaintenanceOptions

NAME = "maintain"
# A full vacuum deletes files no commit references, which includes the files a running fold has
# written and not yet committed: give every writer far more than a run's length.
MIN_FULL_VACUUM_HOURS = 24
EPILOG = """\
Each agency's files are compacted under its bronze_to_silver lease: an agency whose lease is
held (a fold or replay is running) is skipped and reported, and the run still succeeds. Other
agencies' runs may commit meanwhile; a compaction that keeps losing to them makes the run exit 75.
Vacuum then deletes files that left the tables over --retention-hours ago, and a checkpoint of
each table's log is written (log entries past the table's log retention, 30 days, are deleted).

exit codes: 0 done (agencies skipped for a held lease included); 75 another maintain run holds
the tables, or some compaction kept losing to concurrent commits: re-run later; 1 some table or
agency failed; 2 usage error.
"""


@attrs.frozen(kw_only=True)
class MaintainSettings(CommonSettings):
    """Which agencies (default: every agency with files) and the file size and retention."""

    agencies: str | None = None  # "1,2,3"
    retention_hours: int = attrs.field(default=168, validator=at_least(0))
    target_size_mb: int = attrs.field(default=32, validator=at_least(1))
    full_vacuum: bool = False

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if self.agency_id is not None and self.agencies is not None:
            yield "agencies", "choose --agency-id N or --agencies 1,2,3, not both"
        if self.agencies is not None and parse_agencies(self.agencies) is None:
            yield "agencies", f"expected agency ids like 1,2,3, got {self.agencies!r}"
        if self.full_vacuum and self.retention_hours < MIN_FULL_VACUUM_HOURS:
            yield "full_vacuum", (
                f"needs --retention-hours >= {MIN_FULL_VACUUM_HOURS}: it would delete files "
                "running folds have written but not committed yet"
            )

    def agency_ids(self) -> tuple[int, ...] | None:
        """The agencies named; None: every agency with files in either table."""
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
    add("--agencies", metavar="1,2,3", help="only these agencies (default: all with files)")
    add("--retention-hours", dest="retention_hours", type=int, metavar="H",
        help="delete files that left the tables more than H hours ago (default 168 = 7 days); "
             "readers of versions younger than that keep working")  # fmt: skip
    add("--target-size-mb", dest="target_size_mb", type=int, metavar="MB",
        help="size of compacted files (default 32: a merge rewrites whole files, so smaller "
             "files make merges cheaper and reads slightly dearer)")  # fmt: skip
    add("--full-vacuum", dest="full_vacuum", action="store_true", default=None,
        help="also delete files no commit references (left by crashed runs), if older than "
             f"the retention; needs --retention-hours >= {MIN_FULL_VACUUM_HOURS}")  # fmt: skip
    add_common_arguments(parser, agency_required=False)
    return parser


def entrypoint(argv: list[str]) -> int:
    return _wiring.main(NAME, argv, _parser(), MaintainSettings, _plan, histories=every_history)


def _plan(settings: MaintainSettings, args: argparse.Namespace) -> _wiring.Planned:
    ids = settings.agency_ids()

    async def body(ctx: RunContext) -> JobOutcome:
        return await maintain(ctx, settings, _options(settings))

    parameters = {
        "agencies": "all" if ids is None else list(ids),
        "retention_hours": settings.retention_hours,
        "target_size_mb": settings.target_size_mb,
        "full_vacuum": settings.full_vacuum,
    }
    # One maintain run at a time, whichever agencies it names: vacuum and checkpoint are per table.
    return _wiring.Planned(body=body, parameters=parameters, lease_scope="tables")


def _options(settings: MaintainSettings) -> MaintenanceOptions:
    from data_pipeline.maintenance.run import (
        MaintenanceOptions,  # not at import: `list` stays cheap
    )

    return MaintenanceOptions(
        agencies=settings.agency_ids(),
        target_size=settings.target_size_mb << 20,
        retention_hours=settings.retention_hours,
        full_vacuum=settings.full_vacuum,
    )


async def maintain(
    ctx: RunContext, settings: MaintainSettings, options: MaintenanceOptions
) -> JobOutcome:
    """Open the store's two tables for maintenance, maintain them, report per table."""
    from data_pipeline.maintenance import run as maintenance
    from data_pipeline.maintenance.report import summary
    from etl_core.adapters.delta_maintenance import maintenance_of
    from etl_core.adapters.delta_tables import open_tables
    from etl_core.adapters.object_stores import open_object_store

    async with open_object_store(settings.store_url, dry_run=ctx.dry_run) as store:
        tables = open_tables(settings.store_url, store, os.environ, dry_run=ctx.dry_run)
        report = await maintenance.maintain(ctx, maintenance_of(tables), options)
    lines = summary(report, dry_run=ctx.dry_run, retention_hours=options.retention_hours)
    error = report.error()
    if error is not None:  # the runner prints no summary for a failed run: show what was done
        _print("\n".join(f"{table}: {line}" for table, line in lines.items()))
        raise error
    checkpoints = tuple(
        f"checkpoint:{step.table}@v{step.checkpoint}"
        for step in report.tables
        if step.checkpoint is not None
    )
    return JobOutcome(
        counts=report.counts, artifacts=checkpoints, summary={**lines, "run_id": ctx.run_id}
    )


def _print(text: str) -> None:
    from etl_core import logs

    logs.end_progress()
    print(text, flush=True)


JOB = (entrypoint, "Compact, vacuum and checkpoint the silver and dead-letter Delta tables")

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
