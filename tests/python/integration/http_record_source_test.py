"""HttpRecordSource against a real aiohttp server on loopback: paging styles, faults, resume."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
from etl_core.adapters.backoff import Backoff
from etl_core.adapters.http_record_source import (
    CursorPaging,
    HttpRecordSource,
    HttpSourceConfig,
    NextLinkPaging,
    PageNumberPaging,
    open_http_record_source,
)
from etl_core.errors import ConfigError, ExitCode, SourceError, TemporaryFailure
from etl_core.testing.record_source_contract import RecordSourceContract, SeededSource

from integration.http_support import TOKEN, ApiServer, Fault

AGENCY = 7
RECORDS: dict[int, list[dict[str, Any]]] = {
    AGENCY: [{"id": i, "name": f"call {i}", "tags": ["x"] if i % 2 else []} for i in range(23)],
    8: [{"id": 100 + i} for i in range(4)],
}


@attrs.define
class RecordingSleep:
    """Backoff's sleep, recorded instead of slept: Retry-After is asserted without waiting."""

    calls: list[float] = attrs.Factory(list)

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture()
async def api() -> AsyncIterator[ApiServer]:
    server = ApiServer(records=RECORDS)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture()
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture()
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ETL_TEST_API_TOKEN", TOKEN)
    return "ETL_TEST_API_TOKEN"


def cursor_config(api: ApiServer, token: str) -> HttpSourceConfig:
    return HttpSourceConfig(
        url=f"{api.url}/agencies/{{agency_id}}/cursor", paging=CursorPaging(),
        agency_param=None, auth_env=token,
    )  # fmt: skip


STYLES: dict[str, Callable[[ApiServer, str], HttpSourceConfig]] = {
    "cursor": cursor_config,
    "next-link": lambda api, token: HttpSourceConfig(
        url=f"{api.url}/next", paging=NextLinkPaging("links.next"), records_path="result.items",
        auth_env=token,
    ),
    "link-header": lambda api, token: HttpSourceConfig(
        url=f"{api.url}/link", paging=NextLinkPaging(None), records_path="", auth_env=token
    ),
    "page-number": lambda api, token: HttpSourceConfig(
        url=f"{api.url}/pages", paging=PageNumberPaging(size=5), auth_env=token
    ),
}  # fmt: skip


class TestHttpRecordSourceContract(RecordSourceContract):
    @pytest.fixture(params=sorted(STYLES))
    async def seeded(self, request, api, token, sleep) -> AsyncIterator[SeededSource]:
        config = STYLES[request.param](api, token)
        async with open_http_record_source(config, backoff=Backoff(sleep=sleep)) as source:
            yield SeededSource(source, AGENCY, RECORDS[AGENCY])


@pytest.fixture()
async def source(api, token, sleep) -> AsyncIterator[HttpRecordSource]:
    backoff = Backoff(attempts=4, sleep=sleep)
    async with open_http_record_source(cursor_config(api, token), backoff=backoff) as opened:
        yield opened


async def read_all(source: HttpRecordSource, checkpoint: str | None = None) -> list[dict[str, Any]]:
    return [dict(r) async for batch in source.batches(AGENCY, checkpoint) for r in batch.records]


async def test_checkpoints_name_where_the_next_page_is_and_the_tail_after_the_last(source):
    checkpoints = [batch.checkpoint async for batch in source.batches(AGENCY)]

    assert checkpoints == [
        "cursor:c5",
        "cursor:c10",
        "cursor:c15",
        "cursor:c20",
        "tail:3:cursor:c20",
    ]


@pytest.mark.parametrize("style", sorted(STYLES))
async def test_records_appended_upstream_are_read_from_the_last_checkpoint_and_nothing_twice(
    api, token, sleep, style
):
    config = STYLES[style](api, token)
    original = api.records[AGENCY]
    async with open_http_record_source(config, backoff=Backoff(sleep=sleep)) as source:
        *_, last = [batch async for batch in source.batches(AGENCY)]
        requests_before = len(api.seen)
        assert await read_all(source, last.checkpoint) == []  # nothing new: one request, no data
        assert len(api.seen) == requests_before + 1

        appended = [{"id": 1000 + i} for i in range(8)]
        api.records[AGENCY] = [*original, *appended]
        try:
            assert await read_all(source, last.checkpoint) == appended
        finally:
            api.records[AGENCY] = original


async def test_a_since_filter_is_sent_with_every_page(api, token):
    updated: list[dict[str, Any]] = [
        {"id": i, "updated_at": f"2024-05-0{1 + i % 3}T00:00:00Z"} for i in range(12)
    ]
    original, api.records[AGENCY] = api.records[AGENCY], updated
    config = attrs.evolve(
        cursor_config(api, token), since_param="updated_since", since="2024-05-02T00:00:00Z"
    )
    try:
        async with open_http_record_source(config) as source:
            got = await read_all(source)
    finally:
        api.records[AGENCY] = original

    assert got == [r for r in updated if r["updated_at"] >= "2024-05-02T00:00:00Z"]
    assert all("updated_since=2024-05-02T00:00:00Z" in seen for seen in api.seen)
    assert len(api.seen) == 2  # 8 records, 5 a page


