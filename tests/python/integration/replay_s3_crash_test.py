"""replay_dead_letters as a subprocess on the real backends (bronze, lake and corrections file in
moto's S3, the history in PostgreSQL), SIGKILLed at each failpoint its pass goes through: each
Delta table shows its old or its new version, and the re-run ends exactly as a clean replay
(silver, dead letters, stored corrections, the history's account of the replayed rows)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import attrs
import boto3
import pytest
from etl_core.model import PartitionRecord, RunRecord

# Imported, not only run: dependency inference then ships the jobs with this test.
from jobs import bronze_to_silver, replay_dead_letters  # noqa: F401

from integration.cli_support import cli
from integration.lake_support import (
    View,
    committed_rows,
    copy_bucket,
    generate_bronze,
    history_of,
    lake_view,
    new_bucket,
    objects,
    s3_env,
    until_lease_free,
)

AGENCY = 1
FIXED_AT = "2024-01-09T12:00:00-08:00"
JOB = "replay_dead_letters"
# Where the replay's pass (promote under the agency's lease) can die, in the order it gets there.
FAILPOINTS = (
    "bronze_to_silver.planned",  # the corrections stored, no fold begun
    "bronze_to_silver.ledger_saved",  # the fold's ledger written, no table committed
    "delta.deadletter.after_commit",  # dead letters replaced, silver not committed
    "delta.silver.before_commit",  # the same, silver's new data files written
    "delta.silver.after_commit",  # both tables committed; no note, no history rows yet
    "bronze_to_silver.before_finish",  # the same, after the pass's accounting
)

Counted = tuple[int, int, int, int]
Stored = tuple[tuple[str, tuple[tuple[Any, ...], ...]], ...]


@attrs.frozen
class World:
    """Bronze, a lake with agency 1 folded in once, the corrections file, and what a clean
    replay of that lake leaves."""

    bronze: str
    folded: str  # bucket of the lake before the replay (prefix `lake`)
    corrections: str
    before: View
    after: View
    stored: Stored
    counts: Counted
    partitions: dict[str, Counted]


def _replay(
    root: Path, world: World, moto_url: str, store: str, history: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return cli(root, "run", JOB, "--", "--agency-id", str(AGENCY), "--all",
               "--corrections", world.corrections, "--bronze", world.bronze, "--store", store,
               "--history", history, "--workers", "1", "--log-format", "json",
               env={**s3_env(moto_url), **env})  # fmt: skip


def _corrections(dead: list[dict[str, Any]]) -> bytes:
    """Fix the rows with a bad occurred_at or latitude; the first one's fix still fails (its
    status is unknown), so the replay also keeps a row in dead letters with a new reason."""
    lines: list[str] = []
    for row in sorted(dead, key=lambda r: (r["source"], r["line"] or 0)):
        try:
            record = json.loads(row["raw"])
        except ValueError:
            continue
        if row["reason"] == "bad_occurred_at":
            record["occurred_at"] = FIXED_AT
        elif row["reason"] == "lat_out_of_range" and isinstance(record.get("location"), dict):
            record["location"]["lat"] = "45.5"
        else:
            continue
        if not lines:
            record["status"] = "unknown-status"
        fix = {"source": row["source"], "raw": row["raw"], "corrected": json.dumps(record)}
        lines.append(json.dumps(fix))
    assert len(lines) >= 3, "the generated bronze should hold fixable dead letters"
    return ("\n".join(lines) + "\n").encode()


def _stored(moto_url: str, bucket: str) -> Stored:
    """The stored corrections objects: sequence number -> rows, the writing run's id left out."""
    found = objects(moto_url, bucket, f"lake/corrections/agency_id={AGENCY}/")
    return tuple(
        (
            key.rsplit("/", 1)[1].split("-", 1)[0],
            tuple(
                tuple(sorted((k, v) for k, v in json.loads(line).items() if k != "run_id"))
                for line in body.decode().splitlines()
            ),
        )
        for key, body in sorted(found.items())
    )


def _counted(run: RunRecord | PartitionRecord) -> Counted:
    c = run.counts
    return c.rows_in, c.rows_out, c.rows_duplicate, c.rows_dead_letter


