"""Tests of failpoints: inert unless armed, SIGKILL on the armed pass, store hooks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from etl_core import failpoints
from etl_core.failpoints import FailpointObjectStore, failpoint, parse_spec
from etl_core.testing.fakes import FakeObjectStore

SRC = Path(__file__).resolve().parents[1]
SCRIPT = """
from etl_core.failpoints import failpoint
for n in range(1, 6):
    print(n, flush=True)
    failpoint("loop")
"""


def _run(spec: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(SRC)} | ({"ETL_FAILPOINTS": spec} if spec is not None else {})
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )


def test_an_unarmed_failpoint_does_nothing() -> None:
    result = _run(None)
    assert (result.returncode, result.stdout.split()) == (0, ["1", "2", "3", "4", "5"])


def test_an_armed_failpoint_kills_the_process_on_the_nth_pass() -> None:
    result = _run("other, loop@3")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.split() == ["1", "2", "3"]


def test_a_bare_name_fires_on_the_first_pass() -> None:
    assert _run("loop").stdout.split() == ["1"]


def test_parse_spec_rejects_malformed_entries() -> None:
    assert parse_spec(" a@2 ,b,, ") == {"a": 2, "b": 1}
    for bad in ("a@0", "a@x", "@3"):
        with pytest.raises(ValueError, match="ETL_FAILPOINTS"):
            parse_spec(bad)


def test_failpoint_reads_the_environment_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    killed: list[int] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append(sig))
    monkeypatch.setattr(failpoints, "_hits", {})
    failpoint("x")
    monkeypatch.setenv("ETL_FAILPOINTS", "x")
    failpoint("x")
    assert killed == [signal.SIGKILL]


async def test_the_store_wrapper_passes_its_hooks_and_the_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passed: list[str] = []
    monkeypatch.setattr(failpoints, "failpoint", passed.append)
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
