"""The wiring every job process shares (cosmicpython's bootstrap): the job skeleton (arguments ->
settings -> usage error or run), and the one place that reads the environment, installs the
tracing SDK and hands the runner the run history the job ships.

A job passes the history adapters it supports (modules it imports itself, so Pants' inference
decides its PEX's contents); the runner and the business logic get values, never the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from etl_core import failpoints
from etl_core.adapters.adapter_choice import Adapters
from etl_core.adapters.run_histories import RunHistoryAt
from etl_core.errors import ConfigError
from etl_core.process_memory import limit_malloc_arenas
from etl_core.runner import JobBody, RunWiring, run_job, usage_error
from etl_core.settings import CommonSettings, settings_from_args
from etl_core.version import code_version

if TYPE_CHECKING:
    from etl_core.ports import ObjectStore

__all__ = ["Planned", "main", "parser", "run", "store_and_bronze", "wiring"]

S = TypeVar("S", bound=CommonSettings)


@attrs.frozen(kw_only=True)
class Planned:
    """What a job makes of its settings: the body to run, the parameters its run records, the
    lease scope (default: the agency), and settings to run with if it adjusted them."""

    body: JobBody
    parameters: Mapping[str, Any] = attrs.field(factory=dict)
    lease_scope: str | None = None
    settings: CommonSettings | None = None


def parser(
    job: str,
    description: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    *,
    epilog: str | None = None,
    prog: str | None = None,
) -> argparse.ArgumentParser:
    """The `data-pipeline <job>` parser: the job's docstring as its description, the flags its
    configuration module adds (data_pipeline/<package>/configuration.py), an epilog kept as
    written; prog: `data-pipeline <job>` unless given (a console script's name)."""
    extra: dict[str, Any] = {}
    if epilog is not None:
        extra = {"epilog": epilog, "formatter_class": argparse.RawDescriptionHelpFormatter}
    parser = argparse.ArgumentParser(
        prog=prog or f"data-pipeline {job}", description=description, allow_abbrev=False, **extra
    )
    add_arguments(parser)
    return parser


def main(
    job: str,
    argv: list[str],
    parser: argparse.ArgumentParser,
    settings_type: type[S],
    plan: Callable[[S, argparse.Namespace], Planned],
    *,
    histories: Callable[[], Adapters],
) -> int:
    """The job skeleton: parse argv, build settings, plan the run (a ConfigError from either is a
    usage error, exit 2), then run it recorded with the history adapters the job supports."""
    limit_malloc_arenas(os.environ)  # before any thread: see etl_core.process_memory
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(settings_type, args, job=job, env=os.environ)
        planned = plan(settings, args)
    except ConfigError as exc:
        return usage_error(job, exc)
    return run(
        job,
        planned.settings or settings,
        planned.body,
        histories=histories(),
        parameters=planned.parameters,
        lease_scope=planned.lease_scope,
    )


def wiring(settings: CommonSettings, histories: Adapters) -> RunWiring:
    """What the runner needs from this process: its environment's values and the history."""
    env = os.environ
    failpoints.arm(env.get(failpoints.ENV))
    return RunWiring(
        history=RunHistoryAt(settings.history_url, histories),
        install_tracing=_install_tracing,
        log_level=env.get("ETL_LOG_LEVEL"),
        parent_run_id=env.get("ETL_PARENT_RUN_ID", "").strip() or None,
        code_version=code_version(env),
    )


def run(
    job: str,
    settings: CommonSettings,
    body: JobBody,
    *,
    histories: Adapters,
    parameters: Mapping[str, Any] | None = None,
    lease_scope: str | None = None,
) -> int:
    """Run body as one recorded run of job (etl_core.runner.run_job); the exit code."""
    return run_job(
        job,
        settings,
        body,
        wiring=wiring(settings, histories),
        parameters=parameters,
        lease_scope=lease_scope,
    )


async def store_and_bronze(
    stack: contextlib.AsyncExitStack, store_url: str, bronze_url: str | None, *, dry_run: bool
) -> tuple[ObjectStore, ObjectStore]:
    """The store (a no-write view in a dry run) and bronze: the store itself, or --bronze opened
    as a dry-run view, so that whatever happens the job cannot write to it."""
    from etl_core.adapters.object_stores import open_object_store

    store = await stack.enter_async_context(open_object_store(store_url, dry_run=dry_run))
    if bronze_url is None or bronze_url == store_url:
        return store, store
    return store, await stack.enter_async_context(open_object_store(bronze_url, dry_run=True))


def _install_tracing(service_name: str) -> None:
    """The OpenTelemetry SDK from OTEL_*; ConfigError for an unknown exporter."""
    try:
        from etl_core.adapters import otel_sdk
    except ImportError:
        logging.getLogger(__name__).warning("opentelemetry-sdk is not installed; tracing is off")
        return
    otel_sdk.install_tracing(os.environ, default_service_name=service_name)
