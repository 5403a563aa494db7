"""The shared job runner: run id, lease, history row, root span, heartbeats, counts, exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs
from opentelemetry import trace

from etl_core import clock, logs, s3_limits, serde, sigterm, telemetry
from etl_core.errors import (
    ConfigError,
    DeadLetterThresholdExceeded,
    EtlError,
    ExitCode,
    InvariantViolation,
    LeaseHeld,
    RunNotFound,
    TemporaryFailure,
)
from etl_core.model import Counts, PartitionRecord, RunRecord, RunStatus
from etl_core.ports import LeaseStore, RunHistory, RunHistoryAccess
from etl_core.process_memory import limit_malloc_arenas
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


class LeaseLost(TemporaryFailure):
    """The run could not renew its lease (expired and taken): it stops writing at once."""


class Terminated(TemporaryFailure):
    """The process was asked to stop (SIGTERM, e.g. pod eviction); retrying is appropriate."""


@attrs.frozen
class JobOutcome:
    """What a job body reports: counts, the artifacts it wrote, and fields for the summary."""

    counts: Counts = Counts()
    artifacts: tuple[str, ...] = ()
    summary: Mapping[str, Any] = attrs.field(factory=dict)
    # A few dead-lettered inputs, each named with why (`key (reason)`): a run failed by
    # --max-dead-letter-ratio names them in its error, and so in the history.
    dead_letters: tuple[str, ...] = ()


@attrs.define
class RunContext:
    """What a job body gets: run identity, settings, the history, spans, ledger and heartbeat."""

    run_id: str
    job: str
    agency_id: int | None
    dry_run: bool
    settings: CommonSettings
    history: RunHistory  # a no-write view in a dry run
    log: logging.Logger
    leases: LeaseStore | None = None
    lease_name: str | None = None
    recorded: Counts = Counts()  # sum of the partitions recorded so far

    def span(self, name: str, **attributes: Any) -> contextlib.AbstractContextManager[trace.Span]:
        """A child span; it carries run_id/agency_id like every span of the run."""
        return telemetry.span(name, **attributes)

    async def record_partition(self, partition: PartitionRecord) -> None:
        """Write the partition's ledger row (not in a dry run); counts feed a failed run's row."""
        self.recorded = self.recorded + partition.counts
        if self.dry_run:
            return
        if partition.recorded_at is None:
            partition = attrs.evolve(partition, recorded_at=clock.now())
        await self.history.record_partition(partition)

    async def heartbeat(self) -> None:
        """Mark the run alive and renew the lease. Raises LeaseLost if the lease was taken."""
        if self.dry_run:
            return
        await self.history.heartbeat(self.run_id, clock.now())
        if self.leases is not None and self.lease_name is not None:
            ttl = dt.timedelta(seconds=self.settings.lease_ttl_seconds)
            if not await self.leases.renew(self.lease_name, self.run_id, ttl):
                raise LeaseLost(f"lease {self.lease_name!r} was lost (expired and taken over)")

    def progress(self, text: str) -> None:
        """Update the progress line (TTY) or log it now and then."""
        logs.show_progress(text)


JobBody = Callable[[RunContext], Awaitable[JobOutcome]]


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
    limit_malloc_arenas()  # before any thread: see etl_core.process_memory
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
    body_task: asyncio.Task[JobOutcome] | None = None
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
                ctx = await self._setup(stack, trace_id)
            except Exception as exc:
                # Nothing recorded: a bad URL, an unreachable history, or a held lease.
                return self._report_error(root, exc)
            root.set_attribute("run_id", ctx.run_id)  # an attempt of a reused --run-id
            outcome: JobOutcome | None
            error: BaseException | None
            if self.stop_reason is not None:  # SIGTERM during set-up: record it, run nothing
                outcome, error = None, self.stop_reason
            else:
                outcome, error = await self._run_body(ctx)
            if error is None:
                assert outcome is not None
                error = check_counts(
                    outcome.counts, self.settings.max_dead_letter_ratio, outcome.dead_letters
                )
            counts = outcome.counts if outcome is not None else ctx.recorded
            status = RunStatus.SUCCEEDED if error is None else RunStatus.FAILED
            finish_error = await self._finish(ctx, status, counts, outcome, error)
        root.set_attributes({"status": status.value, **attrs.asdict(counts)})
        self._print_summary(status, counts, outcome, error or finish_error, trace_id)
        if error is not None:
            return self._report_error(root, error)
        if finish_error is not None:
            return self._report_error(root, finish_error)
        return ExitCode.OK

    async def _setup(self, stack: contextlib.AsyncExitStack, trace_id: str | None) -> RunContext:
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
        ttl = dt.timedelta(seconds=self.settings.lease_ttl_seconds)
        if not await history.acquire(self.lease_name, self.run_id, ttl):
            raise await lease_held(history, self.lease_name)
        stack.push_async_callback(_release, history, self.lease_name, self.run_id)
        now = clock.now()
        await history.start_run(
            RunRecord(
                run_id=self.run_id,
                job=self.job,
                status=RunStatus.RUNNING,
                started_at=now,
                heartbeat_at=now,
                agency_id=self.settings.agency_id,
                parameters=self.parameters,
                trace_id=trace_id,
                host=socket.gethostname(),
                code_version=self.wiring.code_version,
            )
        )
        log.info("run started", extra={"lease": self.lease_name})
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

    async def _run_body(self, ctx: RunContext) -> tuple[JobOutcome | None, BaseException | None]:
        task = self.body_task = asyncio.create_task(self._call_body(ctx))
        beat = asyncio.create_task(self._heartbeats(ctx, task))
        try:
            return await task, None
        except asyncio.CancelledError:
            # Ctrl-C (asyncio cancels the main task), SIGTERM, or a lost lease.
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            return None, self.stop_reason or KeyboardInterrupt("interrupted")
        except Exception as exc:
            return None, exc
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _call_body(self, ctx: RunContext) -> JobOutcome:
        outcome = await self.body(ctx)
        if not isinstance(outcome, JobOutcome):
            raise TypeError(f"job body returned {type(outcome).__name__}, not JobOutcome")
        return outcome

    async def _heartbeats(self, ctx: RunContext, body: asyncio.Task[JobOutcome]) -> None:
        if ctx.dry_run:
            return
        settings = self.settings
        # Well inside both the lease TTL and the staleness window, and at least once a minute.
        interval = min(60.0, settings.lease_ttl_seconds / 3, settings.stale_after_seconds / 3)
        interval = max(0.05, interval)
        while True:
            await asyncio.sleep(interval)
            try:
                await ctx.heartbeat()
            except LeaseLost as exc:
                ctx.log.error(str(exc))
                self.stop_reason = exc
                body.cancel()
                return
            except Exception as exc:  # a blip in the history database must not kill the run
                ctx.log.warning("heartbeat failed: %s", exc)

    async def _finish(
        self,
        ctx: RunContext,
        status: RunStatus,
        counts: Counts,
        outcome: JobOutcome | None,
        error: BaseException | None,
    ) -> BaseException | None:
        if ctx.dry_run:
            return None
        try:
            await ctx.history.finish_run(
                self.run_id,
                status=status,
                finished_at=clock.now(),
                counts=counts,
                artifacts=outcome.artifacts if outcome is not None else (),
                error=None if error is None else _describe(error),
            )
        except Exception as exc:
            ctx.log.error("could not record the outcome of the run: %s", exc)
            return exc
        return None

    def _report_error(self, root: trace.Span, exc: BaseException) -> int:
        root.record_exception(exc)
        root.set_status(trace.Status(trace.StatusCode.ERROR, _describe(exc)))
        code = int(exc.exit_code) if isinstance(exc, EtlError) else int(ExitCode.FAILED)
        if isinstance(exc, EtlError | KeyboardInterrupt):
            _log.error("run failed: %s", _describe(exc))
            _log.debug("traceback", exc_info=exc)
        else:
            _log.error("run failed: %s", _describe(exc), exc_info=exc)
        _print_error(self.job, _describe(exc))
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
        fields.update(trace_id=trace_id, error=None if error is None else _describe(error))
        _log.info(
            "run finished",
            extra={"status": status.value, "duration_s": round(elapsed, 3), **attrs.asdict(counts)},
        )
        header = f"{self.job} run {self.run_id} {status.value} in {elapsed:.2f}s{mode}"
        logs.print_summary(header, counts, fields)


def check_counts(
    counts: Counts, max_ratio: float | None, examples: Sequence[str] = ()
) -> EtlError | None:
    """End-of-run checks: balanced counts (when rows are reported), dead-letter ratio in bounds
    (the error names the examples: dead-lettered inputs with why)."""
    reported = counts.rows_in or counts.rows_out or counts.rows_duplicate or counts.rows_dead_letter
    if reported and not counts.balanced:
        return InvariantViolation(
            f"rows_in {counts.rows_in} != rows_out {counts.rows_out} + rows_duplicate "
            f"{counts.rows_duplicate} + rows_dead_letter {counts.rows_dead_letter}"
        )
    if max_ratio is not None and counts.rows_in > 0:
        ratio = counts.rows_dead_letter / counts.rows_in
        if ratio > max_ratio:
            shown = f": {'; '.join(examples[:5])}" if examples else ""
            more = f"; and {len(examples) - 5} more" if len(examples) > 5 else ""
            return DeadLetterThresholdExceeded(
                f"dead-letter ratio {ratio:.4g} ({counts.rows_dead_letter}/{counts.rows_in}) "
                f"exceeds --max-dead-letter-ratio {max_ratio:g}{shown}{more}"
            )
    return None


async def lease_held(leases: LeaseStore, name: str) -> LeaseHeld:
    """The LeaseHeld error for name, naming its holder (run_id, host, pid, expiry) if known."""
    try:
        holder = await leases.holder(name)
    except Exception as exc:  # the message is only less specific
        _log.debug("could not read the holder of lease %r: %s", name, exc)
        holder = None
    return LeaseHeld(name, holder.describe() if holder is not None else None)


async def _release(leases: LeaseStore, name: str, owner: str) -> None:
    try:
        await leases.release(name, owner)
    except Exception as exc:  # it expires on its own; the outcome is already recorded
        _log.warning("could not release lease %r: %s", name, exc)


@contextlib.contextmanager
def _stop_on_sigterm(run: _Run) -> Iterator[None]:
    """SIGTERM stops the body like Ctrl-C, so the failure is recorded before exiting. One that
    came earlier (sigterm.deferred), or during set-up, leaves the body unstarted."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        run.stop_reason = run.stop_reason or Terminated("terminated by SIGTERM")
        if run.body_task is not None:
            run.body_task.cancel()

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


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
