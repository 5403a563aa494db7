"""The configuration of a document copy (the get_s3_files job): its settings, flags and the copy
they spell. Cheap to import: `data-pipeline list` and `--help` read it."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Set
from datetime import date
from typing import TYPE_CHECKING

import attrs
from etl_core.errors import ConfigError
from etl_core.setting_checks import at_least
from etl_core.settings import CommonSettings, add_common_arguments
from etl_core.urls import parse_store_url, redact

if TYPE_CHECKING:
    from data_pipeline.copy.run import CopyJob

DEFAULT_TEMPLATE = "agency_id={agency_id}/"  # data_pipeline.copy.plan's, not imported: cheap


@attrs.frozen(kw_only=True)
class GetS3FilesSettings(CommonSettings):
    """Copy options; config keys and ETL_* variables are the field names."""

    # A document not copied leaves bronze incomplete: fail unless a tolerance is configured.
    max_dead_letter_ratio: float | None = 0.0
    source_bucket: str | None = None
    source_prefix: str = ""
    source_template: str = DEFAULT_TEMPLATE
    destination_bucket: str | None = None
    dt: date | None = None
    overwrite: bool = False
    concurrency: int = attrs.field(default=8, validator=at_least(1))
    max_inflight_mb: int = attrs.field(default=256, validator=at_least(1))

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if self.source_bucket is None:
            yield "source_bucket", "required: --source-bucket NAME, s3://NAME/prefix or file:///dir"
        for name in ("source_bucket", "destination_bucket"):
            value = getattr(self, name)
            if value is not None:
                try:
                    parse_store_url(store_url(value))
                except ConfigError as exc:
                    yield name, f"{exc} (local directories: file:///abs/path or file://./rel)"
        from data_pipeline.copy.plan import check_template

        try:
            check_template(self.source_template)
        except ConfigError as exc:
            yield "source_template", str(exc)

    def embedded_defaults_used(self, configured: Set[str]) -> Iterator[str]:
        # The copy writes to --destination-bucket, which falls back to the store.
        for name in super().embedded_defaults_used(configured):
            if name != "store_url":
                yield name
            elif "destination_bucket" not in configured:
                yield "destination_bucket"

    def destination(self) -> str:
        """--destination-bucket (a name or URL), else the store URL (where a path is a
        directory)."""
        if self.destination_bucket is None:
            return self.store_url
        return store_url(self.destination_bucket)

    def copy_job(self) -> CopyJob:
        """The copy these settings spell. Raises ConfigError for a missing source directory."""
        from etl_core import clock

        from data_pipeline.copy.documents import MIB
        from data_pipeline.copy.plan import CopyOptions
        from data_pipeline.copy.run import CopyJob

        assert self.agency_id is not None  # agency_required
        assert self.source_bucket is not None  # problems()
        source = store_url(self.source_bucket)
        parsed = parse_store_url(source)
        if parsed.kind == "file" and parsed.path is not None and not parsed.path.is_dir():
            raise ConfigError(f"source directory {str(parsed.path)!r} does not exist")
        options = CopyOptions(
            agency_id=self.agency_id,
            run_date=clock.now().date(),
            source_prefix=self.source_prefix,
            template=self.source_template,
            day=self.dt,
            overwrite=self.overwrite,
        )
        return CopyJob(
            source_url=redact(source),
            destination_url=redact(self.destination()),
            options=options,
            concurrency=self.concurrency,
            max_inflight_bytes=self.max_inflight_mb * MIB,
        )


def store_url(bucket: str) -> str:
    """A bucket name ('B' or 'B/prefix') as s3://B[/prefix]; s3:// and file:// URLs unchanged."""
    return bucket if "://" in bucket else f"s3://{bucket}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """get_s3_files' flags, then the common ones (--agency-id required; the dead-letter ratio
    defaulting to 0)."""
    add = parser.add_argument
    add(
        "--source-bucket",
        dest="source_bucket",
        metavar="BUCKET|URL",
        help="bucket name, s3://bucket/prefix, or file:///dir holding the documents (required)",
    )
    add(
        "--source-prefix",
        dest="source_prefix",
        metavar="PREFIX",
        help="key prefix inside the source before the agency folder (default: none)",
    )
    add(
        "--source-template",
        dest="source_template",
        metavar="TEMPLATE",
        help=f"agency folder below the prefix (default {DEFAULT_TEMPLATE!r}, ends with '/')",
    )
    add(
        "--destination-bucket",
        dest="destination_bucket",
        metavar="BUCKET|URL",
        help="bucket name or URL receiving bronze/ (default: --store)",
    )
    add(
        "--dt",
        metavar="YYYY-MM-DD",
        help="put every object in this dt partition (default: the "
        "dt= folder of its key, else its last-modified day in UTC)",
    )
    add(
        "--overwrite",
        action="store_true",
        default=None,
        help="replace destination objects whose content differs (default: conflict, not copied)",
    )
    add("--concurrency", type=int, metavar="N", help="objects copied at once (default 8)")
    add(
        "--max-inflight-mb",
        dest="max_inflight_mb",
        type=int,
        metavar="MB",
        help="object bodies held in memory at once (default 256; a bigger object goes alone)",
    )
    ratio = attrs.fields(GetS3FilesSettings).max_dead_letter_ratio.default
    add_common_arguments(parser, agency_required=True, max_dead_letter_ratio=ratio)
