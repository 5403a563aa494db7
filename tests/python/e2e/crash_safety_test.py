"""SIGKILL bronze_to_silver at every failpoint and at random times: each partition shows its old
or its new generation, never a mix; the next run repairs it exactly; the one after writes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from e2e.store_views import View, cli, cli_env, snapshot, summary, unreferenced, views

AGENCY = 1
LEASE = f"bronze_to_silver/agency={AGENCY}"
TTL = "1"  # seconds: a killed run's lease frees up soon; heartbeats every 1/3 s
# 3 agencies x 4 days, ~167 rows per file; agency 1 has 4 partitions.
GENERATE = ["--records", "2000", "--files", "12", "--agencies", "3", "--seed", "5"]
JOB = "bronze_to_silver"


@dataclass
class World:
    root: Path
    bronze: dict[str, Path] = field(default_factory=dict)  # "v1", "v2"
    stores: dict[str, Path] = field(default_factory=dict)  # clean outputs: "v1", "v2"
    expected: dict[str, dict[str, View | None]] = field(default_factory=dict)


def _run(
    world: World,
    store: Path,
    history: str,
    bronze: str,
    *extra: str,
    env: dict[str, str] | None = None,
    ttl: str = TTL,
) -> subprocess.CompletedProcess[str]:
    return cli(world.root, *_argv(world, store, history, bronze, *extra, ttl=ttl), env=env)


def _argv(
    world: World, store: Path, history: str, bronze: str, *extra: str, ttl: str = TTL
) -> list[str]:
    return ["run", JOB, "--", "--agency-id", str(AGENCY), "--bronze", f"file://{world.bronze[bronze]}",
            "--store", f"file://{store}", "--history", history, "--lease-ttl-seconds", ttl,
            "--workers", "2", "--batch-files", "2", "--log-format", "json", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    world = World(tmp_path_factory.mktemp("crash"))
    v1 = world.bronze["v1"] = world.root / "bronze-v1"
    result = cli(world.root, "run", "generate", "--", *GENERATE, "--out", f"file://{v1}",
                 "--history", f"sqlite:///{world.root}/gen.sqlite3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    # v2: the same bronze under a renamed agency 1, so every partition of agency 1 changes.
    v2 = world.bronze["v2"] = world.root / "bronze-v2"
    shutil.copytree(v1, v2)
    agencies = (v2 / "agencies.csv").read_text()
    (v2 / "agencies.csv").write_text(agencies.replace("Los Angeles Police Department", "LAPD"))
    for version in ("v1", "v2"):
        store = world.stores[version] = world.root / f"clean-{version}"
        result = _run(world, store, f"sqlite:///{world.root}/clean-{version}.sqlite3", version)
        assert result.returncode == 0, result.stderr
        world.expected[version] = views(store, AGENCY)
    assert len(world.expected["v1"]) == 4
    for partition, view in world.expected["v1"].items():
        assert view is not None
        assert view != world.expected["v2"][partition]
    return world


@dataclass(frozen=True)
class Scenario:
    name: str
    start: str  # "empty" or "v1": the store before the killed run
    bronze: str  # the input of the killed run and the repair
    failpoint: str | None = None
    delay: float | None = None  # timed kills: seconds after the run's first write
    extra: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.name


def _fresh(spec: str) -> Scenario:
    return Scenario(f"fresh-{spec}", "empty", "v1", f"{JOB}.{spec}")


def _republish(spec: str) -> Scenario:
    return Scenario(f"republish-{spec}", "v1", "v2", f"{JOB}.{spec}")


_delays = random.Random(20240108)
TINY = ("--rows-per-file", "5")
SCENARIOS = [
    _fresh("planned"),
    _fresh("transformed@2"),  # mid-transform
    _fresh("store.after_put@1"),  # the first data file written
    _fresh("store.after_put@3"),  # inside a later partition
    _fresh("store.before_commit@1"),
    _fresh("store.after_commit@1"),  # the first partition committed
    _fresh("before_record@2"),
    _fresh("partition_done@2"),  # between partitions
    _fresh("before_finish"),
    _republish("transformed@3"),
    _republish("store.after_put@2"),
    _republish("store.before_commit@2"),
    _republish("store.after_commit@1"),  # new generation committed, old files not swept yet
    _republish("store.after_delete@1"),  # in the middle of the sweep
    _republish("partition_done@3"),
    _republish("before_finish"),
    Scenario(
        "reprocess-after_commit@2",
        "v1",
        "v1",
        f"{JOB}.store.after_commit@2",
        extra=("--reprocess",),
    ),
    Scenario(
        "reprocess-after_delete@3",
        "v1",
        "v1",
        f"{JOB}.store.after_delete@3",
        extra=("--reprocess",),
    ),
    # A changed input under --reprocess: the repair run (without it) finishes the job.
    Scenario(
        "reprocess-changed-after_commit@2",
        "v1",
        "v2",
        f"{JOB}.store.after_commit@2",
        extra=("--reprocess",),
    ),
    # Tiny silver files make the write phase long (~130 puts) so that random kills land in it.
    *(
        Scenario(f"fresh-timed-{i}", "empty", "v1", delay=_delays.uniform(0, 0.5), extra=TINY)
        for i in range(4)
    ),
    *(
        Scenario(f"republish-timed-{i}", "v1", "v2", delay=_delays.uniform(0, 0.5), extra=TINY)
        for i in range(4)
    ),
]


def _workers_alive(token: str) -> list[int]:
    """Processes (job or pool workers) whose environment carries the token."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"ETL_TEST_TOKEN={token}".encode() in (entry / "environ").read_bytes():
                    alive.append(int(entry.name))
            except OSError:
                continue
    return alive


