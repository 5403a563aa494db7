"""The shared job runner: one process's run of a job, from settings to exit code: logging,
tracing, run id and attempts, the root span, SIGTERM, the recorded run (etl_core.recorded_run),
the summary. The body's context and outcome types live in etl_core.run_context."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
from opentelemetry import trace

from etl_core import clock, logs, s3_limits, serde, sigterm, telemetry
from etl_core.errors import (
    ConfigError,
    EtlError,
    ExitCode,
    RunNotFound,
)
from etl_core.model import Counts, RunStatus
from etl_core.ports import RunHistory, RunHistoryAccess
from etl_core.recorded_run import (
    Recording,
    describe,
    lease_held,
    recorded_run,
    running_record,
)
from etl_core.run_context import (
    JobBody,
    JobOutcome,
    LeaseLost,
    RunContext,
    Terminated,
    check_counts,
)
from etl_core.settings import CommonSettings

__all__ = [
    "JobBody",
    "JobOutcome",
    "LeaseLost",
    "RunContext",
    "RunWiring",
    "Terminated",
    "check_counts",
    "lease_held",
    "run_job",
    "usage_error",
]

_log = logging.getLogger("etl_core.runner")


@attrs.frozen(kw_only=True)
class RunWiring:
    """What the process's wiring hands the runner: the history it chose (unopened), the tracing
    install, and the values it read from the environment. The runner reads no environment."""

    history: RunHistoryAccess
    install_tracing: Callable[[str], object] = lambda service_name: None
    log_level: str | None = None  # ETL_LOG_LEVEL as given (checked here: bad is a usage error)
    parent_run_id: str | None = None  # the rollout that launched this pod (jobs/_k8s_render)
    code_version: str | None = None


def run_job(
    job: str,
    settings: CommonSettings,
    body: JobBody,
    *,
    wiring: RunWiring,
    parameters: Mapping[str, Any] | None = None,
    lease_scope: str | None = None,
) -> int:
    """Run body as one recorded, leased, traced run; return the process exit code.

    A SIGTERM at any point (even before the event loop runs) is recorded: the run row is written,
    marked failed ("Terminated"), and the exit code is 75.
    """
    with sigterm.deferred():
        return _run_job(
            job, settings, body, wiring=wiring, parameters=parameters, lease_scope=lease_scope
        )


def _run_job(
    job: str,
    settings: CommonSettings,
    body: JobBody,
    *,
    wiring: RunWiring,
    parameters: Mapping[str, Any] | None,
    lease_scope: str | None,
) -> int:
    run_id = settings.run_id or clock.new_run_id()
    try:
        level = logs.level_from_env({"ETL_LOG_LEVEL": wiring.log_level or ""})
        logs.configure_logging(job=job, log_format=settings.log_format, level=level)
        wiring.install_tracing(job)
    except ConfigError as exc:
        _print_error(job, str(exc))
        return ExitCode.USAGE
    agency = settings.agency_id
    scope = lease_scope or (f"agency={agency}" if agency is not None else "all")
    run = _Run(
        job=job,
        settings=settings,
        body=body,
        wiring=wiring,
        run_id=run_id,
        parameters=_parameters(settings, parameters, wiring.parent_run_id),
        lease_name=f"{job}/{scope}",
    )
    try:
        return asyncio.run(run.main())
    except KeyboardInterrupt:
        _print_error(job, "interrupted")
        return ExitCode.FAILED
    finally:
        logs.end_progress()
        telemetry.flush()


_MAX_ATTEMPTS = 1000


def usage_error(job: str, error: ConfigError) -> int:
    """Report a configuration error found before run_job (settings, URLs) as one line; exit 2."""
    _print_error(job, str(error))
    return ExitCode.USAGE


@attrs.define
class _Run:
    job: str
    settings: CommonSettings
    body: JobBody
    wiring: RunWiring
    run_id: str
    parameters: dict[str, Any]
    lease_name: str
    started: float = attrs.field(factory=time.monotonic)
    stop_reason: BaseException | None = None
    recording: Recording | None = None
    # What every span and log record of the run carries (run_scope reads this same dict, so a
    # run_id that set-up changes, see _attempt_id, reaches them too).
    attributes: dict[str, Any] = attrs.field(factory=dict)

    async def main(self) -> int:
        attributes = self.attributes
        attributes.update(
            telemetry.run_attributes(
                run_id=self.run_id, job=self.job, agency_id=self.settings.agency_id
            )
        )
        settings = self.settings
        limits = s3_limits.S3Limits(
            retry_budget_s=settings.s3_retry_budget_seconds,
            connect_timeout_s=settings.s3_connect_timeout_seconds,
            read_timeout_s=settings.s3_read_timeout_seconds,
        )
        with (
            telemetry.run_scope(attributes),
            s3_limits.scope(limits),
            telemetry.span(self.job, dry_run=self.settings.dry_run) as root,
            _stop_on_sigterm(self),
        ):
            return await self._main(root)

    async def _main(self, root: trace.Span) -> int:
        trace_id, _ = telemetry.current_ids()
        async with contextlib.AsyncExitStack() as stack:
            try:
                ctx = await self._setup(stack)
                record = running_record(
                    ctx,
                    self.parameters,
                    trace_id=trace_id,
                    host=socket.gethostname(),
                    code_version=self.wiring.code_version,
                )
                run = await stack.enter_async_context(recorded_run(ctx, record))
            except Exception as exc:
                # Nothing recorded: a bad URL, an unreachable history, or a held lease.
                return self._report_error(root, exc)
            self.recording = run
            root.set_attribute("run_id", ctx.run_id)  # an attempt of a reused --run-id
            if self.stop_reason is not None:  # SIGTERM during set-up: record it, run nothing
                run.stop(self.stop_reason)
            # Ctrl-C: asyncio cancels the main task.
            await run.run(self.body, interrupted=KeyboardInterrupt("interrupted"))
        outcome, error, counts = run.outcome, run.error, run.counts
        root.set_attributes({"status": run.status.value, **attrs.asdict(counts)})
        self._print_summary(run.status, counts, outcome, error or run.finish_error, trace_id)
        if error is not None:
            return self._report_error(root, error)
        if run.finish_error is not None:
            return self._report_error(root, run.finish_error)
        return ExitCode.OK

    async def _setup(self, stack: contextlib.AsyncExitStack) -> RunContext:
        log = logging.getLogger(f"jobs.{self.job}")
        ctx = RunContext(
            run_id=self.run_id,
            job=self.job,
            agency_id=self.settings.agency_id,
            dry_run=self.settings.dry_run,
            settings=self.settings,
            history=self.wiring.history.read_only(stack),
            log=log,
        )
        if self.settings.dry_run:
            log.info("dry run: no history, lease, uploads or markers")
            return ctx
        history = await stack.enter_async_context(self.wiring.history.connect())
        await history.migrate()
        if self.settings.run_id is not None:
            await self._attempt_id(history, log)
        return attrs.evolve(
            ctx, run_id=self.run_id, history=history, leases=history, lease_name=self.lease_name
        )

    async def _attempt_id(self, history: RunHistory, log: logging.Logger) -> None:
        """A --run-id the history already holds (a retry: the pod restarted, the operator ran
        the same command again) names this attempt `<run-id>.<n>`, the first free n from 2: the
        earlier attempts stay as they were recorded, and this one records `retry_of`."""
        given = self.run_id
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            candidate = given if attempt == 1 else f"{given}.{attempt}"
            try:
                previous = await history.get_run(candidate)
            except RunNotFound:
                break
        else:
            raise ConfigError(f"--run-id {given}: {_MAX_ATTEMPTS} attempts recorded; use another")
        if candidate == given:
            return
        log.info(
            "run id %s is taken (last attempt %s, %s): recording this attempt as %s",
            given,
            previous.run_id,
            previous.status.value,
            candidate,
        )
        self.run_id = candidate
        self.attributes["run_id"] = candidate
        self.parameters = {**self.parameters, "retry_of": given, "attempt": attempt}

    def _report_error(self, root: trace.Span, exc: BaseException) -> int:
        root.record_exception(exc)
        root.set_status(trace.Status(trace.StatusCode.ERROR, describe(exc)))
        code = int(exc.exit_code) if isinstance(exc, EtlError) else int(ExitCode.FAILED)
        if isinstance(exc, EtlError | KeyboardInterrupt):
            _log.error("run failed: %s", describe(exc))
            _log.debug("traceback", exc_info=exc)
        else:
            _log.error("run failed: %s", describe(exc), exc_info=exc)
        _print_error(self.job, describe(exc))
        return code

    def _print_summary(
        self,
        status: RunStatus,
        counts: Counts,
        outcome: JobOutcome | None,
        error: BaseException | None,
        trace_id: str | None,
    ) -> None:
        logs.end_progress()
        elapsed = time.monotonic() - self.started
        mode = " (dry run)" if self.settings.dry_run else ""
        fields: dict[str, object] = {}
        if outcome is not None:
            if outcome.artifacts:
                fields["artifacts"] = ", ".join(outcome.artifacts)
            fields.update(outcome.summary)
        fields.update(
            run_id=self.run_id, trace_id=trace_id, error=None if error is None else describe(error)
        )
        _log.info(
            "run finished",
            extra={"status": status.value, "duration_s": round(elapsed, 3), **attrs.asdict(counts)},
        )
        header = f"{self.job} run {self.run_id} {status.value} in {elapsed:.2f}s{mode}"
        logs.print_summary(header, counts, fields)


@contextlib.contextmanager
def _stop_on_sigterm(run: _Run) -> Iterator[None]:
    """SIGTERM stops the body like Ctrl-C, so the failure is recorded before exiting. One that
    came earlier (sigterm.deferred), or during set-up, leaves the body unstarted."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        run.stop_reason = run.stop_reason or Terminated("terminated by SIGTERM")
        if run.recording is not None:
            run.recording.stop(run.stop_reason)

    if sigterm.received():
        stop()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        loop.add_signal_handler(signal.SIGTERM, stop)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or Windows
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        if previous is not None:  # remove_signal_handler leaves the default: dying unrecorded
            signal.signal(signal.SIGTERM, previous)


def _print_error(job: str, message: str) -> None:
    print(f"{job}: error: {' '.join(message.split())}", file=sys.stderr, flush=True)


def _parameters(
    settings: CommonSettings, extra: Mapping[str, Any] | None, parent: str | None
) -> dict[str, Any]:
    """Settings (SecretUrls unstructure redacted; identity fields dropped) merged with the job's
    own parameters."""
    data: dict[str, Any] = serde.unstructure(settings)
    for name in ("run_id", "agency_id"):
        data.pop(name, None)
    if parent:  # the rollout that launched this pod (jobs/_k8s_render)
        data["parent_run_id"] = parent
    data.update(serde.unstructure(dict(extra or {})))
    return data
