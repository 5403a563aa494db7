"""moto's S3 server on loopback for the benchmark, and the bronze upload into it (untimed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from etl_core.adapters.s3_object_store import open_s3_object_store

# Fake credentials for the loopback endpoint; nothing here can reach a real account.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start moto on 127.0.0.1 (a thread of this process) and yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    os.environ.update(AWS_ENV)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(name, None)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def create_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)


def upload_tree(root: Path, endpoint: str, bucket: str) -> int:
    """Put every file under root into bucket under its relative path; the bytes uploaded."""
    files = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
    files = {key: path for key, path in files.items() if not key.startswith(".")}

    async def upload() -> None:
        async with open_s3_object_store(bucket, endpoint_url=endpoint) as store:
            keys = list(files)
            for start in range(0, len(keys), 64):  # 64 bodies in memory at a time
                batch = keys[start : start + 64]
                await store.put_many({key: files[key].read_bytes() for key in batch})

    asyncio.run(upload())
    return sum(path.stat().st_size for path in files.values())