def _written(store: Path) -> set[str]:
    return {
        str(p) for kind in ("silver", "deadletter", "_manifests") for p in (store / kind).rglob("*")
    }


def _await_first_write(process: subprocess.Popen[bytes], store: Path) -> None:
    before = _written(store)
    deadline = time.monotonic() + 60
    while _written(store) == before:
        assert process.poll() is None, "the run ended before writing anything"
        assert time.monotonic() < deadline
        time.sleep(0.002)


def _kill_run(world: World, scenario: Scenario, store: Path, history: str) -> int:
    token = uuid.uuid4().hex
    env = {"ETL_TEST_TOKEN": token}
    argv = _argv(world, store, history, scenario.bronze, *scenario.extra)
    if scenario.failpoint is not None:
        result = cli(world.root, *argv, env={**env, "ETL_FAILPOINTS": scenario.failpoint})
        assert result.returncode == -signal.SIGKILL, (result.stdout, result.stderr[-2000:])
        code = result.returncode
    else:
        assert scenario.delay is not None
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", *argv], cwd=world.root, env=cli_env(world.root, env),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _await_first_write(process, store)
        time.sleep(scenario.delay)
        process.kill()
        code = process.wait(timeout=60)
    if sys.platform == "linux":  # pool workers notice their parent is gone and exit
        deadline = time.monotonic() + 10
        while _workers_alive(token) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _workers_alive(token) == [], "orphaned worker processes"
    return code


