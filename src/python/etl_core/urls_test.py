"""Tests for URL parsing, validation and password redaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etl_core.errors import ConfigError
from etl_core.urls import (
    HistoryUrl,
    SecretUrl,
    SourceUrl,
    StoreUrl,
    parse_history_url,
    parse_source_url,
    parse_store_url,
    redact,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket/a/b/", StoreUrl(kind="s3", bucket="bucket", prefix="a/b")),
        ("s3://my.bucket-1", StoreUrl(kind="s3", bucket="my.bucket-1", prefix="")),
        ("file:///tmp/store", StoreUrl(kind="file", path=Path("/tmp/store"))),
        ("file://./.etl/store", StoreUrl(kind="file", path=Path(".etl/store"))),
        ("file:///tmp/with%20space", StoreUrl(kind="file", path=Path("/tmp/with space"))),
        ("./out", StoreUrl(kind="file", path=Path("out"))),
        ("out/bronze", StoreUrl(kind="file", path=Path("out/bronze"))),
        ("/abs/dir", StoreUrl(kind="file", path=Path("/abs/dir"))),
    ],
)
def test_store_urls(url: str, expected: StoreUrl) -> None:
    assert parse_store_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("s3://", "no bucket"),
        ("s3://Bad_Bucket/x", "not a valid S3 bucket name"),
        ("s3://b..x/p", "not a valid S3 bucket name"),
        ("s3://bucket/a//b", "empty path segment"),
        ("s3://bucket/p?versionId=1", "no query"),
        ("file://server/share", "cannot name a host"),
        ("ftp://host/x", "unsupported scheme 'ftp'"),
        ("", "empty"),
    ],
)
def test_bad_store_urls_name_the_url_and_the_problem(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        parse_store_url(url)
    assert str(info.value).startswith(f"invalid object store URL {url!r}")


def test_credentials_in_an_s3_url_are_refused_and_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        parse_store_url("s3://AKIA:topsecret@bucket/x")
    assert "topsecret" not in str(info.value)
    assert "AWS chain" in str(info.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "sqlite:///./.etl/history.sqlite3",
            HistoryUrl(kind="sqlite", path=Path(".etl/history.sqlite3")),
        ),
        ("sqlite:////var/etl/h.db", HistoryUrl(kind="sqlite", path=Path("/var/etl/h.db"))),
        (
            "postgres://etl:pw@db:5432/etl?schema=audit&sslmode=require",
            HistoryUrl(
                kind="postgresql",
                dsn="postgresql://etl:pw@db:5432/etl?sslmode=require",
                schema="audit",
            ),
        ),
        ("postgresql:///etl", HistoryUrl(kind="postgresql", dsn="postgresql:///etl")),
    ],
)
def test_history_urls(url: str, expected: HistoryUrl) -> None:
    assert parse_history_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sqlite://h.db", "expected sqlite:///relative/path"),
        ("sqlite:///", "no database file name"),
        ("history.db", "no scheme"),
        ("mysql://h/db", "scheme 'mysql'"),
        ("postgresql://u:pw@h:99999/db", "out of range"),
        ("postgresql://h/db?schema=a;drop", "not a plain SQL identifier"),
    ],
)
def test_bad_history_urls(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        parse_history_url(url)
    assert "invalid run history URL" in str(info.value)
    assert ":pw@" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://api.example/v1", "http"),
        ("postgres://h/db", "postgresql"),
        ("s3://bkt/bronze", "store"),
    ],
)
def test_source_urls(url: str, kind: str) -> None:
    assert parse_source_url(url).kind == kind


def test_source_store_url_carries_the_parsed_store() -> None:
    assert parse_source_url("file:///data") == SourceUrl(
        kind="store", url="file:///data", store=StoreUrl(kind="file", path=Path("/data"))
    )


@pytest.mark.parametrize("url", ["ftp://x/y", "https:///nohost"])
def test_bad_source_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="invalid record source URL"):
        parse_source_url(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://etl:s3cr%40t@db/etl", "postgresql://etl:***@db/etl"),
        (
            "postgresql://db/etl?password=x&sslmode=require",
            "postgresql://db/etl?password=***&sslmode=require",
        ),
        ("postgresql://etl@db/etl", "postgresql://etl@db/etl"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("not a url at all", "not a url at all"),
    ],
)
def test_redact(url: str, expected: str) -> None:
    assert redact(url) == expected


@given(
    user=st.text(alphabet="abcdefgh", min_size=1, max_size=8),
    password=st.text(alphabet="ABCDEFGHIJKLMNOP0123456789!$", min_size=4, max_size=16),
    host=st.sampled_from(["db", "db.internal", "10.0.0.1"]),
)
def test_redact_never_shows_the_password(user: str, password: str, host: str) -> None:
    url = f"postgresql://{user}:{password}@{host}:5432/etl"
    assert password not in redact(url)
    assert redact(url) == f"postgresql://{user}:***@{host}:5432/etl"


def test_a_secret_url_is_shown_redacted_and_revealed_only_when_asked() -> None:
    url = SecretUrl("postgresql://etl:hunter2@db/etl?sslpassword=x")

    shown = "postgresql://etl:***@db/etl?sslpassword=***"
    assert (str(url), repr(url), f"{url}", f"{url}") == (shown, repr(shown), shown, shown)
    assert url.reveal() == "postgresql://etl:hunter2@db/etl?sslpassword=x"
    assert not isinstance(url.reveal(), SecretUrl)
    assert parse_history_url(url).dsn == "postgresql://etl:hunter2@db/etl?sslpassword=x"


def test_a_secret_url_without_a_password_shows_as_itself() -> None:
    assert str(SecretUrl("s3://bucket/prefix")) == "s3://bucket/prefix"
