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
from typing import TYPE_CHECKING

from data_pipeline.copy.configuration import GetS3FilesSettings, add_arguments, store_url
from etl_core.adapters.every_history import every_history
from etl_core.runner import JobOutcome, RunContext

from jobs import _wiring

if TYPE_CHECKING:
    from data_pipeline.copy.run import CopyJob

NAME = "get_s3_files"
DESCRIPTION = "Copy an agency's documents from a source bucket into bronze, idempotently"
CONSOLE_SCRIPT = "data-pipeline-get-s3-files"


def entrypoint(argv: list[str], prog: str = f"data-pipeline {NAME}") -> int:
    parser = _wiring.parser(NAME, DESCRIPTION, add_arguments, prog=prog)
    return _wiring.main(NAME, argv, parser, GetS3FilesSettings, _plan, histories=every_history)


def _plan(settings: GetS3FilesSettings, args: argparse.Namespace) -> _wiring.Planned:
    job = settings.copy_job()

    async def body(ctx: RunContext) -> JobOutcome:
        return await run_copy(ctx, settings, job)

    parameters = {"source": job.source_url, "destination": job.destination_url}
    scope = f"agency={settings.agency_id}/to={job.destination_url}"
    return _wiring.Planned(body=body, parameters=parameters, lease_scope=scope)


def console_main() -> int:
    """The `data-pipeline-get-s3-files` console script (PEX entry point)."""
    return entrypoint(sys.argv[1:], prog=CONSOLE_SCRIPT)


async def run_copy(ctx: RunContext, settings: GetS3FilesSettings, job: CopyJob) -> JobOutcome:
    """Open the source and the destination (a no-write view in a dry run) and copy."""
    from data_pipeline.copy.run import get_s3_files
    from etl_core.adapters.object_stores import open_object_store

    assert settings.source_bucket is not None
    destination_url = settings.destination()
    limit = job.concurrency
    async with (
        open_object_store(store_url(settings.source_bucket), max_concurrency=limit) as source,
        open_object_store(destination_url, dry_run=ctx.dry_run, max_concurrency=limit) as target,
    ):
        return await get_s3_files(ctx, source, target, job)


JOB = (entrypoint, DESCRIPTION)

if __name__ == "__main__":
    raise SystemExit(console_main())
