"""The RecordSource contract of BronzeRecordSource over a real store: S3ObjectStore against moto's
S3 endpoint on loopback (the unit tests run it over the fake store)."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from etl_core.adapters.bronze_record_source import BronzeRecordSource
from etl_core.adapters.s3_object_store import open_s3_object_store
from etl_core.raw_records import SOURCE_KEY, raw_record
from etl_core.testing.record_source_contract import RecordSourceContract, SeededSource

AGENCY = 7
DAY1 = f"bronze/agency_id={AGENCY}/dt=2024-01-08/part-0.ndjson"
DAY2 = f"bronze/agency_id={AGENCY}/dt=2024-01-09/part-0.ndjson.gz"
BAD = b"not json \xff\xfe"  # not UTF-8 either: it must come back byte for byte, as a raw record


def _line(i: int) -> bytes:
    return b'{"record_id":"A007-%08d","agency_id":7}' % i


def _objects() -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """Two files of agency 7 (one gzip, one with a raw line), one of agency 8, a stray key; and
    the records the source must return for agency 7, in order."""
    first = [_line(i) for i in range(5)] + [BAD] + [_line(i) for i in range(5, 9)]
    second = [_line(i) for i in range(9, 17)]
    objects = {
        DAY1: b"\n".join(first) + b"\n",
        DAY2: gzip.compress(b"\n".join(second)),  # no final newline
        "bronze/agency_id=8/dt=2024-01-08/part-0.ndjson": b'{"record_id":"x"}\n',
        f"bronze/agency_id={AGENCY}/dt=2024-01-08/_manifest.json": b"{}",
    }
    expected: list[dict[str, Any]] = []
    for key, lines in ((DAY1, first), (DAY2, second)):
        for number, line in enumerate(lines, start=1):
            source = f"{key.removeprefix('bronze/')}:{number}"
            if line == BAD:
                expected.append(raw_record(line.decode("utf-8", "surrogateescape"), source))
            else:
                expected.append({**json.loads(line), SOURCE_KEY: source})
    return objects, expected


class TestBronzeRecordSourceOnS3Contract(RecordSourceContract):
    @pytest.fixture(params=[1 << 20, 7], ids=["whole-chunks", "7-byte-chunks"])
    async def seeded(
        self, request: pytest.FixtureRequest, moto_url: str, bucket: str
    ) -> AsyncIterator[SeededSource]:
        objects, expected = _objects()
        async with open_s3_object_store(bucket, "lake", endpoint_url=moto_url) as store:
            for key, body in objects.items():
                await store.put(key, body)
            source = BronzeRecordSource(store, 4, chunk_size=request.param)
            yield SeededSource(source, AGENCY, expected)
