"""Locks the kernel frees when their process dies: how a lease store tells a dead holder at once.

A lease row alone can only expire (its TTL). Each real lease store also holds a lock tied to the
holder's process (a PostgreSQL session advisory lock; here, flock(2) on a per-lease file): when a
store can take that lock for a lease whose row says it is held by a live holder, the holder's
process is gone, and the lease (and the holder's run) can be taken over without waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
from pathlib import Path


def this_process() -> tuple[str, int]:
    """(host name, pid) recorded with a lease, for the messages of the runs it blocks."""
    return socket.gethostname(), os.getpid()


def lock_file(directory: Path, name: str) -> Path:
    """The lock file of lease `name` (hashed: names hold '/' and '=')."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:40]
    return directory / f"{digest}.lock"


def try_flock(path: Path) -> int | None:
    """An fd holding an exclusive flock on path, or None if another open file holds it or the
    file system cannot lock (then only the TTL protects). Not inherited by child processes."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: held by a live process; others: no locking here
        os.close(fd)
        return None
    return fd


def unflock(fd: int) -> None:
    """Release and close a lock from try_flock; idempotent on a closed fd."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        os.close(fd)
