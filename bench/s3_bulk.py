"""Bulk get/put of N objects through S3ObjectStore (moto on loopback) vs LocalObjectStore.

Run: PYTHONPATH=src/python python bench/s3_bulk.py [--objects 200] [--size 16384]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
import uuid

from etl_core.adapters.local_object_store import open_local_object_store
from etl_core.adapters.s3_object_store import S3ObjectStore, open_s3_object_store
from etl_core.ports import ObjectStore


async def _put_all(store: ObjectStore, concurrency: int, bodies: dict[str, bytes]) -> None:
    if isinstance(store, S3ObjectStore):
        await store.put_many(bodies)  # bounded by the adapter's own max_concurrency
        return
    slots = asyncio.Semaphore(concurrency)  # the local store has no bulk helper: same bound here

    async def put(key: str, body: bytes) -> None:
        async with slots:
            await store.put(key, body)

    await asyncio.gather(*(put(key, body) for key, body in bodies.items()))


async def _get_all(store: ObjectStore, concurrency: int, keys: list[str]) -> None:
    if isinstance(store, S3ObjectStore):
        await store.get_many(keys)
        return
    slots = asyncio.Semaphore(concurrency)

    async def get(key: str) -> None:
        async with slots:
            await store.get(key)

    await asyncio.gather(*(get(key) for key in keys))


async def _measure(
    store: ObjectStore, concurrency: int, bodies: dict[str, bytes]
) -> tuple[float, float]:
    """Seconds to put every body, then to get every key back, `concurrency` at a time."""
    started = time.perf_counter()
    await _put_all(store, concurrency, bodies)
    put_s = time.perf_counter() - started
    started = time.perf_counter()
    await _get_all(store, concurrency, list(bodies))
    return put_s, time.perf_counter() - started


async def _run(
    objects: int, size: int, endpoint: str, bucket: str
) -> list[tuple[str, int, float, float]]:
    rows = []
    for concurrency in (1, 16):
        run = uuid.uuid4().hex
        bodies = {f"bench/{run}/part-{i:04d}": os.urandom(size) for i in range(objects)}
        with tempfile.TemporaryDirectory() as root:
            async with open_local_object_store(root) as local:
                rows.append(
                    ("local directory", concurrency, *await _measure(local, concurrency, bodies))
                )
        async with open_s3_object_store(
            bucket, max_concurrency=concurrency, endpoint_url=endpoint
        ) as s3:
            rows.append(
                ("s3 (moto, loopback)", concurrency, *await _measure(s3, concurrency, bodies))
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--size", type=int, default=16 * 1024, help="bytes per object")
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    # Fake credentials for the loopback endpoint; nothing here can reach a real account.
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        rows = asyncio.run(_run(args.objects, args.size, endpoint, "bench"))
    finally:
        server.stop()

    print(f"{args.objects} objects x {args.size} bytes")
    print(f"{'store':<22}{'concurrency':>12}{'put s':>9}{'get s':>9}{'put/s':>9}{'get/s':>9}")
    for name, concurrency, put_s, get_s in rows:
        print(
            f"{name:<22}{concurrency:>12}{put_s:>9.2f}{get_s:>9.2f}"
            f"{args.objects / put_s:>9.0f}{args.objects / get_s:>9.0f}"
        )


if __name__ == "__main__":
    main()
