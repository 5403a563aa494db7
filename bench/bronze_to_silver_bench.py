"""bronze -> silver benchmark (WORKLOAD.md): the job per agency, local and S3, beside peers.

Run: PYTHONPATH=src/python:tests/python python bench/bronze_to_silver_bench.py
         [--sizes 100000,1000000] [--stores local,s3] [--peers floor,plain,duckdb,polars]
         [--workers auto,1] [--at-once 1,2] [--batched 1,2] [--repeat N] [--agencies 20]
         [--scratch DIR] [--out DIR]

Generated data is cached under --scratch by the generator options' hash; the table is printed
and written to --out as markdown. See bench/README.md for what each column measures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

import attrs
from b2s import moto_s3, table  # beside this script: sys.path[0] when run as a script
from b2s.dataset import Dataset, ensure_dataset
from b2s.runs import Outcome, empty_trash, run_floor, run_job, run_peer
from data_pipeline.workload.generate import WorkloadOptions

# peer name -> (module under peers/, third-party module it needs, semantics, note)
PEERS = {
    "floor": ("parse_floor", "orjson", "floor", "not a peer: orjson decodes every line, no more"),
    "plain": ("plain_orjson", "orjson", "exact", "1 process, 1 thread"),
    "duckdb": ("duckdb_peer", "duckdb", "approx", "1 process, DuckDB threads = cores"),
    "polars": ("polars_peer", "polars", "approx", "1 process, Polars threads = cores"),
}
ROWS_PER_FILE = 5_000  # 100k -> 20 files, 1M -> 200 files, as WORKLOAD.md sizes them


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_csv, default=["100000", "1000000"])
    parser.add_argument("--stores", type=_csv, default=["local", "s3"])
    parser.add_argument("--peers", type=_csv, default=list(PEERS))
    parser.add_argument(
        "--workers",
        type=_csv,
        default=["auto"],
        help="the job's --workers, one row per value (default auto: the job's own choice)",
    )
    parser.add_argument(
        "--at-once", type=_csv, default=["1"], help="agency runs at a time, one row per value"
    )
    parser.add_argument(
        "--batched",
        type=_csv,
        default=[],
        help="also deal the agencies to K processes running theirs in-process, one row per K",
    )
    parser.add_argument(
        "--backfill",
        type=_csv,
        default=["2"],
        help="also run one `backfill --all-agencies --max-parallel K` over the whole dataset "
        "(a full build), one row per K (default 2; empty to skip)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each row, interleaved; the fastest is shown"
    )
    parser.add_argument(
        "--agencies", type=int, default=20, help="agencies in the generated data (default 20)"
    )
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/b2s-bench"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    return parser


def _dataset(records: int, agencies: int, scratch: Path) -> Dataset:
    files = max(agencies, records // ROWS_PER_FILE)
    options = WorkloadOptions(records=records, files=files, agencies=agencies)
    dataset, generated = ensure_dataset(options, scratch)
    state = "generated" if generated else "cached"
    size = f"{records:,} records, {files} files, {dataset.input_bytes / 1e6:.1f} MB"
    print(f"# {size}: {state} at {dataset.root}", flush=True)
    return dataset


Plan = Callable[[], Outcome]


def _plans(
    args: argparse.Namespace, dataset: Dataset, endpoint: str | None, runnable: list[str]
) -> list[Plan]:
    """One measured run per table row, in table order."""
    work = args.scratch / "runs" / str(dataset.rows)
    configs = [
        (None if workers == "auto" else int(workers), int(at_once))
        for workers in args.workers
        for at_once in args.at_once
    ]
    plans: list[Plan] = []
    for store in args.stores:
        for index, (workers, at_once) in enumerate(configs if store == "local" else configs[:1]):
            plan = functools.partial(
                run_job, dataset, work / f"job-{store}-{index}", store=store, endpoint=endpoint
            )
            plans.append(functools.partial(plan, workers=workers, at_once=at_once))
    for batched in args.batched:
        where = work / f"job-batched-{batched}"
        plan = functools.partial(run_job, dataset, where, store="local", batched=int(batched))
        plans.append(functools.partial(plan, workers=configs[0][0]))
    for store in args.stores:
        for parallel in args.backfill:
            where = work / f"job-backfill-{store}-{parallel}"
            plan = functools.partial(
                run_job, dataset, where, store=store, endpoint=endpoint, backfill=int(parallel)
            )
            plans.append(functools.partial(plan, workers=configs[0][0]))
    for name in runnable:
        module, _, semantics, note = PEERS[name]
        if name == "floor":
            plans.append(functools.partial(run_floor, dataset, work / name))
            continue
        plans.append(
            functools.partial(
                run_peer, dataset, work / name, module=module, semantics=semantics, note=note
            )
        )
    return plans


def _run_size(
    args: argparse.Namespace, dataset: Dataset, endpoint: str | None, runnable: list[str]
) -> list[Outcome]:
    if "s3" in args.stores:
        assert endpoint is not None
        bucket = f"bronze-{dataset.rows}"
        moto_s3.create_bucket(endpoint, bucket)
        sent = moto_s3.upload_tree(dataset.root, endpoint, bucket)
        print(f"#   uploaded {sent / 1e6:.1f} MB to s3://{bucket} (untimed)", flush=True)
    plans = _plans(args, dataset, endpoint, runnable)
    runs: list[list[Outcome]] = [[] for _ in plans]
    for _ in range(args.repeat):  # interleaved, so a burst of load hits every row alike
        for plan, outcomes in zip(plans, runs, strict=True):
            outcomes.append(plan())
            _progress(outcomes[-1])
    return [_fastest(outcomes) for outcomes in runs]


def _fastest(outcomes: list[Outcome]) -> Outcome:
    """The fastest run (any failed run instead, so a failure is never hidden)."""
    failed = [o for o in outcomes if o.problems]
    chosen = failed[0] if failed else min(outcomes, key=lambda o: o.usage.wall_s)
    if len(outcomes) == 1:
        return chosen
    walls = "/".join(f"{o.usage.wall_s:.1f}" for o in outcomes)
    return attrs.evolve(chosen, note=f"{chosen.note}; best of {len(outcomes)}: {walls} s")


def _progress(outcome: Outcome) -> None:
    state = "ok" if not outcome.problems else "FAIL " + "; ".join(outcome.problems)
    what = f"{outcome.implementation} {outcome.store}"
    print(f"#   {what}: {outcome.usage.wall_s:.2f} s, {state}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    runnable = []
    for name in args.peers:
        if name not in PEERS:
            raise SystemExit(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
        if importlib.util.find_spec(PEERS[name][1]) is None:
            print(f"# peer {name}: skipped, {PEERS[name][1]} is not installed", flush=True)
        else:
            runnable.append(name)
    outcomes: list[Outcome] = []
    endpoint_cm = moto_s3.moto_server() if "s3" in args.stores else None
    endpoint = endpoint_cm.__enter__() if endpoint_cm is not None else None
    try:
        for size in args.sizes:
            dataset = _dataset(int(size), args.agencies, args.scratch)
            outcomes += _run_size(args, dataset, endpoint, runnable)
    finally:
        if endpoint_cm is not None:
            endpoint_cm.__exit__(None, None, None)
        empty_trash(args.scratch / "runs")
    lines = table.rows_of(outcomes)
    header = _header()
    print(f"\n{header}\n\n{table.as_text(lines)}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    report = args.out / f"bronze_to_silver-{stamp}.md"
    report.write_text(f"{header}\n\n{table.as_markdown(lines)}\n")
    print(f"\nwritten to {report}")
    return 0 if all(not o.problems for o in outcomes) else 1


def _header() -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"bronze -> silver benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, load average {load} (1/5/15 min; the machine is shared), "
        f"Python {sys.version.split()[0]}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
