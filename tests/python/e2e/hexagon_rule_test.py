"""The build enforces the hexagon: a core module of etl_core that imports an adapter (or a
driver) fails dependency computation, naming the rule of src/python/etl_core/BUILD; so does a
data_pipeline module (in any of its packages), naming the rule of src/python/data_pipeline/BUILD.

The test copies those BUILD files into a throwaway Pants project beside a core module with a
forbidden import and asks Pants (the same 2.17 the repository runs, from the ./pants cache) for
its dependencies. It runs under Pants (`./pants test`), which puts the BUILD file in the sandbox.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

RULES = Path("src/python/etl_core/BUILD")
PIPELINE_RULES = Path("src/python/data_pipeline/BUILD")
PANTS_VERSION = "2.17.1"
PANTS_TOML = f"""
[GLOBAL]
pants_version = "{PANTS_VERSION}"
backend_packages = ["pants.backend.python", "pants.backend.experimental.visibility"]
pantsd = false
[anonymous-telemetry]
enabled = false
[source]
root_patterns = ["/src/python"]
[python]
interpreter_constraints = ["CPython==3.11.*"]
[python-infer]
use_rust_parser = true
"""


def _pants() -> Path:
    cache = Path(
        os.environ.get("ETL_PANTS_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "etl-platform/pants"
    )
    launcher = cache / f"venv-pants-{PANTS_VERSION}-py3.9" / "bin" / "pants"
    if not launcher.exists():
        pytest.fail(f"no Pants at {launcher}: run this test through ./pants (it bootstraps it)")
    return launcher


def _project(root: Path, core_imports: str) -> None:
    if not RULES.exists():
        pytest.fail(f"no {RULES} (cwd {Path.cwd()}): run this test through Pants")
    (root / "pants.toml").write_text(PANTS_TOML)
    core = root / "src/python/etl_core"
    (core / "adapters").mkdir(parents=True)
    (core / "BUILD").write_text(RULES.read_text())
    (core / "adapters" / "BUILD").write_text("python_sources()\n")
    for init in (core / "__init__.py", core / "adapters" / "__init__.py"):
        init.write_text("")
    (core / "adapters" / "pg_run_history.py").write_text('"""An adapter."""\n')
    (core / "errors.py").write_text('"""A core module."""\n')
    (core / "runner.py").write_text(f'"""A core module."""\n\n{core_imports}\n')


def _pipeline_project(root: Path, pipeline_imports: str) -> None:
    """A core with one adapter, and a data_pipeline package module importing pipeline_imports."""
    _project(root, "")
    pipeline = root / "src/python/data_pipeline"
    (pipeline / "silver").mkdir(parents=True)
    (pipeline / "BUILD").write_text(PIPELINE_RULES.read_text())
    (pipeline / "silver" / "BUILD").write_text("python_sources()\n")
    for init in (pipeline / "__init__.py", pipeline / "silver" / "__init__.py"):
        init.write_text("")
    (pipeline / "silver" / "dedupe.py").write_text(f'"""Business logic."""\n\n{pipeline_imports}\n')


def _dependencies(
    root: Path, target: str = "src/python/etl_core/runner.py"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_pants()), "--no-pantsd", "--no-dynamic-ui", "dependencies", target],
        cwd=root,
        env={**os.environ, "NO_SCIE_WARNING": "1", "PANTS_CONCURRENT": "true"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip


def test_a_core_module_importing_an_adapter_fails_the_build(tmp_path: Path) -> None:
    _project(tmp_path, "from etl_core.adapters import pg_run_history")
    result = _dependencies(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "DependencyRuleActionDeniedError" in result.stderr, result.stderr[-3000:]
    assert "src/python/etl_core/BUILD[!src/python/etl_core/adapters/**]" in result.stderr
    assert "src/python/etl_core/runner.py" in result.stderr
    assert "src/python/etl_core/adapters/pg_run_history.py" in result.stderr


def test_a_core_module_importing_the_core_passes(tmp_path: Path) -> None:
    _project(tmp_path, "from etl_core import errors")
    result = _dependencies(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "src/python/etl_core/errors.py" in result.stdout


def test_business_logic_importing_an_adapter_fails_the_build(tmp_path: Path) -> None:
    _pipeline_project(tmp_path, "from etl_core.adapters import pg_run_history")
    result = _dependencies(tmp_path, "src/python/data_pipeline/silver/dedupe.py")
    assert result.returncode != 0, result.stdout
    assert "DependencyRuleActionDeniedError" in result.stderr, result.stderr[-3000:]
    assert "src/python/data_pipeline/BUILD[!//src/python/etl_core/adapters/**]" in result.stderr
    assert "src/python/data_pipeline/silver/dedupe.py" in result.stderr


def test_business_logic_importing_the_core_passes(tmp_path: Path) -> None:
    _pipeline_project(tmp_path, "from etl_core import errors")
    result = _dependencies(tmp_path, "src/python/data_pipeline/silver/dedupe.py")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "src/python/etl_core/errors.py" in result.stdout
