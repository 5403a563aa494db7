"""The configuration of a backfill: bronze_to_silver's settings plus which agencies and how many
at once, its flags and epilog, and the options and run parameters they spell. Cheap to import:
`data-pipeline list` and `--help` read it."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs
from etl_core.agency_list import add_agencies_argument, agencies_problems, agency_ids
from etl_core.setting_checks import at_least
from etl_core.settings import add_common_arguments
from etl_core.urls import redact

from data_pipeline.bronze_to_silver.configuration import (
    BronzeToSilverSettings,
    add_promote_arguments,
)

if TYPE_CHECKING:
    from data_pipeline.backfill.run import BackfillOptions

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
        yield from agencies_problems(self.agencies)
        for name in ("date_from", "date_to"):
            if getattr(self, name) is None:
                yield name, f"--{name.removeprefix('date_')} YYYY-MM-DD is required"

    def agency_ids(self) -> tuple[int, ...] | None:
        """The agencies named; None for --all-agencies (every agency with bronze)."""
        return agency_ids(self.agency_id, self.agencies)

    def lease_scope(self) -> str:
        """The backfill's lease: the agencies it names."""
        ids = self.agency_ids()
        return "agencies=all" if ids is None else "agencies=" + ",".join(map(str, ids))

    def run_parameters(self) -> dict[str, Any]:
        """What a backfill run records of its settings."""
        ids = self.agency_ids()
        return {
            "agencies": "all" if ids is None else list(ids),
            "from": self.date_from,
            "to": self.date_to,
            "reprocess": self.reprocess,
            "max_parallel": self.max_parallel,
            "continue_on_error": self.continue_on_error,
            **self._child_parameters(),
        }

    def backfill_options(self) -> BackfillOptions:
        """The backfill these settings spell, with what each child run records."""
        from data_pipeline.backfill.run import BackfillOptions  # not at import: `list` stays cheap

        assert self.date_from is not None  # problems() insists
        assert self.date_to is not None
        return BackfillOptions(
            promote=self.promote_options(),
            max_parallel=self.max_parallel,
            continue_on_error=self.continue_on_error,
            parameters={
                "from": self.date_from.isoformat(),
                "to": self.date_to.isoformat(),
                "reprocess": self.reprocess,
                **self._child_parameters(),
            },
        )

    def _child_parameters(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "batch_files": self.batch_files,
            "rows_per_file": self.rows_per_file,
            "store_url": redact(self.store_url),
            "bronze": redact(self.bronze or self.store_url),
            "agencies_key": self.agencies_key,
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """backfill's flags, the promote flags, then the common ones (--agency-id optional)."""
    add_agencies_argument(parser, help="these agencies (or --agency-id N, --all-agencies)")
    add = parser.add_argument
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
