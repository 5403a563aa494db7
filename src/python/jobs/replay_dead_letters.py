"""Replay an agency's dead-letter rows (of one run, or all current ones) through the transform."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import TYPE_CHECKING

import attrs
from data_pipeline.replay.configuration import EPILOG, ReplaySettings, add_arguments
from etl_core.adapters.every_history import every_history
from etl_core.adapters.object_stores import read_location
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext

from jobs import _wiring

if TYPE_CHECKING:
    from data_pipeline.replay.run import ReplayOptions

NAME = "replay_dead_letters"


def entrypoint(argv: list[str]) -> int:
    parser = _wiring.parser(NAME, __doc__, add_arguments, epilog=EPILOG)
    return _wiring.main(NAME, argv, parser, ReplaySettings, _plan, histories=every_history)


def _plan(settings: ReplaySettings, args: argparse.Namespace) -> _wiring.Planned:
    """Read the corrections file; replay options. Raises ConfigError."""
    corrections = settings.corrections
    options = settings.replay_options(
        None if corrections is None else asyncio.run(read_location(corrections))
    )
    # Replayed rows are all dead letters: a share still failing is not a quality gate.
    settings = attrs.evolve(settings, max_dead_letter_ratio=None)

    async def body(ctx: RunContext) -> JobOutcome:
        return await replay_dead_letters(ctx, settings, options)

    parameters = settings.parameters(options)
    return _wiring.Planned(body=body, parameters=parameters, settings=settings)


async def replay_dead_letters(
    ctx: RunContext, settings: ReplaySettings, options: ReplayOptions
) -> JobOutcome:
    """Wire the stores (bronze opened read-only) and the tables, and replay."""
    from data_pipeline.replay.run import replay

    from jobs import _tables

    async with contextlib.AsyncExitStack() as stack:
        store, bronze = await _wiring.store_and_bronze(
            stack, settings.store_url, settings.bronze, dry_run=ctx.dry_run
        )
        tables = _tables.tables(
            ctx, settings.store_url, store, rows_per_file=settings.rows_per_file
        )
        return await replay(ctx, store, bronze, tables, options)


JOB = (entrypoint, "Replay dead-letter rows (optionally corrected) into silver, exactly once")

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
