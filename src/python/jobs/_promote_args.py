"""Flags shared by the jobs that run the bronze -> silver promotion."""

from __future__ import annotations

import argparse


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
