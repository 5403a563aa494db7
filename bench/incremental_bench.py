"""Incremental bronze -> silver benchmark (Delta silver): the job beside two peers, side by side.

Run: PYTHONPATH=src/python:tests/python python bench/incremental_bench.py [--quick]
         [--days 30,180] [--rows-per-day 20000] [--impls job,polars,dlt] [--stores local,s3]
         [--arrivals in-order,out-of-order] [--s3-days 4] [--s3-rows-per-day 2000]
         [--scratch DIR] [--out DIR]

One agency, D+1 days generated, the last held back: (a) full build over D days, (b) the run
after the held-back day arrives, (c) a re-run with nothing new; out of order: the newest day
first, then the rest. Every table is read back with deltalake after each run and compared with
the reference transform of all bronze so far. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from b2s import moto_s3
from incr.data import ensure_days
from incr.dlt_venv import ensure_dlt_python
from incr.lanes import DLT, JOB, POLARS, Lane, new_lane
from incr.scenarios import Setup, in_order, out_of_order
from incr.table import Row, as_markdown, cells

IMPLS = {"job": JOB, "polars": POLARS, "dlt": DLT}
S3_IMPLS = (JOB, POLARS)  # the dlt peer runs on the local store only


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke size: 3 days x 500 rows, S3 2 days x 200")
    add("--days", type=_csv, default=["30", "180"], help="D values, one dataset each")
    add("--rows-per-day", type=int, default=20_000)
    add("--impls", type=_csv, default=list(IMPLS), help="job,polars,dlt")
    add("--stores", type=_csv, default=["local", "s3"])
    add("--arrivals", type=_csv, default=["in-order", "out-of-order"])
    add("--s3-days", type=int, default=4, help="D of the S3 rows (moto is slow: keep it small)")
    add("--s3-rows-per-day", type=int, default=2_000)
    add("--scratch", type=Path, default=Path("/tmp/incr-bench"))
    add("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    return parser


def _progress(row: Row) -> None:
    usage = row.run.usage
    wall = f"{usage.wall_s:.2f} s" if usage is not None else "-"
    what = f"{row.data} {row.arrival} {row.scenario}: {row.lane.impl} {row.lane.kind}"
    print(f"#   {what}: {wall}, {row.check_text}", flush=True)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _lanes(
    impls: list[str], where: Path, *, bucket: str = "", endpoint: str | None = None
) -> list[Lane]:
    """A lane per implementation: stores under `where`, or buckets named bucket-<impl>."""
    lanes = []
    for impl in impls:
        work = where / _slug(impl)
        store = f"s3://{bucket}-{_slug(impl)}"[:68] if bucket else str(work / "store")
        python, unavailable = None, ""
        if impl == DLT:
            found, unavailable = ensure_dlt_python()
            python = str(found) if found is not None else None
        lanes.append(
            new_lane(impl, store, work, endpoint=endpoint, python=python, unavailable=unavailable)
        )
    return lanes


def _local(args: argparse.Namespace, impls: list[str], days: int, rows: int) -> list[Row]:
    setup = Setup(ensure_days(days, rows, args.scratch), f"{days} d x {rows:,}", None, _progress)
    work = args.scratch / "runs" / f"{days}x{rows}"
    found: list[Row] = []
    if "in-order" in args.arrivals:
        found += in_order(setup, _lanes(impls, work / "in-order"))
    if "out-of-order" in args.arrivals:
        found += out_of_order(setup, _lanes(impls, work / "out-of-order"))
    return found


def _s3(args: argparse.Namespace, impls: list[str], days: int, rows: int) -> list[Row]:
    impls = [impl for impl in impls if impl in S3_IMPLS]
    if not impls:
        return []
    with moto_s3.moto_server() as endpoint:
        label = f"{days} d x {rows:,}"
        setup = Setup(ensure_days(days, rows, args.scratch), label, endpoint, _progress)
        work = args.scratch / "runs" / f"s3-{days}x{rows}"
        lanes = _lanes(impls, work, bucket=f"incr-{days}x{rows}", endpoint=endpoint)
        return in_order(setup, lanes, rerun=False)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.days, args.rows_per_day, args.s3_days, args.s3_rows_per_day = ["3"], 500, 2, 200
    unknown = [name for name in args.impls if name not in IMPLS]
    if unknown:
        raise SystemExit(f"unknown implementation(s) {unknown}; known: {', '.join(IMPLS)}")
    impls = [IMPLS[name] for name in args.impls]
    rows: list[Row] = []
    if "local" in args.stores:
        for days in args.days:
            rows += _local(args, impls, int(days), args.rows_per_day)
    if "s3" in args.stores:
        rows += _s3(args, impls, args.s3_days, args.s3_rows_per_day)
    report = f"{_header()}\n\n{as_markdown(cells(rows))}\n"
    print(f"\n{report}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"incremental-{stamp}.md"
    path.write_text(report)
    print(f"written to {path}")
    return 0 if all(row.ok for row in rows) else 1


def _header() -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"incremental bronze -> silver (Delta) benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}"
        f" UTC, {os.cpu_count()} cores, load average {load} (1/5/15 min; the machine is shared),"
        f" Python {sys.version.split()[0]}; one agency, R rows a day; `x fastest peer` = wall s"
        " over the fastest peer's in the same scenario and store"
    )


if __name__ == "__main__":
    raise SystemExit(main())
