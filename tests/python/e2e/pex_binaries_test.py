"""Every job's PEX: only its own distributions and adapters, and it runs with a bare interpreter
outside the repository (`env -i HOME=<tmp> PATH=/usr/bin:/bin python3.11 -I <pex>`).

Pants builds the PEXes into the sandbox (runtime_package_dependencies in BUILD) as
src.python.jobs/<name>.pex; packed layout: a directory with PEX-INFO, __main__.py, the sources
and .deps/<wheel>.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from deltalake import DeltaTable

JOBS = (
    "generate",
    "bronze_to_silver",
    "agency_data_job",
    "get_s3_files",
    "ingest_api",
    "backfill",
    "replay_dead_letters",
    "maintain",
)
BINARIES = (*JOBS, "data-pipeline", "data-pipeline-get-s3-files")

# The adapter modules a PEX may hold; which ones is decided by what its job modules import.
STORES = {"local_object_store", "s3_object_store"}
HISTORIES = {"sqlite_run_history", "pg_run_history"}
SOURCES = {"bronze_record_source", "http_record_source", "pg_record_source"}
EVERY_ADAPTER = STORES | HISTORIES | SOURCES
# What an adapter needs beyond the core (attrs, cattrs, orjson, OpenTelemetry).
ADAPTER_DISTRIBUTIONS = {
    "s3_object_store": {"aioboto3", "aiobotocore", "botocore", "aiohttp"},
    "pg_run_history": {"asyncpg"},
    "pg_record_source": {"asyncpg"},
    "http_record_source": {"aiohttp", "yarl"},
}
# In the python-default resolve for tests, benchmarks and type checking only: never in a PEX.
TEST_ONLY = {
    "pytest", "pytest_asyncio", "pluggy", "iniconfig", "hypothesis", "sortedcontainers", "moto",
    "responses", "flask", "flask_cors", "werkzeug", "xmltodict", "duckdb", "polars",
    "kubernetes_validate", "types_pyyaml", "mypy", "ruff", "black",
}  # fmt: skip

PEX_DIRS = (Path("src.python.jobs"), Path("dist/src.python.jobs"))
PYTHON = "/usr/bin/python3.11" if Path("/usr/bin/python3.11").exists() else "python3.11"


@attrs.frozen
class Pex:
    name: str
    path: Path
    distributions: frozenset[str]  # normalised project names
    adapters: frozenset[str]  # the etl_core.adapters modules of EVERY_ADAPTER present
    size: int


def _project(wheel: str) -> str:
    return wheel.split("-", 1)[0].lower().replace("-", "_").replace(".", "_")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _find(name: str) -> Path:
    for directory in PEX_DIRS:
        if (directory / f"{name}.pex").exists():
            return (directory / f"{name}.pex").resolve()
    pytest.fail(
        f"no {name}.pex under {', '.join(map(str, PEX_DIRS))} (cwd {Path.cwd()}): run this test"
        f" through Pants, or `./pants package src/python/jobs:{name}` first"
    )


@pytest.fixture(scope="module")
def pexes() -> dict[str, Pex]:
    found: dict[str, Pex] = {}
    for name in BINARIES:
        path = _find(name)
        assert path.is_dir(), f"{path}: expected a packed-layout PEX directory"
        info = json.loads((path / "PEX-INFO").read_text())
        adapters = path / "etl_core" / "adapters"
        found[name] = Pex(
            name=name,
            path=path,
            distributions=frozenset(_project(wheel) for wheel in info["distributions"]),
            adapters=frozenset(a for a in EVERY_ADAPTER if (adapters / f"{a}.py").exists()),
            size=_size(path),
        )
    return found


def _reads_record_sources(pex: Pex) -> bool:
    """Whether a job module in the PEX opens a record source."""
    return any("open_record_source(" in f.read_text() for f in (pex.path / "jobs").glob("*.py"))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HOME (and so PEX_ROOT) for every run: each PEX builds its venv once, later runs are warm."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture()
def workdir(tmp_path: Path) -> Iterator[Path]:
    work = tmp_path / "work"
    work.mkdir()
    yield work
    shutil.rmtree(work, ignore_errors=True)


def bare(
    home: Path, cwd: Path, pex: Pex, *args: str, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run pex with an isolated interpreter, an empty environment (but env) and cwd outside the
    repo."""
    return subprocess.run(
        [PYTHON, "-I", str(pex.path), *args],
        cwd=cwd,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_each_pex_carries_only_its_own_distributions_and_adapters(pexes: dict[str, Pex]) -> None:
    print(f"\n{'PEX':<28} {'dists':>5} {'MB':>6}  adapters")
    for pex in pexes.values():
        print(f"{pex.name:<28} {len(pex.distributions):>5} {pex.size / 1e6:>6.1f}  "
              f"{', '.join(sorted(pex.adapters))}")  # fmt: skip
    for pex in pexes.values():
        assert not pex.distributions & TEST_ONLY, (pex.name, sorted(pex.distributions & TEST_ONLY))
        # Every job opens stores and records its run (SQLite by default); only a job that reads
        # record sources carries source adapters.
        assert STORES | {"sqlite_run_history"} <= pex.adapters, pex.name
        assert bool(pex.adapters & SOURCES) == _reads_record_sources(pex), pex.name
        needed = set().union(*(ADAPTER_DISTRIBUTIONS.get(a, set()) for a in pex.adapters))
        assert needed <= pex.distributions, (pex.name, sorted(needed - pex.distributions))
        assert {"attrs", "cattrs", "opentelemetry_sdk"} <= pex.distributions, pex.name
        # Only the umbrella renders Kubernetes manifests.
        assert ("pyyaml" in pex.distributions) == (pex.name == "data-pipeline"), pex.name
    # The point of per-job PEXes: a job that uses no PostgreSQL carries no asyncpg.
    assert "asyncpg" not in pexes["generate"].distributions
    assert "pg_run_history" not in pexes["generate"].adapters
    # ingest_api reads HTTP APIs and bronze files, never PostgreSQL sources.
    assert pexes["ingest_api"].adapters & SOURCES == {"http_record_source", "bronze_record_source"}
    assert pexes["agency_data_job"].adapters == pexes["data-pipeline"].adapters == EVERY_ADAPTER
    for name in set(BINARIES) - {"generate"}:
        assert pexes[name].adapters >= HISTORIES, name
    # maintain reaches the tables through delta-rs; the generator never touches them.
    assert {"deltalake", "pyarrow"} <= pexes["maintain"].distributions
    assert (pexes["maintain"].path / "etl_core" / "adapters" / "delta_maintenance.py").exists()
    assert "deltalake" not in pexes["generate"].distributions
    assert "asyncpg" in pexes["agency_data_job"].distributions
    assert pexes["generate"].size < pexes["bronze_to_silver"].size < pexes["data-pipeline"].size


def test_each_pex_prints_its_usage_with_a_bare_interpreter_outside_the_repo(
    pexes: dict[str, Pex], home: Path, workdir: Path
) -> None:
    print(f"\n{'PEX':<28} {'first --help':>12} {'warm --help':>12}")
    for pex in pexes.values():
        times = []
        for _ in range(2):
            started = time.perf_counter()
            result = bare(home, workdir, pex, "--help")
            times.append(time.perf_counter() - started)
            assert result.returncode == 0, (pex.name, result.stdout, result.stderr[-3000:])
            assert result.stdout.startswith("usage: "), (pex.name, result.stdout[:500])
        print(f"{pex.name:<28} {times[0]:>11.2f}s {times[1]:>11.2f}s")
    assert not list(workdir.iterdir()), "--help wrote into the working directory"


def test_the_main_job_runs_from_its_pex_against_a_local_store(
    pexes: dict[str, Pex], home: Path, workdir: Path
) -> None:
    store, history = f"file://{workdir}/store", f"sqlite:///{workdir}/h.sqlite3"
    generated = bare(home, workdir, pexes["generate"], "--records", "2000", "--files", "6",
                     "--agencies", "3", "--out", store, "--history", history)  # fmt: skip
    assert generated.returncode == 0, generated.stderr[-3000:]

    inline = bare(home, workdir, pexes["bronze_to_silver"], "--agency-id", "1", "--workers", "1",
                  "--store", store, "--history", history)  # fmt: skip
    assert inline.returncode == 0, inline.stderr[-3000:]
    # A process pool inside a PEX: spawned workers import the PEX's main module again.
    pooled = bare(home, workdir, pexes["bronze_to_silver"], "--agency-id", "2", "--workers", "2",
                  "--store", store, "--history", history)  # fmt: skip
    assert pooled.returncode == 0, pooled.stderr[-3000:]
    silver = DeltaTable(str(workdir / "store" / "silver")).to_pyarrow_table().to_pylist()
    assert {row["agency_id"] for row in silver} == {1, 2}
    assert len({(row["agency_id"], row["record_id"]) for row in silver}) == len(silver)

    runs = bare(home, workdir, pexes["data-pipeline"], "runs", "--history", history, "--json")
    assert runs.returncode == 0, runs.stderr[-3000:]
    rows = json.loads(runs.stdout)
    done = {(row["job"], row["agency_id"]): row["status"] for row in rows}
    assert done == {
        ("generate", None): "succeeded",
        ("bronze_to_silver", 1): "succeeded",
        ("bronze_to_silver", 2): "succeeded",
    }, runs.stdout
    workers = {row["agency_id"]: row["parameters"].get("workers") for row in rows}
    assert workers[2] == 2, runs.stdout


def test_the_seed_documents_invocations_work_as_written(
    pexes: dict[str, Pex], home: Path, workdir: Path
) -> None:
    source = workdir / "docs" / "agency_id=10"
    source.mkdir(parents=True)
    (source / "a.pdf").write_bytes(b"%PDF a")
    history = f"sqlite:///{workdir}/h.sqlite3"
    seed = ["--agency-id", "10", "--source-bucket", f"file://{source.parent}",
            "--destination-bucket", f"file://{workdir}/lake", "--history", history]  # fmt: skip

    # data-pipeline-get-s3-files --agency-id 10 --source-bucket ... --destination-bucket ...
    console = bare(home, workdir, pexes["data-pipeline-get-s3-files"], *seed)
    # docker run IMAGE --agency-id 10 ...: the umbrella as entrypoint, its default job named.
    image = bare(home, workdir, pexes["data-pipeline"], *seed, ETL_DEFAULT_JOB="get_s3_files")
    # data-pipeline run <job> ... --run-id run-20260118-123, then the same again (a retry).
    retried = [
        bare(
            home,
            workdir,
            pexes["data-pipeline"],
            "run",
            "get_s3_files",
            "--",
            *seed,
            "--run-id",
            "run-20260118-123",
        )  # fmt: skip
        for _ in range(2)
    ]

    for result in (console, image, *retried):
        assert result.returncode == 0, (result.args, result.stdout, result.stderr[-3000:])
    assert "run run-20260118-123.2 succeeded" in retried[1].stdout
    runs = bare(home, workdir, pexes["data-pipeline"], "runs", "--history", history, "--json")
    rows = json.loads(runs.stdout)
    assert [row["job"] for row in rows] == ["get_s3_files"] * 4
    assert {row["status"] for row in rows} == {"succeeded"}
    assert {row["run_id"] for row in rows} >= {"run-20260118-123", "run-20260118-123.2"}
    assert (workdir / "lake" / "bronze" / "agency_id=10").is_dir()


def test_a_url_whose_adapter_the_pex_lacks_is_a_configuration_error(
    pexes: dict[str, Pex], home: Path, workdir: Path
) -> None:
    history = "postgresql://etl:s3cret@db/etl"
    store = f"file://{workdir}/store"
    result = bare(home, workdir, pexes["generate"], "--out", store, "--history", history)
    assert result.returncode == 2, (result.stdout, result.stderr[-3000:])
    assert (
        "run history 'postgresql://etl:***@db/etl' needs etl_core.adapters.pg_run_history, which"
        " this binary does not include (it ships: sqlite). Use the data-pipeline binary"
    ) in result.stderr
    assert "s3cret" not in result.stdout + result.stderr


def test_maintain_runs_from_its_pex_on_the_tables_bronze_to_silver_wrote(
    pexes: dict[str, Pex], home: Path, workdir: Path
) -> None:
    store, history = f"file://{workdir}/store", f"sqlite:///{workdir}/h.sqlite3"
    generated = bare(home, workdir, pexes["generate"], "--records", "1000", "--files", "4",
                     "--agencies", "2", "--out", store, "--history", history)  # fmt: skip
    assert generated.returncode == 0, generated.stderr[-3000:]
    folded = bare(home, workdir, pexes["bronze_to_silver"], "--agency-id", "1", "--workers", "1",
                  "--store", store, "--history", history)  # fmt: skip
    assert folded.returncode == 0, folded.stderr[-3000:]

    result = bare(home, workdir, pexes["maintain"], "--store", store, "--history", history,
                  "--retention-hours", "0")  # fmt: skip

    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    assert "checkpoint at v" in result.stdout
    assert list((workdir / "store" / "silver" / "_delta_log").glob("*.checkpoint.parquet"))
