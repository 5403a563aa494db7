"""The data-pipeline command: list the jobs, run one, show recent runs.

The commands are argparse subparsers (they replaced a hand-written if/elif dispatch); what
argparse has no words for stays a small step before it: `data-pipeline <job> [args...]` and the
image entrypoint form `data-pipeline --agency-id 3 ...` (ETL_DEFAULT_JOB) become `run <job> ...`,
and the help is the one USAGE text below rather than argparse's generated one, which would list
the subparsers but not the `<job>` shorthand, the entrypoint form or the exit codes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence, Set
from typing import Any

import attrs
from etl_core import clock, serde, sigterm, text_table
from etl_core.errors import ConfigError, EtlError, ExitCode
from etl_core.model import RunRecord, RunStatus
from etl_core.process_exit import exit_with
from etl_core.settings import CommonSettings, load_settings
from etl_core.urls import redact
from etl_core.version import code_version

from jobs import registry

PROG = "data-pipeline"
DEFAULT_JOB_ENV = "ETL_DEFAULT_JOB"
USAGE = f"""usage: {PROG} <command> [arguments]

commands:
  list [--json]               the jobs and what each does
  run <job> [--] [args...]    run a job; `{PROG} <job> [args...]` works too
  runs [--job JOB] [--agency-id N] [--status S] [--parent RUN_ID] [--limit N]
       [--history URL] [--config PATH] [--json]
                              recent runs from the run history (stale = died while running)
  k8s render [args...]        Kubernetes Job manifests for a job over many agencies
  <job> --help                a job's own options
  --version                   the code version (recorded with every run)
  --agency-id N [args...]     runs job ${DEFAULT_JOB_ENV} with these arguments when it is set
                              (an image's entrypoint form, e.g. {DEFAULT_JOB_ENV}=get_s3_files)

exit codes: 0 ok, 1 failed, 2 usage or configuration error, 75 temporary failure (retry)
"""


_HELP_FLAGS = ("-h", "--help")
_VERSION_FLAGS = ("-V", "--version")


def main(argv: list[str] | None = None) -> int:
    """Dispatch argv (default sys.argv[1:]); return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write(USAGE)
        return ExitCode.USAGE
    command = _as_command(args)
    if isinstance(command, str):
        return _error(command, ExitCode.USAGE)
    try:
        parsed = _parser().parse_args(command)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 0
    handler: Callable[[argparse.Namespace], int] = parsed.handler
    return handler(parsed)


def _as_command(args: list[str]) -> list[str] | str:
    """The two shorthands as the `run` command they stand for, or why argv is not a command:
    `<job> [args...]`, and `--option ...` for the job ETL_DEFAULT_JOB names (an image's
    entrypoint form). Everything else is for argparse."""
    first = args[0]
    if first in _COMMANDS or first in _HELP_FLAGS or first in _VERSION_FLAGS:
        return args
    if not first.startswith("-"):
        return ["run", *args]
    default = os.environ.get(DEFAULT_JOB_ENV, "").strip()
    if not default:
        return (
            f"unknown option {first!r}: name the job first ({PROG} run <job> -- "
            f"{first} ...), or set {DEFAULT_JOB_ENV}=<job> to run that job when "
            f"arguments start with an option; see {PROG} --help"
        )
    return ["run", default, "--", *args]  # the job's own arguments, as given


class _PrintAndExit(argparse.Action):
    """--help and --version of the umbrella: print, exit 0 (argparse's own would format help)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help=kwargs.get("help"))

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        if "--version" in self.option_strings:
            print(f"{PROG} {code_version(os.environ)}")
        else:
            sys.stdout.write(USAGE)
        parser.exit(ExitCode.OK)


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: it rejects arguments it does not know itself, so the error names the
    command (`data-pipeline list: error: ...`) and its usage, not the umbrella's."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed, extra


def _parser() -> argparse.ArgumentParser:
    """The commands as argparse subparsers; USAGE is their shared help."""
    parser = argparse.ArgumentParser(
        prog=PROG, usage=f"{PROG} <command> [arguments] (see {PROG} --help)", add_help=False
    )
    parser.add_argument(*_HELP_FLAGS, action=_PrintAndExit, help="this help")
    parser.add_argument(*_VERSION_FLAGS, action=_PrintAndExit, help="the code version")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="<command>", parser_class=_CommandParser
    )

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return commands.add_parser(name, prog=f"{PROG} {name}", **kwargs)

    listing = command("list", description="The jobs, by name.")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(handler=_list)

    # No -h of its own: `run <job> --help` is the job's help, and `run -h` names no job.
    run = command("run", usage=f"{PROG} run <job> [--] [args...]", add_help=False)
    run.add_argument("job", help="the job's name (see list)")
    run.add_argument("args", nargs=argparse.REMAINDER, help="the job's own arguments")
    run.set_defaults(handler=_run_command)

    runs = command("runs", description="Recent runs, newest first.")
    _add_runs_arguments(runs)
    runs.set_defaults(handler=_runs)

    # `render` is a positional choice, not a nested subparser: REMAINDER after a positional
    # passes `render --help` and every other option on to render_main, which has its own parser.
    k8s = command("k8s", usage=f"{PROG} k8s render [args...] (see {PROG} k8s render --help)")
    k8s.add_argument("action", choices=["render"], metavar="render")
    k8s.add_argument("args", nargs=argparse.REMAINDER)
    k8s.set_defaults(handler=_k8s_render)

    command("help", add_help=False).set_defaults(handler=_help)
    return parser


_COMMANDS = ("list", "run", "runs", "k8s", "help")


def _error(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _help(_: argparse.Namespace) -> int:
    sys.stdout.write(USAGE)
    return ExitCode.OK


def _list(args: argparse.Namespace) -> int:
    found = registry.discover()
    if args.json:
        jobs = [
            {"name": job.name, "description": job.description, "module": job.module}
            for job in found.jobs
        ]
        print(json.dumps({"jobs": jobs, "problems": list(found.problems)}, indent=2))
    else:
        width = max((len(job.name) for job in found.jobs), default=0)
        for job in found.jobs:
            print(f"{job.name:<{width}}  {job.description}")
    for problem in found.problems:
        print(f"{PROG}: broken job module: {problem}", file=sys.stderr)
    return ExitCode.FAILED if found.problems else ExitCode.OK


def _run_command(args: argparse.Namespace) -> int:
    rest: list[str] = args.args
    if args.job.startswith("-"):
        return _error(f"usage: {PROG} run <job> [--] [args...]", ExitCode.USAGE)
    # From here a SIGTERM (a pod evicted while the job still loads) is noted, not fatal: the run
    # is recorded as terminated and exits 75.
    with sigterm.deferred():
        return _run(args.job, rest[1:] if rest[:1] == ["--"] else rest)


def _run(name: str, argv: list[str]) -> int:
    try:
        job = registry.load(name)
    except EtlError as exc:  # UnknownJob -> 2, JobDefinitionError -> 1
        return _error(str(exc), exc.exit_code)
    try:
        return int(job.entrypoint(argv))
    except SystemExit as exc:  # argparse: --help (0) or a bad flag (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)


def _k8s_render(args: argparse.Namespace) -> int:
    from jobs._k8s_render import render_main

    return render_main(args.args, known_jobs=registry.job_names())


@attrs.frozen(kw_only=True)
class _RunsSettings(CommonSettings):
    """`runs` reads only the run history."""

    def embedded_defaults_used(self, configured: Set[str]) -> Iterator[str]:
        yield from (
            name for name in super().embedded_defaults_used(configured) if name != "store_url"
        )


def _add_runs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job", help="only this job")
    parser.add_argument("--agency-id", dest="agency_id", type=int, help="only this agency")
    parser.add_argument(
        "--status", choices=[status.value for status in RunStatus],
        help="only runs in this state (stale: running, but no heartbeat for "
        "stale_after_seconds, default 900)",
    )  # fmt: skip
    parser.add_argument(
        "--parent", dest="parent_run_id", metavar="RUN_ID",
        help="only the child runs of this run (a backfill's agencies, a k8s rollout's pods)",
    )  # fmt: skip
    parser.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    parser.add_argument("--history", dest="history_url", metavar="URL", help="run history URL")
    parser.add_argument("--config", dest="config_path", metavar="PATH", help="TOML settings")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")


def _runs(args: argparse.Namespace) -> int:
    if args.limit < 1:
        return _error(f"--limit must be >= 1, got {args.limit}", ExitCode.USAGE)
    try:
        settings = load_settings(
            _RunsSettings,
            job="runs",
            flags={"history_url": args.history_url},
            env=os.environ,
            config_path=args.config_path,
        )
    except ConfigError as exc:
        return _error(str(exc), ExitCode.USAGE)
    from etl_core.adapters.run_histories import history_may_exist

    if not history_may_exist(settings.history_url):  # reading must not create an empty database
        return _error(
            f"no run history at {redact(settings.history_url)}: the file does not exist (no run "
            "has recorded there yet, or --history / ETL_HISTORY_URL names the wrong file)",
            ExitCode.USAGE,
        )
    stale_after = dt.timedelta(seconds=settings.stale_after_seconds)
    query = _RunsQuery(args.job, args.agency_id, args.status, args.parent_run_id, args.limit)
    try:
        runs = asyncio.run(_fetch(settings.history_url, query, stale_after))
    except EtlError as exc:
        return _error(str(exc), exc.exit_code)
    if not runs and args.job is not None and args.job not in registry.job_names():
        known = ", ".join(registry.job_names())
        return _error(
            f"unknown job {args.job!r} (known jobs: {known}) and no runs of it recorded",
            ExitCode.USAGE,
        )
    now = clock.now()
    if args.json:
        print(json.dumps([_as_json(run, now, stale_after) for run in runs], indent=2))
    elif runs:
        print(_table(runs, now, stale_after))
    else:
        which = query.describe()
        shown = redact(settings.history_url)
        print(f"no runs {which + ' ' if which else ''}recorded in {shown}", file=sys.stderr)
    return ExitCode.OK


@attrs.frozen
class _RunsQuery:
    """What `runs` asks for; status may be "stale" (derived at read time, never stored)."""

    job: str | None
    agency_id: int | None
    status: str | None
    parent_run_id: str | None
    limit: int

    def describe(self) -> str:
        """The filters as words ("of job x, for agency 3") or "" for none."""
        filters = (
            ("of job", self.job),
            ("for agency", self.agency_id),
            ("with status", self.status),
            ("with parent", self.parent_run_id),
        )
        return ", ".join(f"{label} {value}" for label, value in filters if value is not None)


async def _fetch(url: str, query: _RunsQuery, stale_after: dt.timedelta) -> list[RunRecord]:
    from etl_core.adapters.every_history import every_history
    from etl_core.adapters.run_histories import open_run_history

    # running and stale are both stored as running: ask for those, then tell them apart.
    derived = query.status in (RunStatus.RUNNING.value, RunStatus.STALE.value)
    stored = None
    if query.status is not None:
        stored = RunStatus.RUNNING if derived else RunStatus(query.status)
    async with open_run_history(url, every_history()) as history:
        # A run whose process is gone (its lease's liveness lock is free) shows as failed
        # ("died") now, not as running until stale. Best effort: reading must still work.
        with contextlib.suppress(EtlError):
            await history.reap_dead()
        runs = await history.list_runs(
            job=query.job,
            agency_id=query.agency_id,
            status=stored,
            parent_run_id=query.parent_run_id,
            limit=_ALL_RUNNING if derived else query.limit,
        )
    if derived:
        now = clock.now()
        runs = [run for run in runs if run.effective_status(now, stale_after).value == query.status]
    return runs[: query.limit]


# Runs stored as running are few (the live ones and the dead not yet reaped): all are read to
# tell running from stale.
_ALL_RUNNING = 100_000


def _as_json(run: RunRecord, now: dt.datetime, stale_after: dt.timedelta) -> dict[str, object]:
    data: dict[str, object] = serde.unstructure(run)
    data["effective_status"] = run.effective_status(now, stale_after).value
    data["duration_s"] = run.duration.total_seconds() if run.duration is not None else None
    return data


# INSERTED/UPDATED: what the run did to silver (keys new to it, newer versions that replaced one).
_COLUMNS = ("RUN_ID", "JOB", "AGENCY", "STATUS", "STARTED (UTC)", "DURATION", "IN", "OUT", "DUP",
            "DEAD", "INSERTED", "UPDATED", "BYTES_IN", "BYTES_OUT", "ERROR")  # fmt: skip
_RIGHT = frozenset({"AGENCY", "DURATION", "IN", "OUT", "DUP", "DEAD", "INSERTED", "UPDATED",
                    "BYTES_IN", "BYTES_OUT"})  # fmt: skip


def _table(runs: list[RunRecord], now: dt.datetime, stale_after: dt.timedelta) -> str:
    rows = [_row(run, now, stale_after) for run in runs]
    return text_table.aligned(_COLUMNS, rows, right=_RIGHT)


def _row(run: RunRecord, now: dt.datetime, stale_after: dt.timedelta) -> tuple[str, ...]:
    counts = run.counts
    error = " ".join((run.error or "").split())
    return (
        run.run_id,
        run.job,
        "" if run.agency_id is None else str(run.agency_id),
        run.effective_status(now, stale_after).value,
        run.started_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        _duration(run.duration),
        f"{counts.rows_in:,}",
        f"{counts.rows_out:,}",
        f"{counts.rows_duplicate:,}",
        f"{counts.rows_dead_letter:,}",
        f"{counts.rows_inserted:,}",
        f"{counts.rows_updated:,}",
        text_table.byte_size(counts.bytes_in),
        text_table.byte_size(counts.bytes_out),
        error if len(error) <= 60 else error[:57] + "...",
    )


def _duration(value: dt.timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


if __name__ == "__main__":
    exit_with(main())
