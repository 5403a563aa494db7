"""Job settings, layered: defaults < ETL_* environment < --config TOML < command-line flags."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping, Set
from typing import Any, TypeVar

import attrs

from etl_core import serde
from etl_core.errors import ConfigError
from etl_core.setting_checks import (
    FieldProblem,
    at_least,
    between,
    greater_than,
    not_blank,
    one_of,
)
from etl_core.urls import SecretUrl, parse_history_url, parse_store_url

__all__ = [
    "DEFAULT_HISTORY_URL",
    "DEFAULT_STORE_URL",
    "EMBEDDED_DEFAULTS_ENV",
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
# Indexed Kubernetes Jobs: pod i runs ETL_AGENCY_IDS[JOB_COMPLETION_INDEX] (jobs/_k8s_render).
AGENCY_IDS_ENV = "ETL_AGENCY_IDS"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
# Set by add_common_arguments: argparse cannot require --agency-id when env or TOML may supply it.
_AGENCY_REQUIRED = "_etl_agency_required"
# "off" in images (docker/Dockerfile) and rendered pods: there the embedded local
# store and history would be throwaway files in /tmp, so a job must be told where its data and
# history live. A job's --demo flag (the `demo` flag key) lifts it.
EMBEDDED_DEFAULTS_ENV = "ETL_EMBEDDED_DEFAULTS"
_DEMO_FLAG = "demo"
# What to set instead of an embedded default: (what it is, where to set it, an example).
_WHAT_TO_SET = {
    "store_url": ("the object store", "ETL_STORE_URL or --store", "s3://bucket/prefix"),
    "history_url": (
        "the run history", "ETL_HISTORY_URL or --history", "postgresql://user@host/db"
    ),
}  # fmt: skip

# Flags whose name is not simply the field name with dashes.
_FLAG_NAMES = {"store_url": "--store", "history_url": "--history", "config_path": "--config"}

S = TypeVar("S", bound="CommonSettings")


@attrs.frozen(kw_only=True)
class CommonSettings:
    """Settings every job shares; a job subclasses this to add its own (all with defaults)."""

    run_id: str | None = attrs.field(default=None, validator=not_blank())
    agency_id: int | None = attrs.field(default=None, validator=at_least(0))
    dry_run: bool = False
    store_url: SecretUrl = attrs.field(default=SecretUrl(DEFAULT_STORE_URL), converter=SecretUrl)
    history_url: SecretUrl = attrs.field(
        default=SecretUrl(DEFAULT_HISTORY_URL), converter=SecretUrl
    )
    max_dead_letter_ratio: float | None = attrs.field(default=None, validator=between(0, 1))
    log_format: str = attrs.field(default="auto", validator=one_of(LOG_FORMATS))
    lease_ttl_seconds: float = attrs.field(default=300.0, validator=greater_than(0))
    stale_after_seconds: float = attrs.field(default=900.0, validator=greater_than(0))
    # S3 outages: retried for this long, then exit 75; silent endpoints time out (s3_limits.py).
    s3_retry_budget_seconds: float = attrs.field(default=60.0, validator=greater_than(0))
    s3_connect_timeout_seconds: float = attrs.field(default=5.0, validator=greater_than(0))
    s3_read_timeout_seconds: float = attrs.field(default=20.0, validator=greater_than(0))
    config_path: str | None = None

    def problems(self) -> Iterator[tuple[str, str]]:
        """(field, problem) for every invalid value the fields' validators cannot see alone
        (URLs, one field against another); subclasses extend and call super()."""
        for name, parse in (("store_url", parse_store_url), ("history_url", parse_history_url)):
            try:
                parse(getattr(self, name))
            except ConfigError as exc:
                yield name, str(exc)

    def embedded_defaults_used(self, configured: Set[str]) -> Iterator[str]:
        """The fields this job would take from the embedded local defaults (./.etl/...), given
        the fields some layer configured; a subclass whose job stores elsewhere overrides it."""
        yield from (name for name in ("store_url", "history_url") if name not in configured)


def add_common_arguments(
    parser: argparse.ArgumentParser,
    *,
    agency_required: bool,
    max_dead_letter_ratio: float | None = None,
) -> None:
    """Add the common flags; unset flags stay None so lower layers show through.
    max_dead_letter_ratio: the job's own default (its settings class's), shown in --help.

    With agency_required, load_settings insists on an agency from some layer (--agency-id,
    ETL_AGENCY_ID, the config file, or ETL_AGENCY_IDS + JOB_COMPLETION_INDEX in an Indexed Job).
    """
    group = parser.add_argument_group("common options")
    required = " (required; or ETL_AGENCY_ID / config)" if agency_required else ""
    group.add_argument(
        "--agency-id", dest="agency_id", type=int, default=None, metavar="N",
        help=f"agency to process{required}",
    )  # fmt: skip
    parser.set_defaults(**{_AGENCY_REQUIRED: agency_required})
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
        help="fail the run when dead-letter rows / input rows exceeds this (0..1; default "
        + ("no limit" if max_dead_letter_ratio is None else f"{max_dead_letter_ratio:g}")
        + ")",
    )  # fmt: skip
    group.add_argument("--log-format", dest="log_format", choices=LOG_FORMATS, default=None)
    group.add_argument(
        "--lease-ttl-seconds", dest="lease_ttl_seconds", type=float, metavar="SECONDS",
        help="how long the run's lease outlives its last heartbeat (default 300)",
    )  # fmt: skip
    group.add_argument(
        "--stale-after-seconds", dest="stale_after_seconds", type=float, metavar="SECONDS",
        help="a running run silent this long shows as stale (default 900)",
    )  # fmt: skip


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
    if "agency_id" in fields and "agency_id" not in layers:
        layers.update(_indexed_agency(env))
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
    if flags.get(_AGENCY_REQUIRED) and values.get("agency_id") is None:
        raise ConfigError(
            f"{job}: an agency is required: pass --agency-id N (or set ETL_AGENCY_ID, agency_id "
            f"in the config file, or {AGENCY_IDS_ENV} with {COMPLETION_INDEX_ENV})"
        )
    # Each field's own validator first, so every bad value is named with where it came from
    # (constructing would stop at the first); then what only the whole settings can tell.
    problems = [
        f"{layers[name].origin}: {problem}" for name, problem in _field_problems(fields, values)
    ]
    if problems:
        raise ConfigError("; ".join(problems))
    settings = cls(**values)
    problems = [
        f"{layers[name].origin if name in layers else name}: {problem}"
        for name, problem in settings.problems()
    ]
    if problems:
        raise ConfigError("; ".join(problems))
    if not embedded_defaults_allowed(env) and not flags.get(_DEMO_FLAG):
        unset = list(settings.embedded_defaults_used(layers.keys()))
        if unset:
            raise ConfigError(_not_configured(job, unset, demo=_DEMO_FLAG in flags))
    return settings


def _field_problems(
    fields: Mapping[str, attrs.Attribute[Any]], values: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    for name, value in values.items():
        check = fields[name].validator
        if check is not None:
            try:
                check(None, fields[name], value)
            except FieldProblem as problem:
                yield name, problem.problem


def embedded_defaults_allowed(env: Mapping[str, str]) -> bool:
    """False where ETL_EMBEDDED_DEFAULTS says off (images, Kubernetes pods)."""
    value = env.get(EMBEDDED_DEFAULTS_ENV, "").strip().lower()
    return value not in ("off", "0", "false", "no")


def _what_to_set(name: str) -> str:
    if name in _WHAT_TO_SET:
        what, where, example = _WHAT_TO_SET[name]
        return f"set {where} to {what} (e.g. {example})"
    return f"set ETL_{name.upper()} or {_FLAG_NAMES.get(name, '--' + name.replace('_', '-'))}"


def _not_configured(job: str, unset: list[str], *, demo: bool) -> str:
    wanted = "; ".join(_what_to_set(name) for name in unset)
    hint = " Or pass --demo for a throwaway local store seeded with demo data." if demo else ""
    return (
        f"{job}: not configured ({EMBEDDED_DEFAULTS_ENV}=off: no embedded local defaults here): "
        f"{wanted}; or name a TOML file with them in {CONFIG_ENV} or --config.{hint}"
    )


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


def _indexed_agency(env: Mapping[str, str]) -> Iterator[tuple[str, _Value]]:
    ids_text = env.get(AGENCY_IDS_ENV, "").strip()
    if not ids_text:
        return
    where = f"{AGENCY_IDS_ENV}[{COMPLETION_INDEX_ENV}]"
    ids = [item.strip() for item in ids_text.split(",")]
    index_text = env.get(COMPLETION_INDEX_ENV, "").strip()
    if not index_text.isdigit():
        raise ConfigError(
            f"environment @ {where}: {AGENCY_IDS_ENV} is set but {COMPLETION_INDEX_ENV} is "
            f"{index_text or 'unset'!r}, not an index"
        )
    index = int(index_text)
    if index >= len(ids):
        raise ConfigError(
            f"environment @ {where}: index {index} is out of range for {len(ids)} agency ids"
        )
    yield "agency_id", _Value(ids[index], "environment", where)


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
    import tomllib  # here: only runs given --config read TOML (~5 ms of every start-up)

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
