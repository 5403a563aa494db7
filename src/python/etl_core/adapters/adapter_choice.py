"""Pick, by a URL's kind, the adapter module among those the job's wiring imported.

Each job's wiring imports the adapter modules it supports with plain import statements, so Pants'
dependency inference ships exactly those in the job's PEX, and passes them here by kind. A URL of
a kind the job does not support is a configuration error (exit 2) that names the missing module.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType

from etl_core.errors import ConfigError
from etl_core.urls import redact

__all__ = ["Adapters", "choose_adapter"]

UMBRELLA = "data-pipeline"

Adapters = Mapping[str, ModuleType]
"""Adapter modules by URL kind ("sqlite", "postgresql", "file", "s3", "http", "store")."""


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
