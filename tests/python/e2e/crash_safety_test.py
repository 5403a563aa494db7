"""SIGKILL bronze_to_silver at every commit boundary and among its data files: each table shows
its old or its new version, never a mix; the re-run leaves silver, dead letters and the ledger
exactly as one uninterrupted run would; the run after it writes nothing.

Every kill happens at a failpoint (ETL_FAILPOINTS), and lease tests hold the run paused at one:
nothing here depends on how fast the machine is.
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
from etl_core.failpoints import reached_path

from e2e.cli_support import cli, cli_env, generate
from e2e.store_views import View, snapshot, summary, view

AGENCY = 1
LEASE = f"bronze_to_silver/agency={AGENCY}"
# Seconds. A killed run's lease frees up soon after the kill, so the repair waits little; a run
# still alive keeps it with heartbeats every TTL/3, through any stall shorter than 2 s.
TTL = "3"
# The lease tests hold a run paused; heartbeats keep its lease only if a stall is under 2/3 of it.
HELD_TTL = 6.0
# 3 agencies x 4 days, ~167 rows per file; agency 1 has 4 partitions.
GENERATE = ["--records", "2000", "--files", "12", "--agencies", "3", "--seed", "5"]
JOB = "bronze_to_silver"


@dataclass
class World:
    root: Path
    bronze: dict[str, Path] = field(default_factory=dict)  # "partial", "v1", "v2"
    stores: dict[str, Path] = field(default_factory=dict)  # clean outputs of each bronze
    expected: dict[str, View] = field(default_factory=dict)


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
    generate(world.root, f"file://{v1}", *GENERATE)
    # v2: the same bronze under a renamed agency 1: a changed agencies file rebuilds the agency.
    v2 = world.bronze["v2"] = world.root / "bronze-v2"
    shutil.copytree(v1, v2)
    agencies = (v2 / "agencies.csv").read_text()
    (v2 / "agencies.csv").write_text(agencies.replace("Los Angeles Police Department", "LAPD"))
    # partial: v1 without agency 1's last day, which then arrives (an incremental fold).
    partial = world.bronze["partial"] = world.root / "bronze-partial"
    shutil.copytree(v1, partial)
    days = sorted((partial / "bronze" / f"agency_id={AGENCY}").iterdir())
    shutil.rmtree(days[-1])
    starts = {"partial": None, "v1": "partial", "v2": "v1"}
    for version, start in starts.items():
        store = world.stores[version] = world.root / f"clean-{version}"
        if start is not None:  # v1 folds its last day onto partial; v2 rebuilds v1
            shutil.copytree(world.stores[start], store)
        history = f"sqlite:///{world.root}/clean-{version}.sqlite3"
        result = _run(world, store, history, version)
        assert result.returncode == 0, result.stderr
        world.expected[version] = view(store, AGENCY)
    assert len({world.expected[v] for v in ("partial", "v1", "v2")}) == 3
    return world


@dataclass(frozen=True)
class Scenario:
    name: str
    start: str  # "empty" or "v1": the store before the killed run
    bronze: str  # the input of the killed run and the repair
    failpoint: str
    extra: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.name


def _fresh(spec: str) -> Scenario:
    return Scenario(f"fresh-{spec}", "empty", "v1", spec)


def _incremental(spec: str) -> Scenario:
    return Scenario(f"incremental-{spec}", "partial", "v1", spec)


def _rebuild(spec: str) -> Scenario:
    return Scenario(f"rebuild-{spec}", "v1", "v2", spec)


_puts = random.Random(20240108)
# Tiny silver files make the write phase long: about 130 data files for agency 1 (a fresh fold
# and a rebuild alike), so kills drawn among them land all over it, at a failpoint each time.
TINY = ("--rows-per-file", "5")
PUTS = 120
# Every boundary of a fold: its ledger, the dead-letter commit, silver's data files and commit.
BOUNDARIES = (
    f"{JOB}.ledger_saved",
    "delta.deadletter.before_commit",
    "delta.deadletter.after_commit",
    f"{JOB}.store.after_put@3",  # a data file written, its commit not yet
    "delta.silver.before_commit",
    "delta.silver.after_commit",
    f"{JOB}.before_finish",
)
SCENARIOS = [
    _fresh(f"{JOB}.planned"),
    _fresh(f"{JOB}.transformed@2"),  # mid-transform
    *(_fresh(spec) for spec in BOUNDARIES),
    *(_incremental(spec) for spec in BOUNDARIES),
    *(_rebuild(spec) for spec in BOUNDARIES),
    Scenario(
        "reprocess-silver.before_commit",
        "v1",
        "v1",
        "delta.silver.before_commit",
        extra=("--reprocess",),
    ),
    *(
        Scenario(f"fresh-put-{n}", "empty", "v1", f"{JOB}.store.after_put@{n}", TINY)
        for n in sorted(_puts.sample(range(2, PUTS), 3))
    ),
    *(
        Scenario(f"rebuild-put-{n}", "v1", "v2", f"{JOB}.store.after_put@{n}", TINY)
        for n in sorted(_puts.sample(range(2, PUTS), 3))
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


def _kill_run(world: World, scenario: Scenario, store: Path, history: str) -> int:
    token = uuid.uuid4().hex
    env = {"ETL_TEST_TOKEN": token, "ETL_FAILPOINTS": scenario.failpoint}
    argv = _argv(world, store, history, scenario.bronze, *scenario.extra)
    result = cli(world.root, *argv, env=env)
    # The run died by the failpoint's SIGKILL: it neither finished nor failed on its own first.
    assert result.returncode == -signal.SIGKILL, (result.stdout, result.stderr[-2000:])
    code = result.returncode
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
    deadline = time.monotonic() + 120  # a bound for failing, not a race: TTLs are seconds
    while True:
        result = _run(world, store, history, bronze)
        if result.returncode != 75 or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_a_killed_run_leaves_whole_table_versions_and_the_rerun_is_exactly_once(
    world: World, scenario: Scenario, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    if scenario.start != "empty":
        shutil.copytree(world.stores[scenario.start], store)
    history = f"sqlite:///{tmp_path}/history.sqlite3"
    empty: View = ((), ())
    before = world.expected.get(scenario.start, empty)
    after = world.expected[scenario.bronze]

    code = _kill_run(world, scenario, store, history)

    silver, dead = view(store, AGENCY)  # each table: its old or its new version, never a mix
    assert silver in (before[0], after[0]), f"{scenario}: silver shows a mix (exit {code})"
    assert dead in (before[1], after[1]), f"{scenario}: dead letters show a mix (exit {code})"

    repaired = _repair(world, store, history, scenario.bronze)
    assert repaired.returncode == 0, repaired.stderr[-3000:]
    assert view(store, AGENCY) == after

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


def _start_held(
    world: World, store: Path, history: str, release: Path, *, ttl: float
) -> subprocess.Popen[str]:
    """A run paused at its first data file (an async failpoint: its heartbeats go on) until
    release exists; returns once it is there."""
    env = {"ETL_FAILPOINTS": f"{JOB}.store.after_put=pause:{release}"}
    argv = _argv(world, store, history, "v1", ttl=str(ttl))
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", *argv], cwd=world.root, env=cli_env(world.root, env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    while not reached_path(release).exists():
        if process.poll() is not None:
            _, stderr = process.communicate()
            pytest.fail(f"the run ended (exit {process.returncode}) before the failpoint: {stderr}")
        time.sleep(0.01)
    assert int(reached_path(release).read_text()) == process.pid
    return process


def test_a_run_held_at_a_failpoint_keeps_its_lease_and_a_second_run_exits_75(
    world: World, tmp_path: Path
) -> None:
    store, history = tmp_path / "store", f"sqlite:///{tmp_path}/history.sqlite3"
    release = tmp_path / "release"
    holder = _start_held(world, store, history, release, ttl=HELD_TTL)

    second = _run(world, store, history, "v1", ttl=str(HELD_TTL))  # the holder: alive, paused

    assert second.returncode == 75, second.stderr[-2000:]
    assert f"lease '{LEASE}' is held" in second.stderr
    [running] = _runs_json(world, history)  # the loser recorded no run
    assert running["effective_status"] == "running"
    release.touch()
    _, stderr = holder.communicate(timeout=300)
    assert holder.returncode == 0, stderr[-3000:]
    assert view(store, AGENCY) == world.expected["v1"]


def test_a_killed_run_shows_as_died_and_a_rerun_repairs_it(world: World, tmp_path: Path) -> None:
    store, history = tmp_path / "store", f"sqlite:///{tmp_path}/history.sqlite3"
    holder = _start_held(world, store, history, tmp_path / "never-released", ttl=HELD_TTL)

    holder.kill()
    holder.communicate(timeout=60)

    assert holder.returncode == -signal.SIGKILL  # killed where it was held, not finished
    [dead] = _runs_json(world, history)
    # Its lease's lock went with its process: `runs` records it as failed ("died") at once.
    assert (dead["status"], dead["effective_status"]) == ("failed", "failed")
    assert str(dead["error"]).startswith("died: ")
    repaired = _repair(world, store, history, "v1")
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    runs = {str(run["run_id"]): run for run in _runs_json(world, history)}
    assert len(runs) == 2
    # Never running, never succeeded: stale, or failed ("died") once the repair took it over.
    assert runs.pop(str(dead["run_id"]))["effective_status"] in ("stale", "failed")
    assert [run["status"] for run in runs.values()] == ["succeeded"]
    assert view(store, AGENCY) == world.expected["v1"]


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


def test_heartbeats_keep_the_lease_of_a_run_that_outlives_its_ttl(
    world: World, tmp_path: Path
) -> None:
    store, database = tmp_path / "store", tmp_path / "h.sqlite3"
    history = f"sqlite:///{database}"
    release = tmp_path / "release"
    holder = _start_held(world, store, history, release, ttl=HELD_TTL)
    first = _lease_expiry(database)
    assert first is not None

    # Hold the run until the lease it took has outlived its first expiry: only heartbeats can
    # have kept it. Each reading of the expiry comes after the clock is read, so a renewed lease
    # always reads as later than that moment.
    renewals = set()
    while True:
        now = dt.datetime.now(dt.UTC)
        expiry = _lease_expiry(database)
        assert expiry is not None
        assert expiry > now, "the lease expired while the run was alive and held"
        renewals.add(expiry)
        if now > first + dt.timedelta(seconds=1):
            break
        assert holder.poll() is None
        time.sleep(0.1)
    assert max(renewals) > first
    competitor = _run(world, store, history, "v1", ttl=str(HELD_TTL))
    assert competitor.returncode == 75, competitor.stderr[-2000:]
    assert f"lease '{LEASE}' is held" in competitor.stderr

    release.touch()
    _, stderr = holder.communicate(timeout=300)
    assert holder.returncode == 0, stderr[-3000:]
    assert view(store, AGENCY) == world.expected["v1"]
