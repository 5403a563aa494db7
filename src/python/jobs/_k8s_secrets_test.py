"""What k8s render counts as a credential, and what it must let through."""

from __future__ import annotations

import pytest

from jobs._k8s_manifests import RenderError
from jobs._k8s_secrets import credential_in, refuse_in_argv, require_store_and_history


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://u:PgPa55word@db/etl",
        " postgresql://u:PgPa55word@db/etl",
        "\npostgresql://u:PgPa55word@db/etl ",
        "--history=postgresql://u:PgPa55word@db/etl",
        "POSTGRESQL://u:PgPa55word@db/etl",
        "postgresql://u%3APgPa55word%40db/etl",
        "https://u:p@[::1]:bad/x",
        "host=db user=u password=PgPa55word",
        "https://api.example/v1?agency=1&token=PgPa55word",
        "https://bucket.s3.amazonaws.com/k?X-Amz-Signature=abc123",
        "Bearer eyJhbGciOiJIUzI1NiJ9",
        "AKIAIOSFODNN7EXAMPLE",
        "u:PgPa55word@registry.example/etl/job:1",
        "-----BEGIN RSA PRIVATE KEY-----",
    ],
)
def test_credentials_are_found_wherever_they_sit(text: str) -> None:
    assert credential_in(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "s3://etl-bucket/prod",
        "postgresql://etl@db/etl",
        "sqlite:////data/history.sqlite3",
        "http://otel-collector.observability:4318",
        "https://api.example/v1?agency_id=1&cursor=abc",
        "registry.example:5000/etl/bronze_to_silver:1.4.2",
        "registry.example/etl/b@sha256:" + "0" * 64,
        "etl-run-history/dsn",
        "@daily",
        "Europe/Paris",
        "--agencies-key",
        "agencies.csv",
        "--max-dead-letter-ratio",
    ],
)
def test_ordinary_values_are_not_mistaken_for_credentials(text: str) -> None:
    assert credential_in(text) is None


def test_a_secret_flag_is_refused_without_echoing_its_value() -> None:
    with pytest.raises(RenderError) as raised:
        refuse_in_argv(["--agency-id", "1", "--api-key", "hunter2"], "job argument")

    assert "job argument --api-key: a secret flag" in str(raised.value)
    assert "hunter2" not in str(raised.value)
    refuse_in_argv(["--agencies-key", "ref/agencies.csv", "--auth-env", "API_TOKEN"], "args")


def test_flags_that_name_a_secret_are_let_through() -> None:
    refuse_in_argv(["--history-secret", "etl/dsn"], "argument", references=["--history-secret"])


@pytest.mark.parametrize(
    ("job", "env", "args"),
    [
        ("bronze_to_silver", {"ETL_STORE_URL": "s3://b/p"}, ["--history=sqlite:////h.db"]),
        ("get_s3_files", {"ETL_HISTORY_URL": "x"}, ["--destination-bucket", "dst"]),
        ("generate", {"ETL_HISTORY_URL": "x"}, ["--out", "s3://b/p"]),
        ("maintain", {"ETL_CONFIG_PATH": "/etc/etl/etl.toml"}, []),
    ],
)
def test_store_and_history_may_come_from_env_args_or_a_config_file(
    job: str, env: dict[str, str], args: list[str]
) -> None:
    require_store_and_history(job, env, {}, args)
