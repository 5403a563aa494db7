"""The reference workload on disk for the benchmark, generated once per options and cached."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import shutil
from pathlib import Path
from typing import Any

import attrs
from data_pipeline.workload import generate as workload
from data_pipeline.workload import rows as workload_rows
from data_pipeline.workload.generate import WorkloadOptions, write_workload
from etl_core.adapters.local_object_store import open_local_object_store

_COMPLETE = ".complete"  # written last: a directory without it is a crashed generation


@attrs.frozen
class Dataset:
    """A generated workload: `root` is a store holding agencies.csv, bronze/ and manifest.json."""

    options: WorkloadOptions
    root: Path
    manifest: dict[str, Any]

    @property
    def rows(self) -> int:
        return int(self.manifest["input_rows"])

    @property
    def input_bytes(self) -> int:
        return int(self.manifest["input_bytes"])

    @property
    def agencies(self) -> list[int]:
        return sorted(int(agency_id) for agency_id in self.manifest["agencies"])

    @property
    def days(self) -> list[str]:
        """The dt of every bronze partition, sorted."""
        return sorted({p.name.removeprefix("dt=") for p in (self.root / "bronze").glob("*/dt=*")})

    @property
    def bronze_files(self) -> list[Path]:
        return sorted(p for p in (self.root / "bronze").rglob("*") if p.is_file())


def cache_key(options: WorkloadOptions) -> str:
    """Options plus the generator's source: a changed generator never reuses stale data."""
    digest = hashlib.sha256(json.dumps(attrs.asdict(options), sort_keys=True).encode())
    for module in (workload, workload_rows):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


def ensure_dataset(options: WorkloadOptions, scratch: Path) -> tuple[Dataset, bool]:
    """(the dataset, whether it was generated now); generated under scratch if not cached."""
    root = scratch / f"workload-{options.records}-{cache_key(options)}"
    generated = not (root / _COMPLETE).exists()
    if generated:
        shutil.rmtree(root, ignore_errors=True)
        asyncio.run(_generate(options, root))
        (root / _COMPLETE).write_text("")
    manifest = json.loads((root / workload.MANIFEST_KEY).read_bytes())
    return Dataset(options, root, manifest), generated


async def _generate(options: WorkloadOptions, root: Path) -> None:
    # durable=False: scratch data, regenerated if lost; fsync per file would only slow it down.
    async with open_local_object_store(root, durable=False) as store:
        await write_workload(store, options)
