"""LocalObjectStore beyond the shared contract: key safety, temp files, etags, processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from etl_core.adapters.local_object_store import (
    ETAG_XATTR,
    TEMP_PREFIX,
    InvalidObjectKey,
    LocalObjectStore,
    _write_temp,
    open_local_object_store,
)
from etl_core.errors import ObjectNotFound, ObjectStoreError
from etl_core.testing.ci import skip_unless_ci


@pytest.fixture()
async def store(tmp_path: Path) -> AsyncIterator[LocalObjectStore]:
    async with open_local_object_store(tmp_path / "root") as store:
        yield store


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


BAD_KEYS = [
    "", "/etc/passwd", "../outside", "a/../../outside", "a/..", "./a", "a/./b", "a//b", "a/",
    "a\\b", "nul\0byte", f"{TEMP_PREFIX}x", f"a/{TEMP_PREFIX}1/b",
]  # fmt: skip


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_keys_that_could_leave_the_root_are_rejected(
    store: LocalObjectStore, tmp_path: Path, key: str
) -> None:
    with pytest.raises(InvalidObjectKey, match="invalid object key"):
        await store.put(key, b"x")
    with pytest.raises(InvalidObjectKey):
        await store.put_if_absent(key, b"x")
    for read in (store.get, store.head, store.delete):
        with pytest.raises(InvalidObjectKey):
            await read(key)
    assert _files(tmp_path) == []


async def test_invalid_key_error_names_key_and_reason(store: LocalObjectStore) -> None:
    with pytest.raises(InvalidObjectKey) as error:
        await store.get("silver/../../etc/passwd")
    assert error.value.key == "silver/../../etc/passwd"
    assert "'..' segments are not allowed" in str(error.value)


async def test_list_with_an_escaping_prefix_finds_nothing(
    store: LocalObjectStore, tmp_path: Path
) -> None:
    (tmp_path / "secret").write_bytes(b"outside the root")
    await store.put("inside", b"x")
    assert [i.key async for i in store.list("../")] == []
    assert [i.key async for i in store.list("../secret")] == []
    assert [i.key async for i in store.list("a//")] == []


async def test_objects_are_plain_files_under_the_root(store: LocalObjectStore) -> None:
    await store.put("silver/agency_id=1/dt=2024-01-08/part-0.ndjson", b"{}\n")
    path = store.root / "silver" / "agency_id=1" / "dt=2024-01-08" / "part-0.ndjson"
    assert path.read_bytes() == b"{}\n"
    assert store.path_of("silver/agency_id=1/dt=2024-01-08/part-0.ndjson") == path


async def test_new_files_get_umask_permissions_not_0600(store: LocalObjectStore) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    await store.put("k", b"x")
    assert (store.root / "k").stat().st_mode & 0o777 == 0o666 & ~umask


async def test_list_ignores_in_flight_temp_files(store: LocalObjectStore) -> None:
    await store.put("p/done", b"x")
    (store.root / "p" / f"{TEMP_PREFIX}abc123").write_bytes(b"half writ")
    assert [i.key async for i in store.list()] == ["p/done"]


async def test_writes_leave_no_temp_files_behind(store: LocalObjectStore) -> None:
    await store.put("a/k", b"1")
    await store.put("a/k", b"2")
    assert await store.put_if_absent("a/k", b"3") is False
    assert await store.put_if_absent("a/j", b"4") is True
    assert _files(store.root) == ["a/j", "a/k"]


async def test_a_failed_write_leaves_no_temp_file(store: LocalObjectStore) -> None:
    await store.put("dir/child", b"x")
    with pytest.raises(ObjectStoreError, match="clashes"):
        await store.put("dir", b"a file where a directory is")
    with pytest.raises(ObjectStoreError, match="clashes"):
        await store.put_if_absent("dir", b"x")
    with pytest.raises(ObjectStoreError, match="clashes"):
        await store.put("dir/child/grandchild", b"x")
    assert _files(store.root) == ["dir/child"]


async def test_a_directory_is_not_an_object(store: LocalObjectStore) -> None:
    await store.put("dir/child", b"x")
    with pytest.raises(ObjectNotFound):
        await store.get("dir")
    with pytest.raises(ObjectNotFound):
        await store.head("dir")
    await store.delete("dir")
    await store.delete("dir/child/deeper")
    assert await store.get("dir/child") == b"x"


async def test_delete_prunes_directories_it_empties_but_not_the_root(
    store: LocalObjectStore,
) -> None:
    await store.put("a/b/c/k", b"x")
    await store.put("a/keep", b"y")
    await store.delete("a/b/c/k")
    assert sorted(p.name for p in (store.root / "a").iterdir()) == ["keep"]
    await store.delete("a/keep")
    assert store.root.is_dir()
    assert list(store.root.iterdir()) == []


async def test_etag_is_the_md5_of_the_content(store: LocalObjectStore) -> None:
    await store.put("k", b"hello")
    assert (await store.head("k")).etag == hashlib.md5(b"hello").hexdigest()


async def test_etag_of_a_file_written_by_another_tool_is_computed(
    store: LocalObjectStore,
) -> None:
    (store.root / "copied.ndjson").write_bytes(b"from cp")
    assert (await store.head("copied.ndjson")).etag == hashlib.md5(b"from cp").hexdigest()
    [listed] = [info async for info in store.list()]
    assert listed.etag == hashlib.md5(b"from cp").hexdigest()


@pytest.mark.skipif(not hasattr(os, "getxattr"), reason="needs Linux xattrs")
async def test_computed_etag_is_cached_for_the_next_listing(store: LocalObjectStore) -> None:
    path = store.root / "copied.ndjson"
    path.write_bytes(b"from cp")
    await store.head("copied.ndjson")
    try:
        cached = os.getxattr(path, ETAG_XATTR).decode()
    except OSError:
        skip_unless_ci("filesystem without user xattrs")
    st = path.stat()
    assert cached == f"{hashlib.md5(b'from cp').hexdigest()}:{st.st_size}:{st.st_mtime_ns}"


@pytest.mark.skipif(not hasattr(os, "getxattr"), reason="needs Linux xattrs")
async def test_cached_etag_is_ignored_once_the_file_was_edited_in_place(
    store: LocalObjectStore,
) -> None:
    await store.put("k", b"hello")
    path = store.root / "k"
    try:
        os.getxattr(path, ETAG_XATTR)
    except OSError:
        skip_unless_ci("filesystem without user xattrs")

    def append_in_place() -> None:  # keeps the xattr, changes size and mtime
        with path.open("ab") as file:
            file.write(b" world")

    await asyncio.to_thread(append_in_place)
    assert (await store.head("k")).etag == hashlib.md5(b"hello world").hexdigest()


async def test_readers_never_see_a_partial_body(store: LocalObjectStore) -> None:
    bodies = [bytes([i]) * 300_000 for i in range(20)]
    whole = set(bodies)
    await store.put("k", bodies[0])
    reads: list[tuple[int, bool]] = []  # (first byte, whether the body was one of those put)
    done = threading.Event()

    def read_until_done() -> None:
        path = store.root / "k"
        while not done.is_set():
            body = path.read_bytes()
            reads.append((body[0] if body else -1, body in whole))

    reader = asyncio.create_task(asyncio.to_thread(read_until_done))
    # Overwrite until the reader has read during the writes, again and again: the test proves
    # nothing unless reads and writes overlap, and how soon they do is up to the scheduler.
    puts = 0
    while len({first for first, _ in reads}) < 5 or puts < 2 * len(bodies):
        puts += 1
        await store.put("k", bodies[puts % len(bodies)])
        await asyncio.sleep(0)
    done.set()
    await reader
    partial = [first for first, ok in reads if not ok]
    assert partial == [], f"{len(partial)} of {len(reads)} reads saw a partial or mixed body"


async def test_remove_temp_files_removes_only_old_ones(store: LocalObjectStore) -> None:
    await store.put("p/k", b"x")
    old, fresh = store.root / "p" / f"{TEMP_PREFIX}old", store.root / f"{TEMP_PREFIX}new"
    old.write_bytes(b"crashed writer")
    fresh.write_bytes(b"in flight")
    an_hour_ago = (dt.datetime.now() - dt.timedelta(hours=1)).timestamp()
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert await store.remove_temp_files(older_than=dt.timedelta(minutes=10)) == 1
    assert _files(store.root) == [f"{TEMP_PREFIX}new", "p/k"]


def _temp_of_a_killed_writer(directory: Path) -> Path:
    """A temp file exactly as a write killed before its rename leaves it (SIGKILLed writer)."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from etl_core.adapters.local_object_store import _write_temp\n"
        "print(_write_temp(Path(sys.argv[1]), b'x' * 4096, True), flush=True)\n"
        "time.sleep(600)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(directory)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    ) as writer:
        assert writer.stdout is not None
        temp = Path(writer.stdout.readline().strip())
        writer.kill()
    return temp


