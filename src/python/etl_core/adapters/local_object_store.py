"""LocalObjectStore: the ObjectStore port on a local directory, with atomic writes and no server."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import logging
import os
import re
import socket
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import attrs

from etl_core.errors import ObjectNotFound, ObjectStoreError
from etl_core.model import ObjectInfo

# In-flight writes live beside their target under this reserved prefix; list() never shows them.
# The name goes on "<host tag>-<pid>-<random>", so a later run can tell a temp file whose writer
# died (killed mid-write) from one being written now, and remove it.
TEMP_PREFIX = ".etl-tmp-"
_TEMP_NAME = re.compile(rf"^{re.escape(TEMP_PREFIX)}([0-9a-f]{{8}})-([0-9]+)-[0-9a-f]+$")
# Temp files of other hosts (a shared volume), or of an unknown writer, go once this old: no
# write of an in-memory body takes that long.
TEMP_MAX_AGE = dt.timedelta(hours=1)
# The md5 of a file's content is cached in this extended attribute, written with the content
# before it becomes visible, as "<md5>:<size>:<mtime_ns>". A value whose size or mtime no longer
# match the file (edited in place by another tool) is ignored and the content hashed again.
ETAG_XATTR = "user.etl.etag"
_HASH_CHUNK = 1 << 20
_log = logging.getLogger(__name__)
_NOT_FOUND = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


class InvalidObjectKey(ObjectStoreError):
    """A key that is not a safe relative path inside the store."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"invalid object key {key!r}: {reason}")


def key_segments(key: str) -> list[str]:
    """The path segments of key; raises InvalidObjectKey for keys that could leave the root."""
    if not key:
        raise InvalidObjectKey(key, "empty key")
    if key.startswith("/"):
        raise InvalidObjectKey(key, "absolute keys are not allowed; keys are relative")
    if "\\" in key or "\0" in key:
        raise InvalidObjectKey(key, "backslash and NUL characters are not allowed")
    segments = key.split("/")
    for segment in segments:
        if not segment:
            raise InvalidObjectKey(key, "empty path segment (leading, trailing or doubled '/')")
        if segment in (".", ".."):
            raise InvalidObjectKey(key, f"{segment!r} segments are not allowed")
        if segment.startswith(TEMP_PREFIX):
            raise InvalidObjectKey(key, f"segments starting with {TEMP_PREFIX!r} are reserved")
    return segments


