"""Record-source URLs and settings: checked without connecting, redacted, wired to adapters."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from etl_core.adapters import http_record_source, pg_record_source
from etl_core.adapters.bronze_record_source import BronzeRecordSource
from etl_core.adapters.every_source import every_source
from etl_core.adapters.http_record_source import CursorPaging, NextLinkPaging, PageNumberPaging
from etl_core.adapters.record_sources import (
    ColumnRecordSource,
    RecordSourceSettings,
    SourceOptions,
    _http_config,
    _pg_table,
    add_source_arguments,
    check_source,
    open_record_source,
)
from etl_core.errors import ConfigError, ExitCode
from etl_core.raw_records import RAW_KEY
from etl_core.settings import add_common_arguments, load_settings
from etl_core.testing.fakes import FakeRecordSource

PG = "postgresql://etl:s3cret@db.internal:5432/records"


def _settings(argv: list[str], env: dict[str, str] | None = None) -> RecordSourceSettings:
    parser = argparse.ArgumentParser()
    add_source_arguments(parser, batch_help="")
    add_common_arguments(parser, agency_required=False)
    args = parser.parse_args(argv)
    return load_settings(
        RecordSourceSettings, job="test", flags=vars(args), env=env or {}, config_path=None
    )


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (PG, "postgresql"),
        ("https://api.example.com/v1/records", "http"),
        ("s3://bucket/lake", "store"),
        ("file:///data/lake", "store"),
        ("./lake", "store"),
    ],
)
def test_the_scheme_picks_the_kind_of_source(url: str, kind: str) -> None:
    assert check_source(url, SourceOptions(table="records"), sources=every_source()) == kind


def test_a_postgresql_source_needs_a_table_and_the_message_hides_the_password() -> None:
    with pytest.raises(ConfigError, match="needs a table") as caught:
        check_source(PG, SourceOptions(), sources=every_source())

    assert "s3cret" not in str(caught.value)
    assert "etl:***@db.internal" in str(caught.value)
    assert caught.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (SourceOptions(table="records; drop table x"), "not a plain SQL identifier"),
        (SourceOptions(table="records", key_column='id"'), "not a plain SQL identifier"),
        (SourceOptions(table="records", record_column="a b"), "not a plain SQL identifier"),
    ],
)
def test_hostile_names_are_configuration_errors(options: SourceOptions, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        check_source(PG, options, sources=every_source())


def test_the_schema_comes_from_the_table_name_or_the_url() -> None:
    assert _pg_table(PG, SourceOptions(table="raw.events"), pg_record_source).schema == "raw"
    assert (
        _pg_table(PG + "?schema=raw", SourceOptions(table="events"), pg_record_source).schema
        == "raw"
    )
    assert _pg_table(PG, SourceOptions(table="events"), pg_record_source).schema == "public"
    with pytest.raises(ConfigError, match="names schema 'a' but the URL says schema='b'"):
        _pg_table(PG + "?schema=b", SourceOptions(table="a.events"), pg_record_source)


def test_a_record_column_is_the_only_column_read() -> None:
    table = _pg_table(PG, SourceOptions(table="events", record_column="doc"), pg_record_source)

    assert table.columns == ("doc",)


@pytest.mark.parametrize(
    ("paging", "expected"),
    [
        ("cursor", CursorPaging()),
        ("next", NextLinkPaging()),
        ("link", NextLinkPaging(next_path=None)),
        ("page", PageNumberPaging(size=25)),
    ],
)
def test_paging_styles(paging: str, expected: Any) -> None:
    config = _http_config(
        "https://api.example.com/r", SourceOptions(paging=paging, page_size=25), http_record_source
    )

    assert config.paging == expected
    assert config.agency_param == "agency_id"


def test_the_apis_own_names_replace_the_defaults() -> None:
    settings = _settings(
        ["--source", "https://api.example.com/r", "--page-param", "after", "--next-path",
         "meta.next", "--agency-param", "org", "--records-path", "results"]
    )  # fmt: skip

    config = _http_config(settings.source_url or "", settings.source_options(), http_record_source)

    assert config.paging == CursorPaging(param="after", next_path="meta.next")
    assert (config.agency_param, config.records_path) == ("org", "results")
    paged = _http_config(
        "https://a/r", SourceOptions(paging="page", page_param="p", page_size=9), http_record_source
    )
    assert paged.paging == PageNumberPaging(param="p", size=9)
    following = _http_config(
        "https://a/r", SourceOptions(paging="next", next_path="links.next"), http_record_source
    )
    assert following.paging == NextLinkPaging(next_path="links.next")


def test_an_agency_placeholder_in_the_url_replaces_the_query_parameter() -> None:
    config = _http_config(
        "https://api.example.com/agencies/{agency_id}/r", SourceOptions(), http_record_source
    )

    assert config.agency_param is None


def test_a_credential_pasted_as_auth_env_is_refused_without_being_shown() -> None:
    options = SourceOptions(auth_env="Bearer abc.def-123")

    with pytest.raises(ConfigError) as caught:
        check_source("https://api.example.com/r", options, sources=every_source())

    assert "NAME of an environment variable" in str(caught.value)
    assert "abc.def" not in str(caught.value)


def test_a_missing_credentials_variable_is_reported_before_connecting() -> None:
    options = SourceOptions(auth_env="API_TOKEN")
    url = "https://api.example.com/r"

    assert check_source(url, options) == "http"  # without env: not checked
    assert check_source(url, options, {"API_TOKEN": "t"}) == "http"
    with pytest.raises(ConfigError, match="API_TOKEN .* is not set"):
        check_source(url, options, {})


def test_settings_take_flags_env_and_report_problems_by_flag() -> None:
    settings = _settings(
        ["--source", "https://api.example.com/r", "--paging", "page", "--records-path", "items"],
        env={"ETL_AUTH_ENV": "API_TOKEN", "ETL_PAGE_SIZE": "50"},
    )

    options = settings.source_options()
    assert (options.paging, options.records_path, options.auth_env) == (
        "page",
        "items",
        "API_TOKEN",
    )
    assert options.page_size == 50
    with pytest.raises(ConfigError, match="command line @ --source-url: .*needs a table"):
        _settings(["--source", PG])
    with pytest.raises(ConfigError, match="environment @ ETL_PAGING: must be one of cursor"):
        _settings([], env={"ETL_PAGING": "offset"})
    with pytest.raises(ConfigError, match="command line @ --batch-size: must be >= 1"):
        _settings(["--batch-size", "0"])
    with pytest.raises(ConfigError, match="invalid record source URL 'ftp://x'"):
        _settings(["--source", "ftp://x"])


async def test_a_store_url_opens_a_bronze_source_that_never_creates_the_directory(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "lake"

    async with open_record_source(f"file://{missing}", every_source()) as source:
        assert isinstance(source, BronzeRecordSource)
        assert [batch async for batch in source.batches(1)] == []
    assert not missing.exists()


async def test_a_record_column_yields_objects_as_records_and_anything_else_as_raw_lines() -> None:
    rows: list[dict[str, Any]] = [
        {"doc": {"record_id": "a"}},
        {"doc": '{"record_id": "b"'},
        {"doc": [1]},
        {"doc": None},
    ]
    source = ColumnRecordSource(FakeRecordSource(rows, batch_size=3), "doc")

    batches = [batch async for batch in source.batches(1)]

    assert [b.checkpoint for b in batches] == ["3", "4"]
    records = [r for b in batches for r in b.records]
    assert records == [
        {"record_id": "a"},
        {RAW_KEY: '{"record_id": "b"'},
        {RAW_KEY: "[1]"},
        {RAW_KEY: "null"},
    ]
