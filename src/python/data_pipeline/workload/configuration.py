"""The configuration of the workload generator (the generate job): its settings and flags.
Cheap to import: `data-pipeline list` and `--help` read it."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Set
from typing import TYPE_CHECKING

import attrs
from etl_core.errors import ConfigError
from etl_core.setting_checks import at_least, between
from etl_core.settings import CommonSettings, add_common_arguments
from etl_core.urls import parse_store_url

if TYPE_CHECKING:
    from data_pipeline.workload.generate import WorkloadOptions


@attrs.frozen(kw_only=True)
class GenerateSettings(CommonSettings):
    """Generator options (WORKLOAD.md); `out` defaults to the configured store."""

    records: int = attrs.field(default=100_000, validator=at_least(0))
    files: int = attrs.field(default=20, validator=at_least(1))
    bad_rate: float = attrs.field(default=0.01, validator=between(0, 1))
    dup_rate: float = attrs.field(default=0.05, validator=between(0, 1))
    seed: int = 7
    out: str | None = None
    gzip: bool = False
    agencies: int = attrs.field(default=20, validator=at_least(1))
    parts_per_day: int = attrs.field(default=1, validator=at_least(1))

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if self.out is not None:
            try:
                parse_store_url(self.out)
            except ConfigError as exc:
                yield "out", str(exc)

    def embedded_defaults_used(self, configured: Set[str]) -> Iterator[str]:
        # --out, when given, is the store written to.
        extra = {"store_url"} if "out" in configured else set()
        yield from super().embedded_defaults_used(configured | extra)

    def workload_options(self) -> WorkloadOptions:
        """The workload these settings spell."""
        from data_pipeline.workload.generate import (
            WorkloadOptions,  # not at import: `list` stays cheap
        )

        return WorkloadOptions(
            records=self.records,
            files=self.files,
            bad_rate=self.bad_rate,
            dup_rate=self.dup_rate,
            seed=self.seed,
            gzip=self.gzip,
            agencies=self.agencies,
            parts_per_day=self.parts_per_day,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """generate's flags, then the common ones."""
    parser.add_argument("--records", type=int, help="total rows (default 100000)")
    parser.add_argument("--files", type=int, help="bronze files (default 20)")
    parser.add_argument("--bad-rate", dest="bad_rate", type=float, help="default 0.01")
    parser.add_argument("--dup-rate", dest="dup_rate", type=float, help="default 0.05")
    parser.add_argument("--seed", type=int, help="default 7")
    parser.add_argument("--out", metavar="URL", help="object store URL (default: --store)")
    parser.add_argument("--gzip", action="store_true", default=None, help="write .ndjson.gz")
    parser.add_argument("--agencies", type=int, help="default 20")
    parser.add_argument("--parts-per-day", dest="parts_per_day", type=int, help="default 1")
    add_common_arguments(parser, agency_required=False)
