"""Deterministic layer tarballs: fixed order, owner, mtime and modes; equal inputs, equal bytes."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

# 1980-01-01T00:00:00Z: the oldest time a zip can hold, so nothing that zips files from the
# image trips over the epoch; overridable through SOURCE_DATE_EPOCH.
DEFAULT_EPOCH = 315532800
_CHUNK = 1 << 20

Kind = Literal["file", "dir", "symlink"]


@dataclass(frozen=True)
class Entry:
    """One path in a layer: a regular file (from a host path or bytes), a directory or a symlink."""

    path: str  # absolute path inside the image, e.g. "/usr/bin/python3.11"
    kind: Kind
    mode: int = 0o644
    source: Path | None = None  # host file to copy (kind == "file")
    data: bytes | None = None  # inline content (kind == "file")
    target: str = ""  # link target (kind == "symlink")

    @property
    def name(self) -> str:
        """The tar member name: relative, no leading slash."""
        return str(PurePosixPath(self.path).relative_to("/"))


def file_entry(path: str, source: Path) -> Entry:
    """A regular file copied from the host; only the executable bit of its mode is kept."""
    executable = os.stat(source).st_mode & 0o111
    return Entry(path=path, kind="file", mode=0o755 if executable else 0o644, source=source)


def data_entry(path: str, data: bytes, mode: int = 0o644) -> Entry:
    """A regular file with inline content."""
    return Entry(path=path, kind="file", mode=mode, data=data)


def dir_entry(path: str, mode: int = 0o755) -> Entry:
    """A directory (parents are added automatically by write_layer)."""
    return Entry(path=path, kind="dir", mode=mode)


def symlink_entry(path: str, target: str) -> Entry:
    """A symbolic link."""
    return Entry(path=path, kind="symlink", mode=0o777, target=target)


def tree_entries(source: Path, dest: str, *, exclude: frozenset[str] = frozenset()) -> list[Entry]:
    """Entries for a host tree (or single file) copied to dest, skipping names in exclude."""
    if not source.is_dir():
        return [file_entry(dest, source)]
    entries = [dir_entry(dest)]
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in exclude)
        rel = Path(root).relative_to(source)
        for name in sorted([*dirs, *files]):
            if name in exclude:
                continue
            host = Path(root) / name
            inner = str(PurePosixPath(dest) / PurePosixPath(*rel.parts, name))
            if host.is_symlink():
                entries.append(symlink_entry(inner, os.readlink(host)))
            elif host.is_dir():
                entries.append(dir_entry(inner))
            else:
                entries.append(file_entry(inner, host))
    return entries


def _with_parents(entries: Iterable[Entry]) -> list[Entry]:
    """Entries sorted by path, every missing parent directory added, duplicates rejected."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        previous = by_path.get(entry.path)
        if previous is not None and previous != entry:
            raise ValueError(f"{entry.path}: added twice with different content")
        by_path[entry.path] = entry
    for path in list(by_path):
        for parent in PurePosixPath(path).parents:
            if str(parent) != "/" and str(parent) not in by_path:
                by_path[str(parent)] = dir_entry(str(parent))
    return [by_path[p] for p in sorted(by_path, key=lambda p: PurePosixPath(p).parts)]


def _tarinfo(entry: Entry, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.name)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = entry.mode
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.target
    else:
        info.type = tarfile.REGTYPE
        info.size = len(entry.data) if entry.data is not None else os.stat(_source(entry)).st_size
    return info


def _source(entry: Entry) -> Path:
    if entry.source is None:
        raise ValueError(f"{entry.path}: a file entry needs a source or data")
    return entry.source


def write_layer(entries: Iterable[Entry], out: BinaryIO, *, mtime: int = DEFAULT_EPOCH) -> None:
    """Write an uncompressed tar of entries (PAX format, root-owned, fixed mtime, sorted)."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in _with_parents(entries):
            info = _tarinfo(entry, mtime)
            if entry.kind != "file":
                tar.addfile(info)
            elif entry.data is not None:
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                with open(_source(entry), "rb") as body:
                    tar.addfile(info, body)


@dataclass(frozen=True)
class Blob:
    """A content-addressed file: sha256 hex digest and size in bytes."""

    path: Path
    sha256: str
    size: int

    @property
    def digest(self) -> str:
        """OCI digest string, 'sha256:<hex>'."""
        return f"sha256:{self.sha256}"


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def hash_file(path: Path) -> Blob:
    """sha256 and size of a file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        for chunk in _chunks(stream):
            digest.update(chunk)
            size += len(chunk)
    return Blob(path=path, sha256=digest.hexdigest(), size=size)


def gzip_file(source: Path, dest: Path, *, level: int = 6) -> Blob:
    """Gzip source into dest with no name and mtime 0 in the header: reproducible output."""
    with (
        open(source, "rb") as raw,
        open(dest, "wb") as out,
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=level) as gz,
    ):
        for chunk in _chunks(raw):
            gz.write(chunk)
    return hash_file(dest)
