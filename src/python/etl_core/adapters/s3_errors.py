"""How S3ObjectStore sorts botocore/aiohttp failures: retry (then exit 75), or fail now."""

from __future__ import annotations

import asyncio

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    SSLError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

# Worth retrying, and when retries run out the run as a whole is worth retrying later (exit 75).
TEMPORARY_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottledException",
        "ServiceUnavailable",
        # a concurrent conditional write on the same key: AWS says "retry the request"
        "ConditionalRequestConflict",
    }
)
TEMPORARY_STATUSES = frozenset({429, 503})
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# Everything a request may raise that is the driver's or the network's, not a bug of ours.
DRIVER_ERRORS = (ClientError, BotoCoreError, aiohttp.ClientError, OSError, asyncio.TimeoutError)


class Kind:
    """What to do about a failure."""

    TEMPORARY = "temporary"  # throttling or contention: retried, then TemporaryFailure
    TRANSIENT = "transient"  # 5xx, connection trouble, timeouts: retried, then TemporaryFailure
    FATAL = "fatal"  # everything else (4xx): never retried, ObjectStoreError


def code(exc: ClientError) -> str:
    """The S3 error code ("SlowDown", "NoSuchKey"; for HEAD the status as text)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def status(exc: ClientError) -> int:
    """The HTTP status of a ClientError (0 if unknown)."""
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def classify(exc: BaseException) -> str:
    """One of the Kind values."""
    if isinstance(exc, ClientError):
        if code(exc) in TEMPORARY_CODES or status(exc) in TEMPORARY_STATUSES:
            return Kind.TEMPORARY
        return Kind.TRANSIENT if status(exc) >= 500 else Kind.FATAL
    if isinstance(exc, SSLError):  # a certificate problem does not heal by retrying
        return Kind.FATAL
    transient = (
        HTTPClientError,  # ConnectionClosedError, ReadTimeoutError, ResponseStreamingError
        BotoConnectionError,  # EndpointConnectionError, ConnectTimeoutError
        IncompleteReadError,
        aiohttp.ClientConnectionError,
        aiohttp.ClientPayloadError,
        ConnectionError,
        asyncio.TimeoutError,
    )
    return Kind.TRANSIENT if isinstance(exc, transient) else Kind.FATAL


def describe(exc: BaseException) -> str:
    """A one-line account of the failure for an error message (never credentials)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{code(exc)} (HTTP {status(exc)}): {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"
