"""Pick, by a URL's kind, the adapter module among those the job's wiring imported.

Each job's wiring imports the adapter modules it supports with plain import statements, so Pants'
dependency inference ships exactly those in the job's PEX, and passes them here by kind. A URL of
a kind the job does not support is a configuration error (exit 2) that names the missing module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import ModuleType

import attrs

from etl_core.errors import ConfigError
from etl_core.urls import redact

__all__ = ["Adapters", "LazyAdapters", "choose_adapter"]

UMBRELLA = "data-pipeline"

Adapters = Mapping[str, ModuleType]
"""Adapter modules by URL kind ("sqlite", "postgresql", "file", "s3", "http", "store")."""


@attrs.frozen
class LazyAdapters(Mapping[str, ModuleType]):
    """Adapters whose module is imported when its kind is looked up, not before: a run on a local
    store never imports the S3 adapter (aiohttp, ~0.2 s of a job's start-up), nor a SQLite run
    asyncpg. Each loader holds a plain import statement, so Pants still ships every module."""

    loaders: Mapping[str, Callable[[], ModuleType]]

    def __getitem__(self, kind: str) -> ModuleType:
        return self.loaders[kind]()

    def __iter__(self) -> Iterator[str]:
        return iter(self.loaders)

    def __len__(self) -> int:
        return len(self.loaders)


def choose_adapter(
    what: str, url: str, kind: str, shipped: Adapters, modules: Mapping[str, str]
) -> ModuleType:
    """shipped[kind]; ConfigError (password redacted) naming modules[kind] when it is missing.

    `what` names the URL's role in the message ("run history", "object store", ...).
    """
    module = shipped.get(kind)
    if module is not None:
        return module
    kinds = ", ".join(shipped) or "none"
    raise ConfigError(
        f"{what} {redact(url)!r} needs {modules[kind]}, which this binary does not include (it"
        f" ships: {kinds}). Use the {UMBRELLA} binary or import it in this job's wiring."
    )
