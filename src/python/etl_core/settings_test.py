"""Tests for layered settings: precedence, unknown keys, and error messages."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from etl_core.errors import ConfigError
from etl_core.settings import (
    DEFAULT_HISTORY_URL,
    DEFAULT_STORE_URL,
    CommonSettings,
    add_common_arguments,
    load_settings,
    settings_from_args,
)


@attrs.frozen(kw_only=True)
class _JobSettings(CommonSettings):
    records: int = 10

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if self.records <= 0:
            yield "records", f"must be > 0, got {self.records}"


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def _parser(*, agency_required: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="job")
    add_common_arguments(parser, agency_required=agency_required)
    return parser


def test_defaults_are_embedded_and_local() -> None:
    settings = load_settings(CommonSettings, job="j", flags={}, env={}, config_path=None)
    assert settings == CommonSettings()
    assert settings.store_url == DEFAULT_STORE_URL == "file://./.etl/store"
    assert settings.history_url == DEFAULT_HISTORY_URL


def test_precedence_is_defaults_then_env_then_file_then_job_table_then_flags(
    tmp_path: Path,
) -> None:
    config = _write(
        tmp_path,
        """
        agency_id = 2
        records = 20
        log_format = "text"
        [jobs.j]
        records = 30
        [jobs.other]
        records = 99
        """,
    )
    env = {
        "ETL_AGENCY_ID": "1",
        "ETL_RECORDS": "5",
        "ETL_DRY_RUN": "true",
        "ETL_LOG_FORMAT": "json",
    }
    settings = load_settings(
        _JobSettings, job="j", flags={"agency_id": 3, "unrelated": "x"}, env=env, config_path=config
    )
    assert (settings.agency_id, settings.records, settings.dry_run) == (3, 30, True)
    assert settings.log_format == "text"
    assert settings.config_path == config


def test_unset_flags_do_not_override_lower_layers() -> None:
    args = _parser().parse_args([])
    settings = settings_from_args(CommonSettings, args, job="j", env={"ETL_AGENCY_ID": "7"})
    assert settings.agency_id == 7
    assert settings.dry_run is False


def test_flags_map_to_fields() -> None:
    argv = ["--agency-id", "4", "--run-id", "r1", "--dry-run", "--store", "s3://bkt/p",
            "--history", "sqlite:////tmp/h.db", "--max-dead-letter-ratio", "0.2",
            "--log-format", "json"]  # fmt: skip
    settings = settings_from_args(CommonSettings, _parser().parse_args(argv), job="j", env={})
    assert settings == CommonSettings(
        agency_id=4,
        run_id="r1",
        dry_run=True,
        store_url="s3://bkt/p",
        history_url="sqlite:////tmp/h.db",
        max_dead_letter_ratio=0.2,
        log_format="json",
    )


def test_agency_id_can_be_required() -> None:
    args = _parser(agency_required=True).parse_args([])
    with pytest.raises(ConfigError, match="an agency is required: pass --agency-id"):
        settings_from_args(CommonSettings, args, job="j", env={})


def test_a_required_agency_may_come_from_the_environment() -> None:
    args = _parser(agency_required=True).parse_args([])
    settings = settings_from_args(CommonSettings, args, job="j", env={"ETL_AGENCY_ID": "12"})
    assert settings.agency_id == 12


def test_indexed_job_picks_its_agency_by_completion_index() -> None:
    args = _parser(agency_required=True).parse_args([])
    env = {"ETL_AGENCY_IDS": "3, 5,7", "JOB_COMPLETION_INDEX": "1"}
    assert settings_from_args(CommonSettings, args, job="j", env=env).agency_id == 5


def test_agency_flag_beats_the_indexed_environment() -> None:
    args = _parser(agency_required=True).parse_args(["--agency-id", "9"])
    env = {"ETL_AGENCY_IDS": "3,5", "JOB_COMPLETION_INDEX": "1"}
    assert settings_from_args(CommonSettings, args, job="j", env=env).agency_id == 9


@pytest.mark.parametrize(
    ("index", "problem"), [("", "not an index"), ("2", "index 2 is out of range for 2 agency ids")]
)
def test_bad_completion_index_is_a_config_error(index: str, problem: str) -> None:
    env = {"ETL_AGENCY_IDS": "3,5", "JOB_COMPLETION_INDEX": index}
    with pytest.raises(ConfigError, match=problem):
        load_settings(CommonSettings, job="j", flags={}, env=env, config_path=None)


def test_bad_agency_id_in_the_list_names_the_variables() -> None:
    env = {"ETL_AGENCY_IDS": "3,x", "JOB_COMPLETION_INDEX": "1"}
    with pytest.raises(
        ConfigError, match=r"environment @ ETL_AGENCY_IDS\[JOB_COMPLETION_INDEX\]: expected an int"
    ):
        load_settings(CommonSettings, job="j", flags={}, env=env, config_path=None)


def test_config_path_falls_back_to_the_environment(tmp_path: Path) -> None:
    config = _write(tmp_path, "agency_id = 9\n")
    settings = load_settings(
        CommonSettings, job="j", flags={}, env={"ETL_CONFIG_PATH": config}, config_path=None
    )
    assert (settings.agency_id, settings.config_path) == (9, config)


def test_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    config = _write(tmp_path, 'stor_url = "s3://bkt/x"\n')
    with pytest.raises(ConfigError, match=r"config.toml @ \$.stor_url: unknown key \(known: "):
        load_settings(CommonSettings, job="j", flags={}, env={}, config_path=config)


def test_unknown_key_in_the_job_table_is_named(tmp_path: Path) -> None:
    config = _write(tmp_path, "[jobs.j]\nrecord = 1\n")
    with pytest.raises(ConfigError, match=r"@ \$.jobs.j.record: unknown key"):
        load_settings(_JobSettings, job="j", flags={}, env={}, config_path=config)


def test_wrong_type_in_the_file_names_file_and_path(tmp_path: Path) -> None:
    config = _write(tmp_path, 'max_dead_letter_ratio = "lots"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(CommonSettings, job="j", flags={}, env={}, config_path=config)
    assert str(info.value) == f"{config} @ $.max_dead_letter_ratio: expected a number, got 'lots'"


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    config = _write(tmp_path, "agency_id = \n")
    with pytest.raises(ConfigError, match=rf"^{config}: invalid TOML: "):
        load_settings(CommonSettings, job="j", flags={}, env={}, config_path=config)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=rf"^{missing}: cannot read config file"):
        load_settings(CommonSettings, job="j", flags={}, env={}, config_path=missing)


def test_jobs_must_be_a_table(tmp_path: Path) -> None:
    config = _write(tmp_path, "jobs = 3\n")
    with pytest.raises(ConfigError, match=r"@ \$.jobs: expected a table"):
        load_settings(CommonSettings, job="j", flags={}, env={}, config_path=config)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^environment @ ETL_AGENCY_ID: expected an integer"):
        load_settings(
            CommonSettings, job="j", flags={}, env={"ETL_AGENCY_ID": "x"}, config_path=None
        )


def test_bad_url_names_where_it_came_from_and_hides_the_password() -> None:
    flags = {"history_url": "mysql://u:hunter2@db/etl"}
    with pytest.raises(ConfigError) as info:
        load_settings(CommonSettings, job="j", flags=flags, env={}, config_path=None)
    message = str(info.value)
    assert message.startswith("command line @ --history: invalid run history URL")
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        ({"max_dead_letter_ratio": 1.5}, "--max-dead-letter-ratio: must be between 0 and 1"),
        ({"log_format": "xml"}, "--log-format: must be one of auto, json, text"),
        ({"lease_ttl_seconds": 0}, "--lease-ttl-seconds: must be > 0"),
        ({"agency_id": -1}, "--agency-id: must be >= 0"),
        ({"records": 0}, "--records: must be > 0"),
    ],
)
def test_semantic_checks(flags: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(_JobSettings, job="j", flags=flags, env={}, config_path=None)


def test_empty_environment_values_count_as_unset() -> None:
    settings = load_settings(
        CommonSettings, job="j", flags={}, env={"ETL_AGENCY_ID": " "}, config_path=None
    )
    assert settings.agency_id is None


OFF = {"ETL_EMBEDDED_DEFAULTS": "off"}


def test_where_embedded_defaults_are_off_nothing_configured_names_what_to_set() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(CommonSettings, job="j", flags={"demo": False}, env=OFF, config_path=None)

    message = str(raised.value)
    assert message.startswith("j: not configured (ETL_EMBEDDED_DEFAULTS=off")
    assert "set ETL_STORE_URL or --store to the object store (e.g. s3://bucket/prefix)" in message
    assert "set ETL_HISTORY_URL or --history to the run history" in message
    assert "ETL_CONFIG_PATH or --config" in message
    assert "--demo" in message  # the job has the flag


def test_where_embedded_defaults_are_off_each_layer_can_configure_them(tmp_path: Path) -> None:
    config = _write(tmp_path, 'history_url = "sqlite:////data/h.db"\n')
    env = {**OFF, "ETL_STORE_URL": "s3://bucket/lake"}

    settings = load_settings(CommonSettings, job="j", flags={}, env=env, config_path=config)

    assert (settings.store_url, settings.history_url) == (
        "s3://bucket/lake",
        "sqlite:////data/h.db",
    )
    flags = {"store_url": "s3://bucket/p", "history_url": "sqlite:////h.db"}
    assert load_settings(CommonSettings, job="j", flags=flags, env=OFF, config_path=None)


def test_only_the_settings_left_to_the_defaults_are_named() -> None:
    env = {**OFF, "ETL_STORE_URL": "s3://bucket/lake", "ETL_HISTORY_URL": " "}

    with pytest.raises(ConfigError) as raised:
        load_settings(CommonSettings, job="j", flags={}, env=env, config_path=None)

    assert "ETL_HISTORY_URL" in str(raised.value)
    assert "ETL_STORE_URL" not in str(raised.value)
    assert "--demo" not in str(raised.value)  # no such flag here


def test_demo_lifts_the_requirement_and_other_values_keep_the_defaults() -> None:
    demo = load_settings(CommonSettings, job="j", flags={"demo": True}, env=OFF, config_path=None)
    assert (demo.store_url, demo.history_url) == (DEFAULT_STORE_URL, DEFAULT_HISTORY_URL)
    for value in ("", "on", "1"):
        env = {"ETL_EMBEDDED_DEFAULTS": value}
        assert load_settings(CommonSettings, job="j", flags={}, env=env, config_path=None)


def test_every_value_out_of_range_is_named_with_where_it_came_from() -> None:
    env = {"ETL_LEASE_TTL_SECONDS": "0"}
    with pytest.raises(ConfigError) as raised:
        load_settings(CommonSettings, job="j", flags={"agency_id": -1}, env=env, config_path=None)

    assert str(raised.value) == (
        "environment @ ETL_LEASE_TTL_SECONDS: must be > 0, got 0.0; "
        "command line @ --agency-id: must be >= 0, got -1"
    )


def test_settings_built_in_code_are_checked_too() -> None:
    with pytest.raises(ValueError, match="max_dead_letter_ratio: must be between 0 and 1, got 2"):
        CommonSettings(max_dead_letter_ratio=2)


@attrs.frozen(kw_only=True)
class _DatedSettings(CommonSettings):
    day: dt.date | None = None


@pytest.mark.parametrize("raw", ["2024-01-08", "20240108"])
def test_a_date_setting_takes_iso_text_from_the_environment(raw: str) -> None:
    env = {"ETL_DAY": raw}
    settings = load_settings(_DatedSettings, job="j", flags={}, env=env, config_path=None)
    assert settings.day == dt.date(2024, 1, 8)


def test_a_date_setting_takes_a_toml_date(tmp_path: Path) -> None:
    path = _write(tmp_path, "day = 2024-01-08\n")
    settings = load_settings(_DatedSettings, job="j", flags={}, env={}, config_path=path)
    assert settings.day == dt.date(2024, 1, 8)


def test_a_bad_date_names_the_setting_and_the_value() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(_DatedSettings, job="j", flags={"day": "2024-1-8"}, env={}, config_path=None)
    assert str(raised.value) == "command line @ --day: expected a date YYYY-MM-DD, got '2024-1-8'"
