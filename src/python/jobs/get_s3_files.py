"""Copy an agency's documents from a source bucket into the destination's bronze layout.

`data-pipeline-get-s3-files --agency-id 10 --source-bucket B --destination-bucket D`
(or `data-pipeline run get_s3_files -- ...`). Decisions (see data_pipeline/s3_copy*.py):

- Source: `--source-bucket` is a bucket name (`B`, `B/prefix`) or a URL (`s3://B/prefix`,
  `file:///dir`). The agency's documents are the objects under
  `<--source-prefix>/<--source-template>`, by default `agency_id=<id>/` (Hive style, like the
  rest of the platform; `--source-template "{agency_id}/"` for plain ids). The template must end
  with '/' so that agency 1 never matches agency 10's documents.
- Destination: `--destination-bucket` (name or URL; default the configured `--store`), key
  `bronze/agency_id=<id>/dt=<dt>/<name below the agency prefix>`. dt is `--dt`, else a
  `dt=YYYY-MM-DD` folder in the source key (dropped from the name), else the object's
  last-modified day (UTC), so a re-run on another day finds the same keys.
- Idempotent: a destination with the same size and etag (or, for multipart etags, written no
  earlier than the source changed, as `aws s3 sync` judges) is skipped; one that differs is a
  conflict unless `--overwrite`. Conflicts and failed copies are dead-letter objects, and this
  job's `--max-dead-letter-ratio` defaults to 0: any of them fails the run (exit 1; 75 if all
  were temporary) after the rest is copied and the copy manifest lists them all.
- Bounded: `--concurrency` objects in flight, at most `--max-inflight-mb` of bodies in memory
  (the ObjectStore port has no streaming put: each object is held whole while copied).
- Dry run: lists and heads, reports what would be copied; reads no bodies, writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Set
from datetime import date
from typing import TYPE_CHECKING

import attrs
from etl_core.adapters.every_history import every_history
from etl_core.errors import ConfigError
from etl_core.runner import JobOutcome, RunContext
from etl_core.setting_checks import at_least
from etl_core.settings import CommonSettings, add_common_arguments
from etl_core.urls import parse_store_url, redact

from jobs import _wiring

if TYPE_CHECKING:
    from data_pipeline.copy.run import CopyJob

NAME = "get_s3_files"
DESCRIPTION = "Copy an agency's documents from a source bucket into bronze, idempotently"
CONSOLE_SCRIPT = "data-pipeline-get-s3-files"
DEFAULT_TEMPLATE = "agency_id={agency_id}/"  # data_pipeline.copy.plan, not imported: cheap


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


def store_url(bucket: str) -> str:
    """A bucket name ('B' or 'B/prefix') as s3://B[/prefix]; s3:// and file:// URLs unchanged."""
    return bucket if "://" in bucket else f"s3://{bucket}"


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, allow_abbrev=False)
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
    return parser


def entrypoint(argv: list[str], prog: str = f"data-pipeline {NAME}") -> int:
    return _wiring.main(
        NAME, argv, _parser(prog), GetS3FilesSettings, _plan, histories=every_history
    )


def _plan(settings: GetS3FilesSettings, args: argparse.Namespace) -> _wiring.Planned:
    job = _copy_job(settings)

    async def body(ctx: RunContext) -> JobOutcome:
        return await run_copy(ctx, settings, job)

    parameters = {"source": job.source_url, "destination": job.destination_url}
    scope = f"agency={settings.agency_id}/to={job.destination_url}"
    return _wiring.Planned(body=body, parameters=parameters, lease_scope=scope)


def console_main() -> int:
    """The `data-pipeline-get-s3-files` console script (PEX entry point)."""
    return entrypoint(sys.argv[1:], prog=CONSOLE_SCRIPT)


def _destination(settings: GetS3FilesSettings) -> str:
    """--destination-bucket (a name or URL), else the store URL (where a path is a directory)."""
    if settings.destination_bucket is None:
        return settings.store_url
    return store_url(settings.destination_bucket)


def _copy_job(settings: GetS3FilesSettings) -> CopyJob:
    from data_pipeline.copy.documents import MIB
    from data_pipeline.copy.plan import CopyOptions
    from data_pipeline.copy.run import CopyJob
    from etl_core import clock

    assert settings.agency_id is not None  # agency_required
    assert settings.source_bucket is not None  # problems()
    source = store_url(settings.source_bucket)
    parsed = parse_store_url(source)
    if parsed.kind == "file" and parsed.path is not None and not parsed.path.is_dir():
        raise ConfigError(f"source directory {str(parsed.path)!r} does not exist")
    destination = _destination(settings)
    options = CopyOptions(
        agency_id=settings.agency_id,
        run_date=clock.now().date(),
        source_prefix=settings.source_prefix,
        template=settings.source_template,
        day=settings.dt,
        overwrite=settings.overwrite,
    )
    return CopyJob(
        source_url=redact(source),
        destination_url=redact(destination),
        options=options,
        concurrency=settings.concurrency,
        max_inflight_bytes=settings.max_inflight_mb * MIB,
    )


async def run_copy(ctx: RunContext, settings: GetS3FilesSettings, job: CopyJob) -> JobOutcome:
    """Open the source and the destination (a no-write view in a dry run) and copy."""
    from data_pipeline.copy.run import get_s3_files
    from etl_core.adapters.object_stores import open_object_store

    assert settings.source_bucket is not None
    destination_url = _destination(settings)
    limit = job.concurrency
    async with (
        open_object_store(store_url(settings.source_bucket), max_concurrency=limit) as source,
        open_object_store(destination_url, dry_run=ctx.dry_run, max_concurrency=limit) as target,
    ):
        return await get_s3_files(ctx, source, target, job)


JOB = (entrypoint, DESCRIPTION)

if __name__ == "__main__":
    raise SystemExit(console_main())
