"""Tests of failpoints: inert unless armed; kill, pause or sleep on the armed pass; store hooks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from etl_core import failpoints
from etl_core.failpoints import (
    Armed,
    FailpointObjectStore,
    afailpoint,
    failpoint,
    parse_spec,
    reached_path,
)
from etl_core.testing.fakes import FakeObjectStore

SRC = Path(__file__).resolve().parents[1]
SCRIPT = """
import os
from etl_core.failpoints import ENV, arm, failpoint
arm(os.environ.get(ENV))  # as a job's wiring does
for n in range(1, 6):
    print(n, flush=True)
    failpoint("loop")
"""


def _env(spec: str | None) -> dict[str, str]:
    return {"PYTHONPATH": str(SRC)} | ({"ETL_FAILPOINTS": spec} if spec is not None else {})


def _run(spec: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=_env(spec), capture_output=True, text=True, timeout=60
    )


def _start(spec: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT], env=_env(spec), stdout=subprocess.PIPE, text=True
    )


def _await_file(path: Path, process: subprocess.Popen[str]) -> str:
    """The file's text once it exists; fails if the process ends first (no time limit: the
    process's own progress decides, however loaded the machine)."""
    while not path.exists():
        assert process.poll() is None, "the process ended before reaching the failpoint"
        time.sleep(0.01)
    return path.read_text()


def test_an_unarmed_failpoint_does_nothing() -> None:
    result = _run(None)
    assert (result.returncode, result.stdout.split()) == (0, ["1", "2", "3", "4", "5"])


def test_an_armed_failpoint_kills_the_process_on_the_nth_pass() -> None:
    result = _run("other, loop@3")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split() == ["1", "2", "3"]


def test_a_bare_name_fires_on_the_first_pass() -> None:
    assert _run("loop").stdout.split() == ["1"]


def test_a_paused_failpoint_holds_the_process_there_until_released(tmp_path: Path) -> None:
    release = tmp_path / "go"
    process = _start(f"loop@2=pause:{release}")
    pid = _await_file(reached_path(release), process)
    assert int(pid) == process.pid
    assert process.stdout is not None
    assert [process.stdout.readline().strip() for _ in range(2)] == ["1", "2"]
    assert process.poll() is None  # held: it cannot finish on its own
    release.touch()
    rest, _ = process.communicate(timeout=60)
    assert (process.returncode, rest.split()) == (0, ["3", "4", "5"])


def test_a_process_paused_at_a_failpoint_can_be_killed_there(tmp_path: Path) -> None:
    release = tmp_path / "never"
    process = _start(f"loop@3=pause:{release}")
    _await_file(reached_path(release), process)
    process.kill()
    out, _ = process.communicate(timeout=60)
    assert (process.returncode, out.split()) == (-signal.SIGKILL, ["1", "2", "3"])


def test_a_sleeping_failpoint_stalls_then_goes_on() -> None:
    started = time.monotonic()
    result = _run("loop@4=sleep:0.3")
    assert (result.returncode, result.stdout.split()) == (0, ["1", "2", "3", "4", "5"])
    assert time.monotonic() - started >= 0.3


async def test_an_async_pause_leaves_the_event_loop_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = tmp_path / "go"
    monkeypatch.setattr(failpoints, "_spec", None)
    failpoints.arm(f"held=pause:{release}")
    monkeypatch.setattr(failpoints, "_hits", {})
    events: list[str] = []

    async def other_task() -> None:  # a heartbeat, say: it must run while the point is held
        while not reached_path(release).exists():
            await asyncio.sleep(0.01)
        events.append("other task ran while held")
        release.touch()

    async def held() -> None:
        await afailpoint("held")
        events.append("released")

    await asyncio.gather(held(), other_task())
    assert events == ["other task ran while held", "released"]
    assert reached_path(release).read_text() == f"{os.getpid()}\n"


def test_parse_spec_reads_pass_numbers_and_actions() -> None:
    assert parse_spec(" a@2 ,b,, c=pause:/tmp/x, d@3=sleep:0.5, e=kill") == {
        "a": Armed(2),
        "b": Armed(1),
        "c": Armed(1, "pause", "/tmp/x"),
        "d": Armed(3, "sleep", "0.5"),
        "e": Armed(1, "kill"),
    }


@pytest.mark.parametrize(
    "bad", ["a@0", "a@x", "@3", "a=explode", "a=pause", "a=pause:", "a=sleep:x", "a=sleep:-1",
            "a=sleep:nan", "a=kill:now"],
)  # fmt: skip
def test_parse_spec_rejects_malformed_entries(bad: str) -> None:
    with pytest.raises(ValueError, match=f"ETL_FAILPOINTS: malformed entry '{bad}'"):
        parse_spec(bad)


def test_failpoint_fires_once_armed(monkeypatch: pytest.MonkeyPatch) -> None:
    killed: list[int] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append(sig))
    monkeypatch.setattr(failpoints, "_hits", {})
    monkeypatch.setattr(failpoints, "_spec", None)
    failpoint("x")
    failpoints.arm("x")
    failpoint("x")
    assert killed == [signal.SIGKILL]


async def test_the_store_wrapper_passes_its_hooks_and_the_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passed: list[str] = []

    async def record(name: str) -> None:
        passed.append(name)

    monkeypatch.setattr(failpoints, "afailpoint", record)
    inner = FakeObjectStore()
    store = FailpointObjectStore(inner, "job.store")

    await store.put("a", b"1")
    assert await store.put_if_absent("m", b"2")
    assert not await store.put_if_absent("m", b"3")
    await store.delete("a")

    assert inner.objects == {"m": b"2"}
    assert passed == [
        "job.store.after_put",
        "job.store.before_commit",
        "job.store.after_commit",
        "job.store.before_commit",
        "job.store.after_delete",
    ]
    assert [info.key async for info in store.list()] == ["m"]
    assert await store.get("m") == b"2"
    assert (await store.head("m")).size == 1
