"""The configuration of a bronze -> silver run: the promote settings and flags its jobs share
(bronze_to_silver, backfill, replay_dead_letters), and bronze_to_silver's own. Cheap to import:
`data-pipeline list` and `--help` read it."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs
from etl_core.dates import date_flag
from etl_core.errors import ConfigError
from etl_core.setting_checks import at_least, not_blank
from etl_core.settings import DEFAULT_STORE_URL, CommonSettings, add_common_arguments
from etl_core.urls import SecretUrl, parse_store_url, redact

if TYPE_CHECKING:
    from data_pipeline.bronze_to_silver.run import PromoteOptions

EMPTY_EMBEDDED_STORE = (
    f"the embedded local store {DEFAULT_STORE_URL} holds no agencies file and no bronze: point "
    "--store (or ETL_STORE_URL) at your store, or pass --demo to generate the reference data set "
    "into the embedded store first"
)


@attrs.frozen(kw_only=True)
class PromoteSettings(CommonSettings):
    """The settings of the jobs that run the bronze -> silver promotion (bronze_to_silver,
    backfill, replay_dead_letters): the flags add_promote_arguments adds."""

    workers: int | None = attrs.field(default=None, validator=at_least(1))
    batch_files: int | None = attrs.field(default=None, validator=at_least(1))
    rows_per_file: int = attrs.field(default=20_000, validator=at_least(1))
    bronze: SecretUrl | None = attrs.field(
        default=None, converter=attrs.converters.optional(SecretUrl)
    )
    agencies_key: str = attrs.field(default="agencies.csv", validator=not_blank())

    def promote_options(self) -> PromoteOptions:
        """The bronze_to_silver pass these settings spell: the one place they are copied."""
        from data_pipeline.bronze_to_silver.run import (
            PromoteOptions,  # not at import: `list` is cheap
        )

        return PromoteOptions(
            workers=self.workers, in_flight=self.batch_files, agencies_key=self.agencies_key
        )

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if self.bronze is not None:
            try:
                parse_store_url(self.bronze)
            except ConfigError as exc:
                yield "bronze", str(exc)


def add_promote_arguments(parser: argparse.ArgumentParser, *, workers_help: str) -> None:
    """Add --workers, --batch-files, --rows-per-file, --bronze, --agencies-key (unset: None)."""
    add = parser.add_argument
    add("--workers", type=int, metavar="K", help=workers_help)
    add(
        "--batch-files",
        dest="batch_files",
        type=int,
        metavar="M",
        help="bronze files read ahead of the transform, per agency (default: 2 per worker)",
    )
    add(
        "--rows-per-file",
        dest="rows_per_file",
        type=int,
        metavar="N",
        help="write silver partitions as files of at most N rows sorted by record_id, so a "
        "merge rewrites only the files holding a replaced key (default 20000)",
    )
    add("--bronze", metavar="URL", help="object store holding bronze/ (default: --store)")
    add(
        "--agencies-key",
        dest="agencies_key",
        metavar="KEY",
        help="agencies reference file in the bronze store (default agencies.csv)",
    )


@attrs.frozen(kw_only=True)
class BronzeToSilverSettings(PromoteSettings):
    """Job options; `bronze` defaults to the store itself."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    reprocess: bool = False

    def promote_options(self) -> PromoteOptions:
        """The pass these settings spell (a backfill's: each agency's)."""
        return attrs.evolve(
            super().promote_options(),
            first=self.date_from,
            last=self.date_to,
            reprocess=self.reprocess,
        )

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        first, last = self.date_from, self.date_to
        if first is not None and last is not None and first > last:
            yield "date_from", f"--from {first} is after --to {last}"

    def reads_embedded_store(self) -> bool:
        """Bronze is the embedded default store (nobody configured a store)."""
        return self.store_url == DEFAULT_STORE_URL and self.bronze in (None, DEFAULT_STORE_URL)

    def parameters(self, *, demo: bool) -> dict[str, Any]:
        """What a bronze_to_silver run records of its settings."""
        return {
            "from": self.date_from,
            "to": self.date_to,
            "reprocess": self.reprocess,
            "workers": self.workers,
            "batch_files": self.batch_files,
            "bronze": redact(self.bronze or self.store_url),
            "agencies_key": self.agencies_key,
            "demo": demo,
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """bronze_to_silver's flags: the date range, --reprocess, --demo, the promote and common
    flags (--agency-id required)."""
    add = parser.add_argument
    add(
        "--from",
        dest="date_from",
        type=date_flag,
        metavar="YYYY-MM-DD",
        help="fold in only new bronze of dt >= this (merges still span all of silver)",
    )
    add(
        "--to",
        dest="date_to",
        type=date_flag,
        metavar="YYYY-MM-DD",
        help="fold in only new bronze of dt <= this",
    )
    add(
        "--reprocess",
        action="store_true",
        default=None,
        help="rebuild the agency's silver and dead letters from its whole bronze",
    )
    add(
        "--demo",
        action="store_true",
        help="if the store holds no agencies file and no bronze, first generate the reference "
        "data set (WORKLOAD.md) into it; without store settings, the embedded local store. "
        "Never done unless asked",
    )
    add_promote_arguments(
        parser, workers_help="transform processes (default: CPU count; 1 = inline, no pool)"
    )
    add_common_arguments(parser, agency_required=True)
