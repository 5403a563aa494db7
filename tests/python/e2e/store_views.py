"""Read a local store the way readers must: through each partition's newest manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[3] / "src" / "python"

View = tuple[tuple[str, ...], tuple[tuple[str, str, str], ...]]
"""(silver lines, dead letters as (reason, source, raw)), each sorted, of one generation: its
content whatever the split into files."""


class IncompleteView(AssertionError):
    """A manifest lists a file that is missing: the partition shows a mix or a hole."""


def cli(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """`python -m jobs.cli ...` in cwd with a clean environment plus env."""
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        cwd=cwd,
        env=cli_env(cwd, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_env(cwd: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "PYTHONPATH": str(SRC),
    }
    return {**base, **(extra or {})}


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The `  key: value` lines of the run summary on stdout."""
    fields = {}
    for line in result.stdout.splitlines():
        if line.startswith("  ") and ": " in line:
            key, _, value = line.strip().partition(": ")
            fields[key] = value
    return fields


def manifests(root: Path) -> dict[str, dict[str, Any]]:
    """partition -> its newest manifest."""
    newest: dict[str, dict[str, Any]] = {}
    base = root / "_manifests"
    for path in sorted(base.rglob("*.json")) if base.exists() else []:
        partition = path.parent.relative_to(base).as_posix()
        newest[partition] = json.loads(path.read_bytes())  # sorted: the last one wins
    return newest


def view(root: Path, partition: str) -> View | None:
    """The visible generation of partition (None if never committed). Raises IncompleteView."""
    manifest = manifests(root).get(partition)
    if manifest is None:
        return None
    silver: list[str] = []
    dead: list[tuple[str, str, str]] = []
    for key in manifest["files"]:
        path = root / key
        if not path.is_file():
            raise IncompleteView(f"{partition}: manifest {manifest['seq']} lists missing {key}")
        lines = path.read_text().splitlines()
        if key.startswith("silver/"):
            ids = [json.loads(line)["record_id"] for line in lines]
            assert ids == sorted(ids), f"{key}: rows not ordered by record_id"
            silver.extend(lines)
        else:
            rows = [json.loads(line) for line in lines]
            assert all(list(row) == ["reason", "source", "raw", "run_id"] for row in rows), key
            dead.extend((row["reason"], row["source"], row["raw"]) for row in rows)
    return tuple(sorted(silver)), tuple(sorted(dead))


def views(root: Path, agency_id: int) -> dict[str, View | None]:
    """Every partition of the agency that has a manifest or data files."""
    names = {p for p in manifests(root) if p.startswith(f"agency_id={agency_id}/")}
    for kind in ("silver", "deadletter"):
        base = root / kind
        names |= {
            path.parent.relative_to(base).as_posix()
            for path in base.glob(f"agency_id={agency_id}/dt=*/*")
        }
    return {name: view(root, name) for name in sorted(names)}


def unreferenced(root: Path) -> list[str]:
    """Data files no newest manifest lists (what a sweep must remove)."""
    listed = {key for manifest in manifests(root).values() for key in manifest["files"]}
    return sorted(
        path.relative_to(root).as_posix()
        for kind in ("silver", "deadletter")
        for path in (root / kind).rglob("*")
        if path.is_file()
        and not path.name.startswith(".etl-tmp-")
        and path.relative_to(root).as_posix() not in listed
    )


def snapshot(root: Path) -> dict[str, int]:
    """Every file (in-flight temp files too) -> mtime_ns."""
    return {
        path.relative_to(root).as_posix(): path.stat().st_mtime_ns
        for path in root.rglob("*")
        if path.is_file()
    }
