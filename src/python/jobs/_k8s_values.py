"""The values file of `k8s render` and the env it becomes: typed keys, ETL_*/OTEL_* variables,
Secret references, label keys; --store/--history/--history-secret over the file's env."""

from __future__ import annotations

import argparse
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobs._k8s_manifests import MAX_NAME, RESERVED_ENV, RenderError, is_dns_subdomain
from jobs._k8s_secrets import (
    HISTORY_ENV,
    SECRETISH_NAME,
    STORE_ENV,
    credential_in,
    refuse_in_argv,
    refuse_in_values,
)

_ENV_NAME = re.compile(r"^(ETL|OTEL)_[A-Z0-9_]+$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")  # a key of a Secret's data
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")

VALUE_KEYS = {
    "image": str, "namespace": str, "service_account": str, "mode": str, "parallelism": int,
    "backoff_limit": int, "max_failed_indexes": int, "ttl_seconds_after_finished": int,
    "active_deadline_seconds": int, "name_prefix": str, "umbrella": bool, "args": list,
    "resources": dict, "env": dict, "secret_env": dict, "labels": dict, "schedule": str,
    "time_zone": str,
}  # fmt: skip
RESOURCE_KEYS = ("cpu", "memory", "cpu_limit", "memory_limit", "tmp_size")


def load_values(path: Path) -> dict[str, Any]:
    """Read and type-check a values TOML file; errors name the file and the key."""
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RenderError(f"{path}: cannot read values: {exc}") from None
    refuse_in_values(values, str(path))  # before any message below can echo a value
    for key, value in values.items():
        expected = VALUE_KEYS.get(key)
        if expected is None:
            raise RenderError(f"{path} @ $.{key}: unknown key (known: {', '.join(VALUE_KEYS)})")
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise RenderError(f"{path} @ $.{key}: expected {expected.__name__}, got {value!r}")
    for key in values.get("resources", {}):
        if key not in RESOURCE_KEYS:
            raise RenderError(f"{path} @ $.resources.{key}: unknown key")
    refuse_in_argv([str(arg) for arg in values.get("args", [])], f"{path} @ $.args")
    return values


def env_values(values: Mapping[str, Any], where: str) -> dict[str, str]:
    """Plain env of the pods: ETL_*/OTEL_* only, none reserved, none secret or credential-laden."""
    env = {}
    for name, value in values.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if not _ENV_NAME.match(name):
            raise RenderError(f"{where}.{name}: only ETL_* and OTEL_* variables are passed")
        if name in RESERVED_ENV:
            raise RenderError(f"{where}.{name}: set by the renderer, not the values file")
        if SECRETISH_NAME.search(name.removeprefix("ETL_").removeprefix("OTEL_")):
            raise RenderError(f"{where}.{name}: looks like a secret; use [secret_env] instead")
        kind = credential_in(text)
        if kind is not None:
            raise RenderError(f"{where}.{name}: carries {kind}; use [secret_env] instead")
        env[name] = text
    return env


def secret_env_refs(values: Mapping[str, Any], where: str) -> dict[str, tuple[str, str]]:
    """NAME -> (secret, key) of `[secret_env]`, each rendered as a secretKeyRef."""
    refs = {}
    for name, ref in values.items():
        refs[name] = secret_ref(str(ref), f"{where}.{name}")
        if not _ENV_NAME.match(name) or name in RESERVED_ENV:
            raise RenderError(f"{where}.{name}: only non-reserved ETL_*/OTEL_* variables")
    return refs


def secret_ref(ref: str, where: str) -> tuple[str, str]:
    """'<secret>/<key>' as (secret, key): a Secret's name and a key of its data."""
    secret, _, key = ref.partition("/")
    if not is_dns_subdomain(secret) or not _SECRET_KEY.match(key):
        # Not echoed: a malformed reference may be the secret itself.
        raise RenderError(f"{where}: expected '<secret-name>/<key>' (a Secret and its data key)")
    return secret, key


def store_and_history(
    args: argparse.Namespace, env: dict[str, str], refs: dict[str, tuple[str, str]]
) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """--store, --history and --history-secret over the values file's [env] and [secret_env]."""
    for flag, variable, url in (("--store", STORE_ENV, args.store),
                                ("--history", HISTORY_ENV, args.history)):  # fmt: skip
        if url is not None:
            refs.pop(variable, None)
            env |= env_values({variable: url}, flag)
    if args.history_secret is not None:
        env.pop(HISTORY_ENV, None)
        refs[HISTORY_ENV] = secret_ref(args.history_secret, "--history-secret")
    return env, refs


def label_key_ok(key: str) -> bool:
    """A Kubernetes label key: an optional DNS subdomain prefix and '/', then a name <= 63."""
    prefix, _, name = key.rpartition("/")
    prefix_ok = not prefix or is_dns_subdomain(prefix)
    return prefix_ok and len(name) <= MAX_NAME and bool(_LABEL_NAME.match(name))
