"""Run built job images under podman, locked down as in production, on a mounted local store:
`generate` writes a small reference data set, `bronze_to_silver` folds agency 1 into the silver
Delta table, `data-pipeline runs` reads the run history back.

    PYTHONPATH=tools python3.11 -m job_images.smoke [--images dist/images]

Exits 1 naming the first step that failed (its output shown), 0 when all passed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from job_images.storage import LOCKED_DOWN, private_storage

# The store and history live on the mount: the images have no embedded defaults.
ENV = ("ETL_STORE_URL=file:///data/store", "ETL_HISTORY_URL=sqlite:////data/history.sqlite3")
STEPS = (
    ("generate", ("--records", "2000", "--agencies", "2", "--files", "2", "--seed", "7")),
    ("bronze_to_silver", ("--agency-id", "1", "--workers", "1")),
    ("data-pipeline", ("runs",)),
)


def smoke(images: Path) -> int:
    data = Path(tempfile.mkdtemp(prefix="etl-smoke-"))
    data.chmod(0o777)  # the containers run as nobody
    try:
        with private_storage() as storage:
            podman = storage.podman()
            for job, args in STEPS:
                started = time.monotonic()
                command = [*podman, "run", "--rm", *LOCKED_DOWN, "--volume", f"{data}:/data"]
                command += [flag for env in ENV for flag in ("--env", env)]
                command += [f"oci-archive:{images / f'{job}.oci.tar'}", *args]
                result = subprocess.run(
                    command, capture_output=True, text=True, timeout=600, check=False
                )
                print(
                    f"{job} {' '.join(args)}: exit {result.returncode} in "
                    f"{time.monotonic() - started:.1f} s",
                    flush=True,
                )
                if result.returncode != 0:
                    print(f"{result.stdout[-3000:]}{result.stderr[-3000:]}", file=sys.stderr)
                    return 1
            print(result.stdout.strip()[-1500:])
        silver = data / "store" / "silver"
        if not any(silver.rglob("*.parquet")):
            print(f"no silver parquet under {silver}", file=sys.stderr)
            return 1
        return 0
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="job_images.smoke", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=Path("dist/images"))
    return smoke(parser.parse_args(argv).images)


if __name__ == "__main__":
    raise SystemExit(main())