def _repair(
    world: World, store: Path, history: str, bronze: str
) -> subprocess.CompletedProcess[str]:
    """Re-run until the killed run's lease has expired (exit 75 until then)."""
    deadline = time.monotonic() + 30
    while True:
        result = _run(world, store, history, bronze)
        if result.returncode != 75 or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_a_killed_run_leaves_whole_generations_and_the_next_run_repairs_them(
    world: World, scenario: Scenario, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    if scenario.start == "v1":
        shutil.copytree(world.stores["v1"], store)
    history = f"sqlite:///{tmp_path}/history.sqlite3"
    before = world.expected["v1"] if scenario.start == "v1" else {}
    after = world.expected[scenario.bronze]

    code = _kill_run(world, scenario, store, history)

    visible = views(store, AGENCY)  # raises IncompleteView if a manifest lists a missing file
    for partition, view in visible.items():
        allowed = [before.get(partition), after[partition]]
        assert view in allowed, f"{scenario}: {partition} shows neither generation (exit {code})"

    repaired = _repair(world, store, history, scenario.bronze)
    assert repaired.returncode == 0, repaired.stderr[-3000:]
    assert views(store, AGENCY) == after
    assert unreferenced(store) == []

    quiet = snapshot(store)
    again = _run(world, store, history, scenario.bronze)
    assert again.returncode == 0, again.stderr[-3000:]
    assert summary(again)["outcome"].startswith("up to date"), again.stdout
    assert snapshot(store) == quiet


def _runs_json(world: World, history: str, **env: str) -> list[dict[str, object]]:
    result = cli(world.root, "runs", "--history", history, "--job", JOB, "--json", env=env)
    assert result.returncode == 0, result.stderr
    runs: list[dict[str, object]] = json.loads(result.stdout)
    return runs


def test_a_killed_run_holds_its_lease_until_the_ttl_then_shows_as_stale(
    world: World, tmp_path: Path
) -> None:
    store, history = tmp_path / "store", f"sqlite:///{tmp_path}/history.sqlite3"
    env = {"ETL_FAILPOINTS": f"{JOB}.store.after_commit@1"}
    killed = _run(world, store, history, "v1", env=env, ttl="4")
    assert killed.returncode == -signal.SIGKILL

    held = _run(world, store, history, "v1", ttl="4")
    assert held.returncode == 75, held.stderr[-2000:]
    assert f"lease '{LEASE}' is held" in held.stderr

    [dead] = _runs_json(world, history)
    assert dead["effective_status"] == "running"  # default stale_after_seconds: 900
    time.sleep(1.5)
    [dead] = _runs_json(world, history, ETL_STALE_AFTER_SECONDS="1")
    assert (dead["status"], dead["effective_status"]) == ("running", "stale")

    repaired = _repair(world, store, history, "v1")
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    statuses = {
        str(run["run_id"]): str(run["effective_status"])
        for run in _runs_json(world, history, ETL_STALE_AFTER_SECONDS="1")
    }
    assert statuses[str(dead["run_id"])] == "stale"
    assert sorted(statuses.values()) == ["stale", "succeeded"]
    assert views(store, AGENCY) == world.expected["v1"]


def _lease_expiry(database: Path) -> dt.datetime | None:
    """expires_at of agency 1's lease while its run is running (read-only: no contention)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
            running = conn.execute(
                "SELECT 1 FROM etl_runs WHERE job = ? AND status = 'running'", (JOB,)
            ).fetchone()
            row = conn.execute("SELECT expires_at FROM etl_leases WHERE name = ?", (LEASE,))
            lease = row.fetchone()
    except sqlite3.Error:  # not created yet
        return None
    return dt.datetime.fromisoformat(lease[0]) if running and lease else None


def test_heartbeats_keep_the_lease_of_a_run_that_outlives_its_ttl(tmp_path: Path) -> None:
    bronze, store, database = tmp_path / "bronze", tmp_path / "store", tmp_path / "h.sqlite3"
    generated = cli(tmp_path, "run", "generate", "--", "--records", "180000", "--files", "8",
                    "--agencies", "1", "--out", str(bronze),
                    "--history", f"sqlite:///{database}")  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    ttl = 2.0  # heartbeats every ttl/3: a stall of 2/3 of the TTL is survived, even on busy CI
    argv = ["run", JOB, "--", "--agency-id", "1", "--bronze", str(bronze), "--store", str(store),
            "--history", f"sqlite:///{database}", "--lease-ttl-seconds", str(ttl),
            "--workers", "2", "--batch-files", "1", "--rows-per-file", "200", "--log-format",
            "json"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", *argv], cwd=tmp_path, env=cli_env(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    expired: list[dt.datetime] = []
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    while process.poll() is None:
        time.sleep(0.1)
        expiry = _lease_expiry(database)
        now = dt.datetime.now(dt.UTC)
        if expiry is None:
            continue
        first, last = first or now, now
        if expiry <= now:
            expired.append(now)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    assert first is not None
    assert last is not None
    assert (last - first).total_seconds() > ttl, "the run did not outlive its TTL: nothing proven"
    assert expired == [], "the lease expired while the run was running"