@attrs.define
class LocalObjectStore:
    """ObjectStore on a directory: key 'a/b.ndjson' is the file <root>/a/b.ndjson.

    put replaces atomically (temp file + fsync + rename); put_if_absent publishes with link(2),
    which fails if the name exists, so it is exclusive across processes too. etag is the md5 hex
    of the content (as S3 reports for single-part uploads), cached in an xattr where supported.
    A key cannot be both an object and a "directory" of other keys ('a' and 'a/b'): that is an
    ObjectStoreError here, unlike S3. durable=True fsyncs each file and its directory entry
    (not newly created parent directories: after a power loss a fresh partition may vanish
    whole, which re-runs repair, but never appear half-written); durable=False skips fsync.
    """

    root: Path = attrs.field(converter=Path)
    durable: bool = True

    def path_of(self, key: str) -> Path:
        """The file that holds key. Raises InvalidObjectKey."""
        return self.root.joinpath(*key_segments(key))

    async def get(self, key: str) -> bytes:
        """Whole object. Raises ObjectNotFound."""
        path = self.path_of(key)
        try:
            return await asyncio.to_thread(_read, path)
        except _NOT_FOUND:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise _failed("get", key, exc) from exc

    async def stream(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Object body in chunks of at most chunk_size. Raises ObjectNotFound on first iteration."""
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        path = self.path_of(key)
        try:
            fd = await asyncio.to_thread(_open_regular, path)
        except _NOT_FOUND:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise _failed("stream", key, exc) from exc
        try:
            while chunk := await asyncio.to_thread(os.read, fd, chunk_size):
                yield chunk
        except OSError as exc:
            raise _failed("stream", key, exc) from exc
        finally:
            os.close(fd)

    async def put(self, key: str, body: bytes) -> None:
        """Create or replace key atomically: readers see the old or the new body, never a part."""
        path = self.path_of(key)
        try:
            await asyncio.to_thread(_put, path, body, self.durable)
        except OSError as exc:
            raise _failed("put", key, exc) from exc

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        """Create key only if absent; False if it already existed. Exclusive across processes."""
        path = self.path_of(key)
        try:
            return await asyncio.to_thread(_put_if_absent, path, body, self.durable)
        except OSError as exc:
            raise _failed("put_if_absent", key, exc) from exc

    async def head(self, key: str) -> ObjectInfo:
        """Size, etag (md5) and mtime of key. Raises ObjectNotFound."""
        path = self.path_of(key)
        try:
            return await asyncio.to_thread(_info, key, path)
        except _NOT_FOUND:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise _failed("head", key, exc) from exc

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with prefix, in key order; skips in-flight writes."""
        try:
            infos = await asyncio.to_thread(_list, self.root, prefix)
        except OSError as exc:
            raise _failed("list", prefix, exc) from exc
        for info in infos:
            yield info

    async def delete(self, key: str) -> None:
        """Remove key and the directories it leaves empty; idempotent. Not fsynced: deletes only
        clean up unreferenced files, and a delete undone by a crash is simply redone later."""
        path = self.path_of(key)
        try:
            await asyncio.to_thread(_delete, self.root, path)
        except OSError as exc:
            raise _failed("delete", key, exc) from exc

    async def remove_temp_files(
        self, older_than: dt.timedelta = TEMP_MAX_AGE, *, dead_writers: bool = True
    ) -> int:
        """Delete in-flight files left by crashed writers: those older than older_than and (with
        dead_writers) those this host's processes wrote and that no longer run; the count."""
        cutoff = time.time() - older_than.total_seconds()
        try:
            return await asyncio.to_thread(_remove_temp_files, self.root, cutoff, dead_writers)
        except OSError as exc:
            raise _failed("remove_temp_files", "", exc) from exc


@contextlib.asynccontextmanager
async def open_local_object_store(
    root: str | os.PathLike[str], *, durable: bool = True, sweep: bool = False
) -> AsyncIterator[LocalObjectStore]:
    """Create root if needed and yield a LocalObjectStore on it (absolute, so chdir is harmless).

    sweep=True (a run that writes) first removes the temp files of killed writes
    (remove_temp_files); a failure to is only logged.
    """
    path = Path(root).absolute()
    try:
        await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
    except OSError as exc:
        raise ObjectStoreError(f"cannot create object store root {str(path)!r}: {exc}") from exc
    store = LocalObjectStore(path, durable=durable)
    if sweep:
        try:
            removed = await store.remove_temp_files()
        except ObjectStoreError as exc:
            _log.warning("could not remove temp files of killed writes: %s", exc)
        else:
            if removed:
                _log.info("removed %d temp files of killed writes", removed)
    yield store


def _failed(op: str, key: str, exc: OSError) -> ObjectStoreError:
    if isinstance(exc, NotADirectoryError | FileExistsError | IsADirectoryError):
        reason = "key clashes with an existing object or key prefix ('a' vs 'a/b')"
    else:
        reason = exc.strerror or str(exc)
    return ObjectStoreError(f"local object store: {op} {key!r} failed: {reason}")


# -- blocking helpers, run in worker threads ---------------------------------------------------


def _read(path: Path) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _open_regular(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(str(path))
    return fd


def _write_temp(directory: Path, body: bytes, durable: bool) -> Path:
    """A fully written (and fsynced) temp file in directory, created along with its parents."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for attempt in range(10):
        temp = directory / f"{TEMP_PREFIX}{_host_tag()}-{os.getpid()}-{os.urandom(8).hex()}"
        try:
            fd = os.open(temp, flags, 0o666)  # umask applies, unlike tempfile.mkstemp's 0600
            break
        except FileNotFoundError:
            # First write into this directory, or a concurrent delete pruned it: (re)create.
            if attempt == 9:
                raise
            directory.mkdir(parents=True, exist_ok=True)
    try:
        with open(fd, "wb", closefd=False) as file:
            file.write(body)
        _store_etag(fd, body)
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return temp


def _store_etag(fd: int, body: bytes) -> None:
    if hasattr(os, "setxattr"):
        _cache_etag(fd, os.fstat(fd), hashlib.md5(body, usedforsecurity=False).hexdigest())


def _cache_etag(fd: int, st: os.stat_result, digest: str) -> None:
    # Without xattrs (some container filesystems, read-only files) head()/list() hash instead.
    with contextlib.suppress(OSError):
        os.setxattr(fd, ETAG_XATTR, f"{digest}:{st.st_size}:{st.st_mtime_ns}".encode())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _put(path: Path, body: bytes, durable: bool) -> None:
    temp = _write_temp(path.parent, body, durable)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def _put_if_absent(path: Path, body: bytes, durable: bool) -> bool:
    temp = _write_temp(path.parent, body, durable)
    try:
        # link(2) never replaces an existing name: the one atomic create-if-absent that also
        # publishes a complete file. rename would overwrite, O_EXCL would expose a partial one.
        os.link(temp, path)
    except FileExistsError:
        if path.is_dir():
            raise
        return False
    finally:
        temp.unlink(missing_ok=True)
    if durable:
        _fsync_dir(path.parent)
    return True


def _etag(fd: int, st: os.stat_result) -> str:
    if hasattr(os, "getxattr"):
        try:
            digest, size, mtime_ns = os.getxattr(fd, ETAG_XATTR).decode().split(":")
            if int(size) == st.st_size and int(mtime_ns) == st.st_mtime_ns:
                return digest
        except (OSError, ValueError):
            pass
    md5 = hashlib.md5(usedforsecurity=False)
    while chunk := os.read(fd, _HASH_CHUNK):
        md5.update(chunk)
    # Remember it for files other tools wrote. If the file changes while being hashed, its mtime
    # moves on and this value is ignored next time, so a stale digest is never trusted.
    if hasattr(os, "setxattr"):
        _cache_etag(fd, st, md5.hexdigest())
    return md5.hexdigest()


def _info(key: str, path: Path) -> ObjectInfo:
    fd = _open_regular(path)
    try:
        st = os.fstat(fd)
        modified = dt.datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=dt.UTC)
        return ObjectInfo(key=key, size=st.st_size, etag=_etag(fd, st), last_modified=modified)
    finally:
        os.close(fd)


def _list(root: Path, prefix: str) -> list[ObjectInfo]:
    # Start at the deepest directory the prefix names; the last, partial segment filters names.
    dir_part, _, name_part = prefix.rpartition("/")
    base = root
    if dir_part:
        try:
            base = root.joinpath(*key_segments(dir_part))
        except InvalidObjectKey:
            return []  # no valid key lies under an invalid prefix
    keys: list[tuple[str, Path]] = []
    pending = [(base, f"{dir_part}/" if dir_part else "", name_part)]
    while pending:
        directory, key_base, name_filter = pending.pop()
        try:
            entries = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                name = entry.name
                if not name.startswith(name_filter) or name.startswith(TEMP_PREFIX):
                    continue
                if "\\" in name:
                    continue  # not addressable as a key
                if entry.is_dir(follow_symlinks=False):
                    pending.append((Path(entry.path), f"{key_base}{name}/", ""))
                elif entry.is_file():
                    keys.append((key_base + name, Path(entry.path)))
    # Full-key order (as S3 lists), not per-directory order: 'a.txt' < 'a/b' since '.' < '/'.
    keys.sort()
    infos = []
    for key, path in keys:
        try:
            infos.append(_info(key, path))
        except _NOT_FOUND:
            continue  # deleted while listing
    return infos


def _delete(root: Path, path: Path) -> None:
    try:
        os.unlink(path)
    except (*_NOT_FOUND, PermissionError):
        if path.is_dir() or not path.exists():
            return  # no object by that name (a "directory" of other keys is not an object)
        raise
    parent = path.parent
    while parent != root and root in parent.parents:
        try:
            os.rmdir(parent)
        except OSError:
            break  # not empty (or already gone): stop pruning
        parent = parent.parent


def _remove_temp_files(root: Path, cutoff: float, dead_writers: bool) -> int:
    removed = 0
    for directory, _, files in os.walk(root):
        for name in files:
            if name.startswith(TEMP_PREFIX):
                path = Path(directory, name)
                with contextlib.suppress(FileNotFoundError):
                    if (dead_writers and _writer_died(name)) or path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
    return removed


@functools.cache
def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _writer_died(name: str) -> bool:
    """True for a temp file written on this host by a process that no longer runs."""
    match = _TEMP_NAME.match(name)
    if match is None or match[1] != _host_tag():
        return False  # another host's, or an older name: only its age tells
    pid = int(match[2])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, another user's
        return False
    return False  # alive (or its pid reused: then its age decides)
