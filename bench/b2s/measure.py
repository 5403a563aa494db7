"""Wall time, CPU and peak RSS of subprocesses, each accounted on its own via wait4(2).

Commands are started by a small launcher process (this module run as a script), never by the
benchmark itself: Linux records the hiwater RSS of the address space a process leaves at exec
into its ru_maxrss, and subprocess starts children with vfork, so a child of the benchmark (large
after reading 1M rows back, or holding moto's buckets) would report the benchmark's RSS as its
own peak. A child of the launcher inherits only the launcher's ~10 MB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs


class CommandFailed(RuntimeError):
    """A measured command exited non-zero; the message holds the tail of its output."""


@attrs.frozen
class Usage:
    """What a group of processes used: wall time of the group, CPU and peak RSS of the largest."""

    wall_s: float
    cpu_s: float  # user + sys of the processes and every descendant they waited for
    peak_rss_mb: float  # the largest single process (ru_maxrss), not a sum over processes
    processes: int  # commands started (not counting their own children)


@attrs.define
class _Group:
    env: Mapping[str, str]
    cwd: Path
    logs: Path
    running: dict[int, tuple[int, Sequence[str], subprocess.Popen[bytes]]] = attrs.Factory(dict)
    cpu_s: float = 0.0
    peak_kib: int = 0

    def start(self, index: int, command: Sequence[str]) -> None:
        with open(self.logs / f"{index:04d}.log", "wb") as log:
            process = subprocess.Popen(
                command, cwd=self.cwd, env=dict(self.env), stdout=log, stderr=log
            )
        self.running[process.pid] = (index, command, process)

    def reap_one(self) -> None:
        """Wait for any of our children; account it; raise CommandFailed if it failed."""
        pid, status, usage = os.wait4(-1 if len(self.running) > 1 else next(iter(self.running)), 0)
        if pid not in self.running:
            return  # not one of ours (the bench starts no other processes; be safe anyway)
        index, command, process = self.running.pop(pid)
        process.returncode = code = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        self.cpu_s += usage.ru_utime + usage.ru_stime
        self.peak_kib = max(self.peak_kib, usage.ru_maxrss)  # KiB on Linux
        if code != 0:
            tail = (self.logs / f"{index:04d}.log").read_text(errors="replace")[-3000:]
            raise CommandFailed(f"exit {code}: {' '.join(command)}\n{tail}")

    def stop_all(self) -> None:
        for _, _, process in self.running.values():
            process.kill()
            process.wait()
        self.running.clear()


def _measure_here(
    commands: Sequence[Sequence[str]],
    *,
    env: Mapping[str, str],
    cwd: Path,
    logs: Path,
    at_once: int = 1,
    parent: int | None = None,
) -> Usage:
    """Run every command, at most at_once at a time; raise CommandFailed on a non-zero exit,
    or once `parent` (the benchmark) is gone, when the next command would start.

    wait4 returns the rusage of one child including the descendants it reaped (a job's worker
    pool), so each command is accounted exactly even when several run at once.
    """
    logs.mkdir(parents=True, exist_ok=True)
    group = _Group(env, cwd, logs)
    queue = list(enumerate(commands))
    started = time.perf_counter()
    try:
        while queue or group.running:
            if parent is not None and os.getppid() != parent:
                raise CommandFailed("the benchmark exited; stopping")
            while queue and len(group.running) < at_once:
                group.start(*queue.pop(0))
            group.reap_one()
    finally:
        group.stop_all()  # empty unless a command failed
    wall_s = time.perf_counter() - started
    return Usage(wall_s, group.cpu_s, group.peak_kib / 1024, len(commands))


def run_measured(
    commands: Sequence[Sequence[str]],
    *,
    env: Mapping[str, str],
    cwd: Path,
    logs: Path,
    at_once: int = 1,
) -> Usage:
    """_measure_here in a launcher process; raises CommandFailed like it."""
    request = {
        "commands": [list(command) for command in commands],
        "env": dict(env),
        "cwd": str(cwd),
        "logs": str(logs),
        "at_once": at_once,
    }
    launcher = [sys.executable, "-m", "b2s.measure"]
    reply = subprocess.run(
        launcher, input=json.dumps(request), capture_output=True, text=True, env=env, check=False
    )
    if reply.returncode != 0:
        raise CommandFailed(reply.stderr[-3000:] or f"launcher exited {reply.returncode}")
    return Usage(**json.loads(reply.stdout))


def _launcher() -> None:
    request = json.loads(sys.stdin.read())
    usage = _measure_here(
        request["commands"],
        env=request["env"],
        cwd=Path(request["cwd"]),
        logs=Path(request["logs"]),
        at_once=request["at_once"],
        parent=os.getppid(),
    )
    sys.stdout.write(json.dumps(attrs.asdict(usage)))


if __name__ == "__main__":
    _launcher()