@pytest.fixture(scope="module")
def world(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("replay-world")
    source = new_bucket(moto_url, "bronze")
    bronze = f"s3://{source}/ref"
    generate_bronze(root, moto_url, bronze, "--records", "600", "--files", "4",
                    "--agencies", "2", "--seed", "21", "--bad-rate", "0.15")  # fmt: skip
    folded = new_bucket(moto_url, "folded")
    store = f"s3://{folded}/lake"
    first = cli(root, "run", "bronze_to_silver", "--", "--agency-id", str(AGENCY),
                "--bronze", bronze, "--store", store, "--history", f"sqlite:///{root}/b.sqlite3",
                "--workers", "1", "--log-format", "json", env=s3_env(moto_url))  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1").put_object(
        Bucket=source,
        Key="fixes/corrections.ndjson",
        Body=_corrections(committed_rows(store, moto_url, "deadletter", AGENCY)),
    )
    world = World(bronze, folded, f"s3://{source}/fixes/corrections.ndjson",
                  lake_view(store, moto_url, AGENCY), ((), ()), (), (0, 0, 0, 0), {})  # fmt: skip

    clean = new_bucket(moto_url, "clean")
    copy_bucket(moto_url, folded, clean)
    history = f"sqlite:///{root}/clean.sqlite3"
    replayed = _replay(root, world, moto_url, f"s3://{clean}/lake", history)
    assert replayed.returncode == 0, (replayed.stdout, replayed.stderr[-3000:])
    [(run, partitions)] = history_of(history, JOB)
    world = attrs.evolve(
        world,
        after=lake_view(f"s3://{clean}/lake", moto_url, AGENCY),
        stored=_stored(moto_url, clean),
        counts=_counted(run),
        partitions={p.partition: _counted(p) for p in partitions},
    )
    # The clean replay moved rows from dead letters to silver, kept one, and stored one file.
    assert len(world.after[0]) > len(world.before[0])
    assert 0 < len(world.after[1]) < len(world.before[1])
    assert [seq for seq, _ in world.stored] == ["000001"]
    assert world.counts[1] > 0
    assert world.counts[3] > 0
    return world


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_a_replay_killed_on_s3_is_finished_exactly_once_by_its_rerun(
    failpoint: str, world: World, moto_url: str, bucket: str, pg_dsn: str, pg_schema: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    copy_bucket(moto_url, world.folded, bucket)
    store, history = f"s3://{bucket}/lake", f"{pg_dsn}?schema={pg_schema}"

    killed = _replay(tmp_path, world, moto_url, store, history, ETL_FAILPOINTS=failpoint)

    assert killed.returncode == -signal.SIGKILL, (killed.stdout, killed.stderr[-3000:])
    silver, dead = lake_view(store, moto_url, AGENCY)
    assert silver in (world.before[0], world.after[0]), "silver shows a mix of two versions"
    assert dead in (world.before[1], world.after[1]), "dead letters show a mix of two versions"

    rerun = until_lease_free(lambda: _replay(tmp_path, world, moto_url, store, history))

    assert rerun.returncode == 0, (rerun.stdout, rerun.stderr[-3000:])
    got = lake_view(store, moto_url, AGENCY)[0]
    print(
        "DBG",
        len(got),
        len(world.after[0]),
        [r[:3] + r[9:14] for r in got if r not in world.after[0]],
        [r[:3] + r[9:14] for r in world.after[0] if r not in got],
        rerun.stdout[-3000:],
        rerun.stderr[-4000:],
    )
    assert got == world.after[0], "silver"
    assert lake_view(store, moto_url, AGENCY)[1] == world.after[1], "dead letters"
    assert _stored(moto_url, bucket) == world.stored  # stored once, not once per attempt
    runs = history_of(history, JOB)
    first, _ = runs[0]
    assert (first.status.value, (first.error or "")[:5]) == ("failed", "died:")
    [(done, partitions)] = [(r, p) for r, p in runs if r.status.value == "succeeded"]
    assert done.run_id == runs[-1][0].run_id
    assert all(r.status.value != "running" for r, _ in runs)
    # The history accounts for every replayed row as the clean replay's does.
    assert _counted(done) == world.counts
    assert {p.partition: _counted(p) for p in partitions} == world.partitions

    # Nothing is left pending: another replay and a bronze_to_silver run write nothing.
    again = _replay(tmp_path, world, moto_url, store, history)
    promoted = cli(tmp_path, "run", "bronze_to_silver", "--", "--agency-id", str(AGENCY),
                   "--bronze", world.bronze, "--store", store, "--history", history,
                   "--workers", "1", "--log-format", "json", env=s3_env(moto_url))  # fmt: skip

    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing written" in again.stdout
    assert promoted.returncode == 0, promoted.stderr[-3000:]
    assert "up to date" in promoted.stdout
    assert lake_view(store, moto_url, AGENCY) == world.after
