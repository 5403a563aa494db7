"""Discover the jobs: every module under `jobs` that defines JOB = (entrypoint, description)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from types import ModuleType

import attrs
from etl_core.errors import ConfigError, EtlError

__all__ = ["Discovery", "Job", "JobDefinitionError", "UnknownJob", "discover", "job_names", "load"]

Entrypoint = Callable[[list[str]], int]

PACKAGE = "jobs"
_NOT_JOBS = frozenset({"registry", "cli", "conftest"})


class UnknownJob(ConfigError):
    """No job module by that name (a usage error: exit 2)."""


class JobDefinitionError(EtlError):
    """A job module cannot be imported or its JOB is malformed (a code defect: exit 1)."""


@attrs.frozen
class Job:
    """A discovered job."""

    name: str
    entrypoint: Entrypoint
    description: str
    module: str


@attrs.frozen
class Discovery:
    """Every well-formed job, and one message per module that is not."""

    jobs: tuple[Job, ...]
    problems: tuple[str, ...]


def _is_job_module(name: str) -> bool:
    return not (name.startswith("_") or name in _NOT_JOBS or name.endswith("_test"))


def job_names(package: str = PACKAGE) -> list[str]:
    """Names of the candidate job modules, sorted, without importing any of them."""
    module = importlib.import_module(package)
    return sorted(
        info.name for info in pkgutil.iter_modules(module.__path__) if _is_job_module(info.name)
    )


def _normalise(name: str) -> str:
    # `bronze-to-silver` on the command line names the module `bronze_to_silver`.
    return name.replace("-", "_")


def load(name: str, package: str = PACKAGE) -> Job:
    """Import one job. Raises UnknownJob (listing the known ones) or JobDefinitionError."""
    module_name = _normalise(name)
    known = job_names(package)
    if module_name not in known:
        listing = ", ".join(known) or "none"
        raise UnknownJob(f"unknown job {name!r} (known jobs: {listing})")
    qualified = f"{package}.{module_name}"
    try:
        module = importlib.import_module(qualified)
    except Exception as exc:
        raise JobDefinitionError(
            f"{qualified}: import failed: {type(exc).__name__}: {exc}"
        ) from exc
    return _job_of(module_name, module)


def discover(package: str = PACKAGE) -> Discovery:
    """Import every candidate module; collect its JOB or what is wrong with it."""
    jobs: list[Job] = []
    problems: list[str] = []
    for name in job_names(package):
        try:
            jobs.append(load(name, package))
        except JobDefinitionError as exc:
            problems.append(str(exc))
    return Discovery(jobs=tuple(jobs), problems=tuple(problems))


def _job_of(name: str, module: ModuleType) -> Job:
    where = module.__name__
    if not hasattr(module, "JOB"):
        raise JobDefinitionError(f"{where}: no JOB = (entrypoint, description) defined")
    job = module.JOB
    if not isinstance(job, tuple) or len(job) != 2:
        raise JobDefinitionError(
            f"{where}: JOB must be a tuple (entrypoint, description), got {job!r}"
        )
    entrypoint, description = job
    if not callable(entrypoint):
        raise JobDefinitionError(f"{where}: JOB[0] (entrypoint) is not callable: {entrypoint!r}")
    if not isinstance(description, str) or not description.strip():
        raise JobDefinitionError(f"{where}: JOB[1] (description) must be a non-empty string")
    problem = _signature_problem(entrypoint)
    if problem:
        raise JobDefinitionError(f"{where}: JOB[0] {problem}")
    return Job(name=name, entrypoint=entrypoint, description=description.strip(), module=where)


def _signature_problem(entrypoint: Callable[..., object]) -> str | None:
    try:
        signature = inspect.signature(entrypoint)
    except (TypeError, ValueError):
        return None  # builtins without signatures: trust them
    try:
        signature.bind(["--help"])
    except TypeError:
        return f"must accept one argument (argv: list[str]); its signature is {signature}"
    if inspect.iscoroutinefunction(entrypoint):
        return "must be a plain function returning an exit code, not async"
    return None
