"""Flags shared by the jobs that run the bronze -> silver promotion."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from data_pipeline.bronze_to_silver import PromoteOptions


class PromoteFlags(Protocol):
    """Settings holding the flags add_promote_arguments adds."""

    @property
    def workers(self) -> int | None:
        ...

    @property
    def batch_files(self) -> int | None:
        ...

    @property
    def agencies_key(self) -> str:
        ...


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


def promote_options(
    flags: PromoteFlags,
    *,
    first: dt.date | None = None,
    last: dt.date | None = None,
    reprocess: bool = False,
) -> PromoteOptions:
    """The bronze_to_silver pass the settings spell: the one place their flags are copied."""
    from data_pipeline.bronze_to_silver import PromoteOptions  # not at import: `list` stays cheap

    return PromoteOptions(
        first=first,
        last=last,
        reprocess=reprocess,
        workers=flags.workers,
        in_flight=flags.batch_files,
        agencies_key=flags.agencies_key,
    )