async def test_temp_files_of_dead_writers_go_at_once_and_live_writers_keep_theirs(
    store: LocalObjectStore,
) -> None:
    await store.put("p/k", b"x")
    dead = _temp_of_a_killed_writer(store.root / "p")
    live = _write_temp(store.root / "p", b"in flight", durable=False)  # this process: alive
    unknown = store.root / f"{TEMP_PREFIX}0123456789abcdef"  # an older name: age only
    unknown.write_bytes(b"?")
    assert dead.name.startswith(TEMP_PREFIX)
    assert dead.exists()

    assert await store.remove_temp_files() == 1

    assert (dead.exists(), live.exists(), unknown.exists()) == (False, True, True)


async def test_opening_a_store_for_writing_sweeps_the_litter_of_killed_writes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    dead = _temp_of_a_killed_writer(root / "a" / "b")
    async with open_local_object_store(root):  # reading: nothing removed
        assert dead.exists()
    async with open_local_object_store(root, sweep=True) as store:
        assert not dead.exists()
        assert [i.key async for i in store.list()] == []


async def test_opener_creates_the_root_and_makes_it_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with open_local_object_store(".etl/store", durable=False) as store:
        assert store.root == tmp_path / ".etl" / "store"
        assert store.root.is_dir()
        assert not store.durable


async def test_opener_on_a_file_raises_object_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ObjectStoreError, match="cannot create object store root"):
        async with open_local_object_store(tmp_path / "file" / "store"):
            pass


def _put_if_absent_in_child(root: str, key: str, body: bytes, barrier: Any) -> None:
    async def race() -> bool:
        store = LocalObjectStore(root)
        barrier.wait(timeout=60)
        return await store.put_if_absent(key, body)

    raise SystemExit(0 if asyncio.run(race()) else 3)


def test_put_if_absent_has_one_winner_across_processes(tmp_path: Path) -> None:
    processes = 6
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    children = [
        context.Process(
            target=_put_if_absent_in_child,
            args=(str(tmp_path), "_manifests/p/0000000001.json", f"writer {i}".encode(), barrier),
        )
        for i in range(processes)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    codes = [child.exitcode for child in children]
    assert codes.count(0) == 1, f"exit codes {codes}: exactly one winner (0), losers exit 3"
    assert codes.count(3) == processes - 1, f"exit codes {codes}"
    winner = codes.index(0)
    assert (tmp_path / "_manifests/p/0000000001.json").read_bytes() == f"writer {winner}".encode()
