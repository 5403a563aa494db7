"""Import an adapter module by name, so that each PEX carries only the adapters its BUILD lists.

The URL openers (object_stores, run_histories, record_sources) map a URL's kind to a module name
and import it here with importlib: Pants cannot see such imports, so a job's pex_binary ships
exactly the adapters named in its `dependencies` (src/python/jobs/BUILD). A URL whose adapter is
not in the binary is a configuration error (exit 2) that says which module is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from types import ModuleType

from etl_core.errors import ConfigError
from etl_core.urls import redact

__all__ = ["available_kinds", "load_adapter"]

UMBRELLA = "data-pipeline"


def available_kinds(adapters: Mapping[str, str]) -> list[str]:
    """The kinds in adapters whose module this interpreter can import (without importing it)."""
    return [kind for kind, module in adapters.items() if _importable(module)]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def load_adapter(what: str, url: str, kind: str, adapters: Mapping[str, str]) -> ModuleType:
    """Import the module adapters[kind]. ConfigError (password redacted) when it is not shipped.

    `what` names the URL's role in the message ("run history", "object store", ...); the keys of
    adapters are the kinds as users know them.
    """
    name = adapters[kind]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise  # the adapter is there but a module it imports is not: a packaging defect
        shipped = ", ".join(available_kinds(adapters)) or "none"
        raise ConfigError(
            f"{what} {redact(url)!r} needs {name}, which this binary does not include (it ships:"
            f" {shipped}). Use the {UMBRELLA} binary or add it to this job's pex_binary."
        ) from None
