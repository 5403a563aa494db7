"""Tests for job discovery: well-formed jobs found, malformed ones reported by name."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from etl_core.errors import ConfigError
from etl_core.testing.fresh_interpreter import run_fresh

from jobs import registry

_MODULES = {
    "__init__": "",
    "good": "def entrypoint(argv):\n    return 0\n\nJOB = (entrypoint, '  Does good things ')\n",
    "bronze_to_silver": "JOB = (lambda argv: 0, 'Promote')\n",
    "nojob": "X = 1\n",
    "not_tuple": "JOB = 'generate'\n",
    "not_callable": "JOB = (1, 'd')\n",
    "no_description": "JOB = (lambda argv: 0, '')\n",
    "no_argv": "def entrypoint():\n    return 0\n\nJOB = (entrypoint, 'd')\n",
    "is_async": "async def entrypoint(argv):\n    return 0\n\nJOB = (entrypoint, 'd')\n",
    "broken": "import no_such_module_anywhere\n",
    "_private": "raise RuntimeError('must not be imported')\n",
    "registry": "raise RuntimeError('must not be imported')\n",
    "cli": "raise RuntimeError('must not be imported')\n",
    "good_test": "raise RuntimeError('must not be imported')\n",
}


@pytest.fixture()
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"fakejobs_{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    root.mkdir()
    for module, source in _MODULES.items():
        (root / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_names_come_from_the_package_without_importing(package: str) -> None:
    assert registry.job_names(package) == [
        "broken", "bronze_to_silver", "good", "is_async", "no_argv", "no_description",
        "nojob", "not_callable", "not_tuple",
    ]  # fmt: skip
    assert f"{package}.good" not in sys.modules


def test_discover_returns_jobs_and_reports_every_malformed_module(package: str) -> None:
    found = registry.discover(package)
    assert [(job.name, job.description) for job in found.jobs] == [
        ("bronze_to_silver", "Promote"),
        ("good", "Does good things"),
    ]
    problems = "\n".join(found.problems)
    assert len(found.problems) == 7
    for expected in (
        f"{package}.nojob: no JOB = (entrypoint, description) defined",
        f"{package}.not_tuple: JOB must be a tuple (entrypoint, description), got 'generate'",
        f"{package}.not_callable: JOB[0] (entrypoint) is not callable",
        f"{package}.no_description: JOB[1] (description) must be a non-empty string",
        f"{package}.no_argv: JOB[0] must accept one argument (argv: list[str])",
        f"{package}.is_async: JOB[0] must be a plain function",
        f"{package}.broken: import failed: ModuleNotFoundError",
    ):
        assert expected in problems


def test_load_accepts_dashes_for_underscores(package: str) -> None:
    job = registry.load("bronze-to-silver", package)
    assert (job.name, job.module) == ("bronze_to_silver", f"{package}.bronze_to_silver")
    assert job.entrypoint([]) == 0


def test_unknown_job_is_a_usage_error_listing_the_known_ones(package: str) -> None:
    known = r"\(known jobs: broken, bronze_to_silver, good"
    with pytest.raises(registry.UnknownJob, match=rf"unknown job 'nope' {known}"):
        registry.load("nope", package)
    assert issubclass(registry.UnknownJob, ConfigError)


def test_private_and_tool_modules_are_not_jobs(package: str) -> None:
    with pytest.raises(registry.UnknownJob):
        registry.load("registry", package)


def test_the_real_jobs_are_well_formed() -> None:
    found = registry.discover()
    assert found.problems == ()
    assert "generate" in [job.name for job in found.jobs]


def test_importing_every_job_module_is_cheap() -> None:
    heavy = [
        "aioboto3",
        "botocore",
        "asyncpg",
        "opentelemetry.sdk",
        "data_pipeline.workload.generate",
    ]
    script = textwrap.dedent(
        f"""
        import sys
        from jobs import registry
        registry.discover()
        print(",".join(m for m in {heavy!r} if m in sys.modules))
        """
    )
    src = Path(__file__).resolve().parents[1]
    assert run_fresh(script, source_root=src, env={"PATH": "/usr/bin:/bin"}) == ""
