"""Job settings, layered: defaults < ETL_* environment < --config TOML < command-line flags."""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import attrs

from etl_core import serde
from etl_core.errors import ConfigError
from etl_core.urls import parse_history_url, parse_store_url

__all__ = [
    "DEFAULT_HISTORY_URL",
    "DEFAULT_STORE_URL",
    "LOG_FORMATS",
    "CommonSettings",
    "add_common_arguments",
    "load_settings",
    "settings_from_args",
]

DEFAULT_STORE_URL = "file://./.etl/store"
DEFAULT_HISTORY_URL = "sqlite:///./.etl/history.sqlite3"
LOG_FORMATS = ("auto", "json", "text")
CONFIG_ENV = "ETL_CONFIG_PATH"

# Flags whose name is not simply the field name with dashes.
_FLAG_NAMES = {"store_url": "--store", "history_url": "--history", "config_path": "--config"}

S = TypeVar("S", bound="CommonSettings")


@attrs.frozen(kw_only=True)
class CommonSettings:
    """Settings every job shares; a job subclasses this to add its own (all with defaults)."""

    run_id: str | None = None
    agency_id: int | None = None
    dry_run: bool = False
    store_url: str = DEFAULT_STORE_URL
    history_url: str = DEFAULT_HISTORY_URL
    max_dead_letter_ratio: float | None = None
    log_format: str = "auto"
    lease_ttl_seconds: float = 300.0
    stale_after_seconds: float = 900.0
    config_path: str | None = None

    def problems(self) -> Iterator[tuple[str, str]]:
        """(field, problem) for every invalid value; subclasses extend and call super()."""
        for name, parse in (("store_url", parse_store_url), ("history_url", parse_history_url)):
            try:
                parse(getattr(self, name))
            except ConfigError as exc:
                yield name, str(exc)
        if self.agency_id is not None and self.agency_id < 0:
            yield "agency_id", f"must be >= 0, got {self.agency_id}"
        ratio = self.max_dead_letter_ratio
        if ratio is not None and not 0.0 <= ratio <= 1.0:
            yield "max_dead_letter_ratio", f"must be between 0 and 1, got {ratio}"
        if self.log_format not in LOG_FORMATS:
            yield "log_format", f"must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}"
        for name in ("lease_ttl_seconds", "stale_after_seconds"):
            if getattr(self, name) <= 0:
                yield name, f"must be > 0, got {getattr(self, name)}"
        if self.run_id is not None and not self.run_id.strip():
            yield "run_id", "must not be empty"


def add_common_arguments(parser: argparse.ArgumentParser, *, agency_required: bool) -> None:
    """Add the common flags; unset flags stay None so lower layers show through."""
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--agency-id", dest="agency_id", type=int, required=agency_required, default=None,
        help="agency to process" + (" (required)" if agency_required else ""),
    )  # fmt: skip
    group.add_argument("--run-id", dest="run_id", default=None, help="default: a new UUIDv7")
    group.add_argument(
        "--dry-run", dest="dry_run", action="store_true", default=None,
        help="read and transform, report counts; write no objects, history or markers",
    )  # fmt: skip
    group.add_argument("--config", dest="config_path", metavar="PATH", help="TOML settings file")
    group.add_argument("--store", dest="store_url", metavar="URL", help="object store URL")
    group.add_argument("--history", dest="history_url", metavar="URL", help="run history URL")
    group.add_argument(
        "--max-dead-letter-ratio", dest="max_dead_letter_ratio", type=float, metavar="RATIO",
        help="fail the run when dead-letter rows / input rows exceeds this (0..1)",
    )  # fmt: skip
    group.add_argument("--log-format", dest="log_format", choices=LOG_FORMATS, default=None)


@attrs.frozen
class _Value:
    raw: Any
    source: str  # for serde messages: "environment", "config.toml", "command line"
    path: str  # "ETL_AGENCY_ID", "$.jobs.generate.records", "--agency-id"

    @property
    def origin(self) -> str:
        return f"{self.source} @ {self.path}"


def load_settings(
    cls: type[S],
    *,
    job: str,
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    config_path: str | None,
) -> S:
    """Merge the layers into cls. Raises ConfigError naming the source and path of each problem."""
    fields = {field.name: field for field in attrs.fields(attrs.resolve_types(cls))}
    path = config_path if config_path is not None else (env.get(CONFIG_ENV) or None)
    layers: dict[str, _Value] = {}
    layers.update(_from_env(fields, env))
    if path is not None:
        layers.update(_from_toml(fields, path, job))
    layers.update(_from_flags(fields, flags))
    layers["config_path"] = _Value(path, "command line", "--config")

    values: dict[str, Any] = {}
    errors: list[str] = []
    for name, value in layers.items():
        try:
            values[name] = serde.structure(
                value.raw, fields[name].type, source=value.source, path=value.path
            )
        except ConfigError as exc:
            errors.append(str(exc))
    if errors:
        raise ConfigError("; ".join(errors))
    settings = cls(**values)
    problems = [
        f"{layers[name].origin if name in layers else name}: {problem}"
        for name, problem in settings.problems()
    ]
    if problems:
        raise ConfigError("; ".join(problems))
    return settings


def settings_from_args(
    cls: type[S], args: argparse.Namespace, *, job: str, env: Mapping[str, str] | None = None
) -> S:
    """load_settings from parsed arguments and (by default) os.environ."""
    return load_settings(
        cls,
        job=job,
        flags=vars(args),
        env=os.environ if env is None else env,
        config_path=getattr(args, "config_path", None),
    )


def _from_env(
    fields: Mapping[str, attrs.Attribute[Any]], env: Mapping[str, str]
) -> Iterator[tuple[str, _Value]]:
    for name in fields:
        if name == "config_path":
            continue
        variable = f"ETL_{name.upper()}"
        raw = env.get(variable, "").strip()
        if raw:
            yield name, _Value(raw, "environment", variable)


def _from_flags(
    fields: Mapping[str, attrs.Attribute[Any]], flags: Mapping[str, Any]
) -> Iterator[tuple[str, _Value]]:
    for name, raw in flags.items():
        if name in fields and name != "config_path" and raw is not None:
            flag = _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
            yield name, _Value(raw, "command line", flag)


def _from_toml(
    fields: Mapping[str, attrs.Attribute[Any]], path: str, job: str
) -> Iterator[tuple[str, _Value]]:
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    allowed = sorted(name for name in fields if name != "config_path")
    top = {key: value for key, value in document.items() if key != "jobs"}
    yield from _table(top, allowed, path, "$")
    jobs = document.get("jobs", {})
    if not isinstance(jobs, dict):
        raise ConfigError(f"{path} @ $.jobs: expected a table of [jobs.<name>] tables")
    section = jobs.get(job, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path} @ $.jobs.{job}: expected a table")
    yield from _table(section, allowed, path, f"$.jobs.{job}")


def _table(
    table: Mapping[str, Any], allowed: list[str], source: str, where: str
) -> Iterator[tuple[str, _Value]]:
    unknown = [key for key in table if key not in allowed]
    if unknown:
        known = ", ".join(allowed + (["jobs"] if where == "$" else []))
        raise ConfigError(
            "; ".join(f"{source} @ {where}.{key}: unknown key (known: {known})" for key in unknown)
        )
    for key, value in table.items():
        yield key, _Value(value, source, f"{where}.{key}")
