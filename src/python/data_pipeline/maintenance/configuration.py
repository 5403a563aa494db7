"""The configuration of a `maintain` run: its settings, flags and epilog. Cheap to import:
`data-pipeline list` and `--help` read it."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs
from etl_core.agency_list import add_agencies_argument, agencies_problems, agency_ids
from etl_core.setting_checks import at_least
from etl_core.settings import CommonSettings, add_common_arguments

if TYPE_CHECKING:
    from data_pipeline.maintenance.run import MaintenanceOptions

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
        yield from agencies_problems(self.agencies)
        if self.full_vacuum and self.retention_hours < MIN_FULL_VACUUM_HOURS:
            yield "full_vacuum", (
                f"needs --retention-hours >= {MIN_FULL_VACUUM_HOURS}: it would delete files "
                "running folds have written but not committed yet"
            )

    def agency_ids(self) -> tuple[int, ...] | None:
        """The agencies named; None: every agency with files in either table."""
        return agency_ids(self.agency_id, self.agencies)

    def parameters(self) -> dict[str, Any]:
        """What a maintain run records of its settings."""
        ids = self.agency_ids()
        return {
            "agencies": "all" if ids is None else list(ids),
            "retention_hours": self.retention_hours,
            "target_size_mb": self.target_size_mb,
            "full_vacuum": self.full_vacuum,
        }

    def maintenance_options(self) -> MaintenanceOptions:
        """The maintenance these settings spell."""
        from data_pipeline.maintenance.run import (
            MaintenanceOptions,  # not at import: `list` stays cheap
        )

        return MaintenanceOptions(
            agencies=self.agency_ids(),
            target_size=self.target_size_mb << 20,
            retention_hours=self.retention_hours,
            full_vacuum=self.full_vacuum,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """maintain's flags, then the common ones (--agency-id optional)."""
    add_agencies_argument(parser, help="only these agencies (default: all with files)")
    add = parser.add_argument
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
