"""Integration fixtures: moto's S3 server, a fault proxy, PostgreSQL with a schema per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import boto3
import pytest
from moto.server import ThreadedMotoServer

from integration.pg_support import postgres_dsn
from integration.s3_support import FaultProxy


@pytest.fixture(scope="session")
def _aws_env() -> Iterator[None]:
    """Fake credentials for moto; never the developer's own chain (files or profiles)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def moto_url(_aws_env: None) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a real HTTP endpoint), shared by the session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def s3(moto_url: str):  # a plain boto3 client for arranging and inspecting, never the adapter's
    return boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")


@pytest.fixture()
def bucket(s3) -> str:
    name = f"test-{uuid.uuid4().hex[:20]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture()
async def proxy(moto_url: str) -> AsyncIterator[FaultProxy]:
    """A fault-injecting reverse proxy in front of moto, for retry tests."""
    fault_proxy = FaultProxy(upstream=moto_url)
    await fault_proxy.start()
    yield fault_proxy
    await fault_proxy.stop()


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A reachable PostgreSQL; fails (never skips) with a clear message when there is none."""
    with postgres_dsn() as dsn:
        yield dsn


@pytest.fixture()
async def pg_schema(pg_dsn: str) -> AsyncIterator[str]:
    """A fresh schema for one test, dropped afterwards, so parallel runs never collide."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    connection = await asyncpg.connect(pg_dsn)
    try:
        await connection.execute(f'CREATE SCHEMA "{name}"')
        yield name
        await connection.execute(f'DROP SCHEMA "{name}" CASCADE')
    finally:
        await connection.close()
