"""Replay an agency's dead-letter rows (of one run, or all current ones) through the transform."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
from data_pipeline.bronze_to_silver.configuration import PromoteSettings, add_promote_arguments
from etl_core.adapters.every_history import every_history
from etl_core.errors import ConfigError, ObjectNotFound
from etl_core.process_exit import exit_with
from etl_core.runner import JobOutcome, RunContext
from etl_core.setting_checks import not_blank
from etl_core.settings import add_common_arguments
from etl_core.urls import SecretUrl, redact

from jobs import _wiring

if TYPE_CHECKING:
    from data_pipeline.bronze_to_silver.corrections import Correction
    from data_pipeline.replay.run import ReplayOptions

NAME = "replay_dead_letters"
EPILOG = """\
Selects the agency's current rows of the dead-letter table: the ones --source-run wrote, or
--all. With --corrections, an NDJSON file (a path, file:// or s3:// URL) of {"source", "raw" (or
"raw_sha256"), "corrected"} objects (dead-letter rows with a "corrected" key added will do)
replaces those bronze lines: the corrections are stored under corrections/agency_id=<id>/ and
every later bronze_to_silver run applies them too, so a replayed row lands in silver exactly once
and stays there. The replay rebuilds the agency's silver and dead letters from the bronze folded
in so far: rows that now pass leave the dead-letter table and land in silver with _run_id = the
replay's run; rows that still fail stay with their new reason. Each replayed (source, line) and
where it went is noted in _replays/agency_id=<id>/<run_id>.ndjson. Replaying the same rows again
writes nothing.

--max-dead-letter-ratio does not apply: every replayed row is a dead letter to begin with.

exit codes: 0 ok; 1 failed; 2 usage error (bad flag, unreadable corrections, corrections that
match no selected row, unknown --source-run); 75 the agency's lease is held by another run.
"""


@attrs.frozen(kw_only=True)
class ReplaySettings(PromoteSettings):
    """Which dead-letter rows, which corrections, and the bronze_to_silver pass options."""

    source_run: str | None = attrs.field(default=None, validator=not_blank())
    replay_all: bool = False
    corrections: SecretUrl | None = attrs.field(
        default=None, converter=attrs.converters.optional(SecretUrl)
    )

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if (self.source_run is None) == (not self.replay_all):
            yield "source_run", "choose one of --source-run RUN_ID and --all"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"data-pipeline {NAME}",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    add = parser.add_argument
    add("--source-run", dest="source_run", metavar="RUN_ID",
        help="the current dead-letter rows this run wrote")  # fmt: skip
    add("--all", dest="replay_all", action="store_true", default=None,
        help="every current dead-letter row of the agency")  # fmt: skip
    add("--corrections", metavar="FILE_OR_URL", help="NDJSON replacement lines (see below)")
    add_promote_arguments(parser, workers_help="transform processes (default: CPU count)")
    add_common_arguments(parser, agency_required=True)
    return parser


def entrypoint(argv: list[str]) -> int:
    return _wiring.main(NAME, argv, _parser(), ReplaySettings, _plan, histories=every_history)


def _plan(settings: ReplaySettings, args: argparse.Namespace) -> _wiring.Planned:
    options = _options(settings)
    # Replayed rows are all dead letters: a share still failing is not a quality gate.
    settings = attrs.evolve(settings, max_dead_letter_ratio=None)

    async def body(ctx: RunContext) -> JobOutcome:
        return await replay_dead_letters(ctx, settings, options)

    parameters = {
        "source_run": settings.source_run,
        "all": settings.replay_all,
        "corrections": redact(settings.corrections) if settings.corrections else None,
        "corrections_count": len(options.corrections),
        "bronze": redact(settings.bronze or settings.store_url),
        "agencies_key": settings.agencies_key,
    }
    return _wiring.Planned(body=body, parameters=parameters, settings=settings)


def _options(settings: ReplaySettings) -> ReplayOptions:
    """Replay options, the corrections file read and parsed. Raises ConfigError."""
    from data_pipeline.bronze_to_silver.corrections import (
        parse_corrections,  # not at import: `list` stays cheap
    )
    from data_pipeline.replay.run import ReplayOptions

    assert settings.agency_id is not None  # agency_required
    corrections: tuple[Correction, ...] = ()
    if settings.corrections is not None:
        body = asyncio.run(read_location(settings.corrections))
        name = redact(settings.corrections)
        corrections = parse_corrections(body, name=name, agency_id=settings.agency_id)
    return ReplayOptions(
        agency_id=settings.agency_id,
        source_run=settings.source_run,
        corrections=corrections,
        promote=settings.promote_options(),
    )


async def read_location(location: str) -> bytes:
    """A local file, or the object a store URL names (file:// or s3://). Raises ConfigError."""
    if "://" not in location:
        try:
            return Path(location).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{location}: cannot read: {exc.strerror or exc}") from None
    from etl_core.adapters.object_stores import open_object_store

    base, _, key = location.rpartition("/")
    if not key or base.endswith(":/"):
        raise ConfigError(f"{redact(location)}: names no object")
    try:
        async with open_object_store(base) as store:
            return await store.get(key)
    except ObjectNotFound:
        raise ConfigError(f"{redact(location)}: no such object") from None


async def replay_dead_letters(
    ctx: RunContext, settings: ReplaySettings, options: ReplayOptions
) -> JobOutcome:
    """Wire the stores (bronze opened read-only) and the tables, and replay."""
    from data_pipeline.replay.run import replay
    from etl_core.adapters.delta_tables import open_tables
    from etl_core.adapters.object_stores import open_object_store

    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(
            open_object_store(settings.store_url, dry_run=ctx.dry_run)
        )
        bronze = store
        if settings.bronze is not None and settings.bronze != settings.store_url:
            bronze = await stack.enter_async_context(
                open_object_store(settings.bronze, dry_run=True)  # never written
            )
        tables = open_tables(
            settings.store_url,
            store,
            os.environ,
            dry_run=ctx.dry_run,
            run_id=ctx.run_id,
            rows_per_file=settings.rows_per_file,
        )
        outcome = await replay(ctx, store, bronze, tables, options)
    summary = {**outcome.summary, "run_id": ctx.run_id}
    if ctx.dry_run:
        summary["note"] = "dry run: no correction, silver or dead-letter row was written"
    return attrs.evolve(outcome, summary=summary)


JOB = (entrypoint, "Replay dead-letter rows (optionally corrected) into silver, exactly once")

if __name__ == "__main__":
    exit_with(entrypoint(sys.argv[1:]))