@pytest.mark.parametrize("bad", ["tail:x:cursor:c5", "tail:3", "tail:3:page:2"])
async def test_a_malformed_tail_checkpoint_is_a_source_error(source, bad):
    with pytest.raises(SourceError, match="does not fit"):
        await read_all(source, bad)


@pytest.mark.parametrize("bad", ["page:2", "cursor:", "next:http://x/"])
async def test_checkpoint_of_another_style_is_a_source_error(source, bad):
    with pytest.raises(SourceError, match="does not fit"):
        await read_all(source, bad)


# -- faults and retries --------------------------------------------------------------------------


async def test_429_is_retried_after_the_seconds_in_retry_after(source, api, sleep):
    api.inject(Fault("status", 429, {"Retry-After": "7"}))

    assert await read_all(source) == RECORDS[AGENCY]
    assert len(api.seen) == 6  # 5 pages + the refused request
    assert sleep.calls[0] >= 7


async def test_429_is_retried_after_an_http_date_in_retry_after(source, api, sleep):
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    api.inject(
        Fault("status", 429, {"Retry-After": email.utils.format_datetime(when, usegmt=True)})
    )

    assert await read_all(source) == RECORDS[AGENCY]
    assert 25 <= sleep.calls[0] <= 31


async def test_retry_after_beyond_the_configured_limit_fails_fast_as_temporary(source, api, sleep):
    api.inject(Fault("status", 429, {"Retry-After": "3600"}))

    with pytest.raises(TemporaryFailure, match="3600"):
        await read_all(source)
    assert sleep.calls == []


async def test_server_errors_are_retried_with_growing_jittered_pauses(source, api, sleep):
    api.inject(Fault("status", 500), Fault("status", 503), Fault("status", 502))

    assert await read_all(source) == RECORDS[AGENCY]
    assert len(sleep.calls) == 3
    assert all(0 <= pause <= Backoff().cap_s for pause in sleep.calls)


async def test_dropped_connections_are_retried(source, api):
    # aiohttp resends an idempotent GET once by itself after a disconnect; the later faults are
    # beyond that and need the adapter's own retries (see the control below).
    api.inject(Fault("drop"), Fault("drop"), Fault("truncate"))

    assert await read_all(source) == RECORDS[AGENCY]


async def test_without_retries_the_same_faults_fail(api, token):
    api.inject(Fault("drop"), Fault("drop"))
    config = cursor_config(api, token)
    async with open_http_record_source(config, backoff=Backoff(attempts=1)) as source:
        with pytest.raises(TemporaryFailure):
            await read_all(source)


async def test_faults_that_outlast_the_retries_are_a_temporary_failure(source, api, sleep):
    api.inject(*[Fault("status", 503)] * 4)

    with pytest.raises(TemporaryFailure, match="after 4 attempts") as caught:
        await read_all(source)
    assert caught.value.exit_code == ExitCode.TEMPORARY
    assert len(api.seen) == 4


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_client_errors_are_not_retried(source, api, status):
    api.inject(Fault("status", status))

    with pytest.raises(SourceError, match=f"HTTP {status}") as caught:
        await read_all(source)
    assert not isinstance(caught.value, TemporaryFailure)
    assert len(api.seen) == 1


# -- resume --------------------------------------------------------------------------------------


async def test_interrupted_ingestion_resumes_where_it_stopped(source, api):
    done: list[dict[str, Any]] = []
    checkpoint = None

    async def ingest() -> None:
        nonlocal checkpoint
        async for batch in source.batches(AGENCY):
            done.extend(dict(r) for r in batch.records)
            checkpoint = batch.checkpoint
            if len(done) == 10:
                api.inject(*[Fault("status", 500)] * 4)  # the API goes down for this run

    with pytest.raises(TemporaryFailure):
        await ingest()
    requests_before = len(api.seen)

    rest = await read_all(source, checkpoint)

    assert done + rest == RECORDS[AGENCY]
    assert len(api.seen) - requests_before == 3  # pages 3..5 only: nothing read twice


# -- credentials ---------------------------------------------------------------------------------


async def test_auth_header_comes_from_the_named_environment_variable(api, token):
    config = attrs.evolve(cursor_config(api, token), auth_env=None)
    async with open_http_record_source(config) as anonymous:
        with pytest.raises(SourceError, match="HTTP 401"):
            await read_all(anonymous)


async def test_unset_auth_variable_is_a_config_error_naming_the_variable(api, monkeypatch):
    monkeypatch.delenv("ETL_TEST_MISSING_TOKEN", raising=False)
    config = attrs.evolve(cursor_config(api, "x"), auth_env="ETL_TEST_MISSING_TOKEN")
    with pytest.raises(ConfigError, match="ETL_TEST_MISSING_TOKEN"):
        async with open_http_record_source(config):
            pass


async def test_next_link_to_another_origin_is_refused(api, token):
    api.foreign_next = "http://127.0.0.2:9/steal"
    async with open_http_record_source(STYLES["next-link"](api, token)) as source:
        with pytest.raises(SourceError, match="refused"):
            await read_all(source)
    assert len(api.seen) == 1


async def test_repr_never_shows_the_credential(source):
    assert TOKEN not in repr(source)
    assert "t0k3n" not in repr(source)
