"""Flags shared by the jobs that run the bronze -> silver promotion."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs
from etl_core.errors import ConfigError
from etl_core.setting_checks import at_least, not_blank
from etl_core.settings import CommonSettings
from etl_core.urls import SecretUrl, parse_store_url

if TYPE_CHECKING:
    from data_pipeline.bronze_to_silver.run import PromoteOptions


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
