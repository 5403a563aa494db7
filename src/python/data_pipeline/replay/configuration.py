"""The configuration of a dead-letter replay: its settings (which rows, which corrections, the
bronze_to_silver pass), flags and epilog. Cheap to import: `data-pipeline list` and `--help`
read it."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs
from etl_core.setting_checks import not_blank
from etl_core.settings import add_common_arguments
from etl_core.urls import SecretUrl, redact

from data_pipeline.bronze_to_silver.configuration import PromoteSettings, add_promote_arguments

if TYPE_CHECKING:
    from data_pipeline.bronze_to_silver.corrections import Correction
    from data_pipeline.replay.run import ReplayOptions

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

    def replay_options(self, corrections_body: bytes | None) -> ReplayOptions:
        """The replay these settings spell, given the corrections file's bytes (None: no
        --corrections). Raises ConfigError for corrections that do not parse."""
        from data_pipeline.bronze_to_silver.corrections import (
            parse_corrections,  # not at import: `list` stays cheap
        )
        from data_pipeline.replay.run import ReplayOptions

        assert self.agency_id is not None  # agency_required
        corrections: tuple[Correction, ...] = ()
        if self.corrections is not None and corrections_body is not None:
            name = redact(self.corrections)
            corrections = parse_corrections(corrections_body, name=name, agency_id=self.agency_id)
        return ReplayOptions(
            agency_id=self.agency_id,
            source_run=self.source_run,
            corrections=corrections,
            promote=self.promote_options(),
        )

    def parameters(self, options: ReplayOptions) -> dict[str, Any]:
        """What a replay run records of its settings and options."""
        return {
            "source_run": self.source_run,
            "all": self.replay_all,
            "corrections": redact(self.corrections) if self.corrections else None,
            "corrections_count": len(options.corrections),
            "bronze": redact(self.bronze or self.store_url),
            "agencies_key": self.agencies_key,
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """replay_dead_letters' flags, the promote flags, the common ones (--agency-id required)."""
    add = parser.add_argument
    add("--source-run", dest="source_run", metavar="RUN_ID",
        help="the current dead-letter rows this run wrote")  # fmt: skip
    add("--all", dest="replay_all", action="store_true", default=None,
        help="every current dead-letter row of the agency")  # fmt: skip
    add("--corrections", metavar="FILE_OR_URL", help="NDJSON replacement lines (see below)")
    add_promote_arguments(parser, workers_help="transform processes (default: CPU count)")
    add_common_arguments(parser, agency_required=True)
