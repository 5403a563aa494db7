from __future__ import annotations

import argparse

import pytest

from etl_core.errors import ConfigError
from etl_core.source_settings import (
    RecordSourceSettings,
    SourceOptions,
    add_source_arguments,
    check_http_options,
    check_source_options,
    pg_schema_table,
)

PG = "postgresql://etl:secret@db.example:5432/app"


def _problems(**fields: object) -> dict[str, str]:
    return dict(RecordSourceSettings(**fields).problems())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "table", "expected"),
    [
        (PG, "events", ("public", "events")),
        (PG, "raw.events", ("raw", "events")),
        (f"{PG}?schema=raw", "events", ("raw", "events")),
        (f"{PG}?schema=raw", "raw.events", ("raw", "events")),
        (f"{PG}?schema=public", "other.events", ("other", "events")),
    ],
)
def test_a_postgresql_table_is_in_its_own_schema_else_the_urls_else_public(
    url: str, table: str, expected: tuple[str, str]
) -> None:
    assert pg_schema_table(url, SourceOptions(table=table)) == expected


def test_a_table_schema_contradicting_the_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="names schema 'other' but the URL says schema='raw'"):
        pg_schema_table(f"{PG}?schema=raw", SourceOptions(table="other.events"))


def test_a_postgresql_source_needs_a_table_and_the_error_hides_the_password() -> None:
    with pytest.raises(ConfigError, match="needs a table") as raised:
        check_source_options(PG, SourceOptions())
    assert "secret" not in str(raised.value)


def test_the_source_kind_comes_from_the_url() -> None:
    assert check_source_options(PG, SourceOptions(table="t")) == "postgresql"
    assert check_source_options("https://api.example/v1/records", SourceOptions()) == "http"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (SourceOptions(paging="offset"), "paging: must be one of cursor, next, link, page"),
        (SourceOptions(page_size=0), "page size: must be >= 1, got 0"),
        (SourceOptions(batch_size=-1), "batch size: must be >= 1, got -1"),
        (SourceOptions(auth_env="Bearer abc.def"), "auth env: must be the NAME"),
    ],
)
def test_http_options_are_checked_without_an_adapter(options: SourceOptions, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        check_http_options(options)
    assert "abc.def" not in str(raised.value)  # a credential pasted by mistake is never echoed


def test_settings_report_each_problem_once_by_field() -> None:
    assert _problems(paging="offset", page_size=0) == {
        "paging": "must be one of cursor, next, link, page, got 'offset'",
        "page_size": "must be >= 1, got 0",
    }
    assert "source_url" in _problems(source_url=PG)  # no --source-table
    assert "source_url" not in _problems(source_url=PG, source_table="t")
    assert _problems() == {}


def test_settings_spell_the_options_field_by_field() -> None:
    settings = RecordSourceSettings(
        source_url="https://api.example/{agency_id}/records", source_table="s.t",
        source_key="k", source_agency_column="a", source_record_column="r", paging="page",
        records_path="items", auth_env="API_TOKEN", page_size=50, batch_size=10,
        page_param="p", next_path="links.next", agency_param="org",
    )  # fmt: skip
    assert settings.source_options() == SourceOptions(
        table="s.t", key_column="k", agency_column="a", record_column="r", paging="page",
        records_path="items", auth_env="API_TOKEN", page_size=50, batch_size=10,
        page_param="p", next_path="links.next", agency_param="org",
    )  # fmt: skip


def test_the_source_url_redacts_itself_when_shown() -> None:
    settings = RecordSourceSettings(source_url=PG, source_table="t")
    assert "secret" not in repr(settings)
    assert settings.source_url == PG  # the value itself is intact for the adapter


def test_unset_flags_stay_none_so_settings_keep_their_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_source_arguments(parser, batch_help="records per batch")
    args = vars(parser.parse_args([]))
    assert set(args.values()) == {None}
    given = parser.parse_args(["--source", PG, "--source-table", "t", "--page-size", "5"])
    assert (given.source_url, given.source_table, given.page_size) == (PG, "t", 5)
