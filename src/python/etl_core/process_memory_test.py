"""limit_malloc_arenas: applied once per process on glibc, and a user's MALLOC_ARENA_MAX wins."""

from __future__ import annotations

import subprocess
import sys

import pytest

from etl_core.process_memory import limit_malloc_arenas

_PROBE = (
    "import os; from etl_core.process_memory import limit_malloc_arenas as f; print(f(os.environ))"
)


def _probe(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_the_cap_is_applied_on_glibc_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    if not sys.platform.startswith("linux"):
        pytest.fail("the product runs on Linux (glibc) images; this test must run there")
    import os

    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    assert _probe(env) == "True"


def test_a_malloc_arena_max_in_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert limit_malloc_arenas({"MALLOC_ARENA_MAX": "4"}) is False
