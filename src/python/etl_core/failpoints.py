"""Crash-test failpoints: named places where the process SIGKILLs itself, or stalls, if
ETL_FAILPOINTS says (the process's wiring reads it and arms them: see `arm`)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import attrs

from etl_core.store_views import DelegatingObjectStore

__all__ = [
    "ENV",
    "Armed",
    "FailpointObjectStore",
    "afailpoint",
    "arm",
    "failpoint",
    "parse_spec",
    "reached_path",
]

ENV = "ETL_FAILPOINTS"
"""Comma-separated `name[@N][=action]`: on the N-th pass (default the first) of name, do action.

Actions: `kill` (the default: SIGKILL, no cleanup, like a power cut); `pause:PATH` (create
`PATH.reached` holding the pid, then wait until PATH exists: a test holds the run exactly there,
then kills or releases it); `sleep:SECONDS` (stall that long, then go on)."""

_ACTIONS = frozenset({"kill", "pause", "sleep"})
_POLL_SECONDS = 0.01

_hits: dict[str, int] = {}
_spec: str | None = None  # what `arm` was given: ETL_FAILPOINTS of this process, or None


def arm(spec: str | None) -> None:
    """Arm the failpoints spec names (ENV's format; None or "" disarms). Called by the wiring
    with the process's ETL_FAILPOINTS; a malformed spec fails at the first failpoint passed."""
    global _spec
    _spec = spec


@attrs.frozen
class Armed:
    """What an armed failpoint does, and on which pass."""

    at: int = 1
    action: str = "kill"
    argument: str = ""


def reached_path(path: str | os.PathLike[str]) -> Path:
    """The file a `pause:PATH` failpoint creates (holding the pid) when the run reaches it."""
    return Path(f"{os.fspath(path)}.reached")


def _malformed(entry: str, why: str) -> ValueError:
    return ValueError(
        f"{ENV}: malformed entry {entry!r} ({why}; expected name[@N][=kill|pause:PATH|sleep:S])"
    )


def _parse_action(entry: str, text: str) -> tuple[str, str]:
    action, _, argument = text.partition(":")
    if action not in _ACTIONS:
        raise _malformed(entry, f"unknown action {action!r}")
    if action == "kill" and argument:
        raise _malformed(entry, "kill takes no argument")
    if action == "pause" and not argument:
        raise _malformed(entry, "pause needs a path")
    if action == "sleep":
        try:
            seconds = float(argument)
        except ValueError:
            raise _malformed(entry, "sleep needs seconds") from None
        if not seconds >= 0:
            raise _malformed(entry, "sleep needs seconds >= 0")
    return action, argument


def parse_spec(spec: str) -> dict[str, Armed]:
    """name -> what fires and when. Raises ValueError naming a malformed entry."""
    armed: dict[str, Armed] = {}
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        where, _, action_text = entry.partition("=")
        name, _, count = where.partition("@")
        if not name or (count and (not count.isdigit() or int(count) < 1)):
            raise _malformed(entry, "bad name or pass number, N >= 1")
        action, argument = _parse_action(entry, action_text) if action_text else ("kill", "")
        armed[name] = Armed(int(count) if count else 1, action, argument)
    return armed


def _fired(name: str) -> Armed | None:
    """The armed action if this pass of name fires it (counts the pass)."""
    spec = _spec
    if not spec:
        return None
    armed = parse_spec(spec).get(name)
    if armed is None:
        return None
    _hits[name] = _hits.get(name, 0) + 1
    return armed if _hits[name] == armed.at else None


def _announce(path: str) -> Path:
    marker = reached_path(path)
    partial = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
    partial.write_text(f"{os.getpid()}\n")
    partial.replace(marker)  # the watcher never reads a half-written pid
    return Path(path)


def failpoint(name: str) -> None:
    """Do what ETL_FAILPOINTS arms for this pass of name: SIGKILL, pause or sleep.

    Unarmed, the cost is one global lookup. A pause or sleep here blocks the calling thread
    (in async code, the event loop: heartbeats stop too); `afailpoint` stalls without blocking.
    """
    armed = _fired(name)
    if armed is None:
        return
    if armed.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif armed.action == "sleep":
        time.sleep(float(armed.argument))
    else:
        release = _announce(armed.argument)
        while not release.exists():
            time.sleep(_POLL_SECONDS)


async def afailpoint(name: str) -> None:
    """`failpoint` for async code: a pause or sleep yields to the event loop, so the run's other
    tasks (its heartbeats) go on while it is held."""
    armed = _fired(name)
    if armed is None:
        return
    if armed.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif armed.action == "sleep":
        await asyncio.sleep(float(armed.argument))
    else:
        release = _announce(armed.argument)
        while not release.exists():
            await asyncio.sleep(_POLL_SECONDS)


@attrs.define
class FailpointObjectStore(DelegatingObjectStore):
    """An ObjectStore that passes `<prefix>.after_put`, `.before_commit`, `.after_commit` (a
    put_if_absent that created its key) and `.after_delete` failpoints around the real calls.
    They are async failpoints: a paused store call leaves the run's heartbeats running."""

    prefix: str

    async def put(self, key: str, body: bytes) -> None:
        """Create or replace key atomically, then pass `<prefix>.after_put`."""
        await self.store.put(key, body)
        await afailpoint(f"{self.prefix}.after_put")

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        """Create key only if absent, between `.before_commit` and `.after_commit`."""
        await afailpoint(f"{self.prefix}.before_commit")
        created = await self.store.put_if_absent(key, body)
        if created:
            await afailpoint(f"{self.prefix}.after_commit")
        return created

    async def delete(self, key: str) -> None:
        """Remove key (idempotent), then pass `<prefix>.after_delete`."""
        await self.store.delete(key)
        await afailpoint(f"{self.prefix}.after_delete")
