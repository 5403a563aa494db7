"""Kubernetes batch/v1 Job and CronJob manifests for one job over many agencies (see
jobs._k8s_render)."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import yaml
from etl_core.errors import ExitCode
from etl_core.settings import EMBEDDED_DEFAULTS_ENV

API_VERSION = "batch/v1"
LABEL_PREFIX = "etl-platform"
UID = 65534  # nobody: the images run as 65534:65534
MAX_NAME = 63  # Job names end up in the job-name label: a DNS-1123 label, <= 63 characters
# The CronJob controller names each Job <cronjob>-<minutes since the epoch> (11 more characters).
MAX_CRON_NAME = 52
RESERVED_ENV = frozenset(
    {
        "ETL_AGENCY_ID",
        "ETL_AGENCY_IDS",
        "ETL_RUN_ID",
        "ETL_PARENT_RUN_ID",
        "JOB_COMPLETION_INDEX",
        EMBEDDED_DEFAULTS_ENV,
    }
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class RenderError(Exception):
    """A bad flag or values file: reported on stderr, exit 2."""


def is_dns_label(name: str) -> bool:
    """RFC 1123 label as Kubernetes checks it: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63."""
    return len(name) <= MAX_NAME and bool(_DNS_LABEL.match(name))


def is_dns_subdomain(name: str) -> bool:
    """RFC 1123 subdomain: dot-separated labels, at most 253 characters."""
    return 0 < len(name) <= 253 and all(_DNS_LABEL.match(part) for part in name.split("."))


def slug(text: str) -> str:
    """Lower-case, runs of other characters to '-', no leading/trailing '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def resource_name(*parts: str, unique: str, max_len: int = MAX_NAME) -> str:
    """`<parts>-<8 hex of unique>`, cut to max_len before the hash so the hash always survives."""
    digest = hashlib.sha256(unique.encode()).hexdigest()[:8]
    base = slug("-".join(parts))[: max_len - len(digest) - 1].rstrip("-")
    name = f"{base}-{digest}" if base else digest
    if not is_dns_label(name):
        raise RenderError(f"derived name {name!r} is not a DNS-1123 label")
    return name


@attrs.frozen
class Resources:
    """Container requests/limits and the /tmp emptyDir size."""

    cpu: str = "500m"
    memory: str = "1Gi"
    cpu_limit: str | None = None  # no CPU limit by default: throttling slows batch jobs for nothing
    memory_limit: str | None = None  # defaults to the memory request
    tmp_size: str = "2Gi"  # PEX_ROOT lives in /tmp: the job's venv is unpacked there


@attrs.frozen
class Spec:
    """Everything one render needs, after flags have overridden the values file."""

    job: str
    image: str
    agencies: tuple[int, ...]
    mode: str
    run_id: str
    namespace: str = "default"
    service_account: str = "etl-runner"
    parallelism: int | None = None
    backoff_limit: int = 3
    max_failed_indexes: int | None = None
    ttl_seconds: int = 86400
    active_deadline_seconds: int | None = None
    name_prefix: str = "etl"
    umbrella: bool = False
    resources: Resources = Resources()
    env: Mapping[str, str] = attrs.field(factory=dict)
    secret_env: Mapping[str, tuple[str, str]] = attrs.field(factory=dict)
    labels: Mapping[str, str] = attrs.field(factory=dict)
    extra_args: tuple[str, ...] = ()
    schedule: str | None = None  # cron syntax: one CronJob running the Job(s) described above
    time_zone: str = "Etc/UTC"


def _labels(spec: Spec, agency: int | None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "data-pipeline",
        "app.kubernetes.io/component": spec.job,
        "app.kubernetes.io/part-of": "etl-platform",
        "app.kubernetes.io/managed-by": "data-pipeline-k8s-render",
        f"{LABEL_PREFIX}/job": spec.job,
        f"{LABEL_PREFIX}/run-id": spec.run_id,
    }
    if agency is not None:
        labels[f"{LABEL_PREFIX}/agency-id"] = str(agency)
    return {**spec.labels, **labels}


def _env(spec: Spec, agency_ids: Sequence[int] | None) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": k, "value": spec.env[k]} for k in sorted(spec.env)]
    for name in sorted(spec.secret_env):
        secret, key = spec.secret_env[name]
        env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    env.append({"name": "ETL_PARENT_RUN_ID", "value": spec.run_id})
    # Even an image built without it: a pod's ./.etl would be throwaway files in /tmp, so a job
    # told nothing (a config file without a store) exits 2 instead (etl_core.settings).
    env.append({"name": EMBEDDED_DEFAULTS_ENV, "value": "off"})
    if agency_ids is not None:
        env.append({"name": "ETL_AGENCY_IDS", "value": ",".join(map(str, agency_ids))})
    return env


def _container(spec: Spec, args: list[str], env: list[dict[str, Any]]) -> dict[str, Any]:
    res = spec.resources
    limits = {"memory": res.memory_limit or res.memory}
    if res.cpu_limit:
        limits["cpu"] = res.cpu_limit
    return {
        "name": slug(spec.job)[:MAX_NAME].rstrip("-"),
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": env,
        "resources": {
            "requests": {"cpu": res.cpu, "memory": res.memory, "ephemeral-storage": res.tmp_size},
            "limits": limits,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 (in the pod)
    }


def _pod_template(spec: Spec, labels: dict[str, str], container: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels},
        "spec": {
            "restartPolicy": "Never",  # the Job controller retries; required by podFailurePolicy
            "serviceAccountName": spec.service_account,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": UID,
                "runAsGroup": UID,
                "fsGroup": UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": spec.resources.tmp_size}}],
        },
    }


def _failure_policy(indexed: bool) -> dict[str, Any]:
    def on_exit(action: str, code: ExitCode) -> dict[str, Any]:
        return {"action": action, "onExitCodes": {"operator": "In", "values": [int(code)]}}

    return {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            on_exit("FailJob", ExitCode.USAGE),
            on_exit("FailIndex" if indexed else "FailJob", ExitCode.FAILED),
            on_exit("Count", ExitCode.TEMPORARY),
        ]
    }


def _job(spec: Spec, name: str, labels: dict[str, str], job_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Job",
        "metadata": {"name": name, "namespace": spec.namespace, "labels": labels},
        "spec": job_spec,
    }


def _common_job_spec(spec: Spec, template: dict[str, Any], indexed: bool) -> dict[str, Any]:
    job_spec: dict[str, Any] = {"ttlSecondsAfterFinished": spec.ttl_seconds}
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    # A replacement pod starts only once the failed one is gone: two attempts never overlap.
    job_spec["podReplacementPolicy"] = "Failed"
    job_spec["podFailurePolicy"] = _failure_policy(indexed)
    job_spec["template"] = template
    return job_spec


def _base_args(spec: Spec) -> list[str]:
    return [spec.job] if spec.umbrella else []


def render(spec: Spec) -> list[dict[str, Any]]:
    """The Job manifests for spec, in agency order, or its one CronJob (plain dicts for YAML)."""
    if spec.schedule is not None:
        return [_cron_job(spec)]
    if spec.mode == "indexed":
        return [_indexed_job(spec)]
    manifests = []
    for agency in spec.agencies:
        # The agency is hashed too: names stay unique even if a cut drops the "a<id>" part.
        unique = f"{spec.run_id}/{agency}"
        name = resource_name(spec.name_prefix, spec.job, f"a{agency}", unique=unique)
        manifests.append(_plain_job(spec, name, agency))
    return manifests


def _plain_job(spec: Spec, name: str, agency: int | None) -> dict[str, Any]:
    """One pod's Job, given `--agency-id <agency>` (none: the job covers its agencies itself)."""
    labels = _labels(spec, agency)
    agency_args = [] if agency is None else ["--agency-id", str(agency)]
    args = [*_base_args(spec), *agency_args, *spec.extra_args]
    container = _container(spec, args, _env(spec, None))
    job_spec = {
        "backoffLimit": spec.backoff_limit,
        **_common_job_spec(spec, _pod_template(spec, labels, container), indexed=False),
    }
    return _job(spec, name, labels, job_spec)


def _cron_job(spec: Spec) -> dict[str, Any]:
    """A CronJob whose Job is the one render would give for spec: one pod with no agency, one
    pod with --agency-id (one agency), or the Indexed Job (several). Its name is stable, not
    derived from the run id, so applying a new rollout updates it instead of adding another."""
    indexed = spec.mode == "indexed"
    parts = [spec.name_prefix, spec.job]
    if len(spec.agencies) == 1 and not indexed:
        parts.append(f"a{spec.agencies[0]}")
    room = MAX_CRON_NAME
    if indexed:  # pods are named <job>-<index>: keep that a DNS label too
        room -= len(str(len(spec.agencies) - 1)) + 1
    name = slug("-".join(parts))
    if len(name) > room or not is_dns_label(name):
        unique = "/".join(map(str, [*parts, *spec.agencies]))
        name = resource_name(*parts, unique=unique, max_len=room)
    if indexed:
        job = _indexed_job(spec, name)
    else:
        job = _plain_job(spec, name, spec.agencies[0] if spec.agencies else None)
    return {
        "apiVersion": API_VERSION,
        "kind": "CronJob",
        "metadata": job["metadata"],
        "spec": {
            "schedule": spec.schedule,
            "timeZone": spec.time_zone,
            # Never two at once (the second would only find the tables' lease held and exit 75).
            "concurrencyPolicy": "Forbid",
            # A start missed by more than this (controller down) is skipped, not run late.
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": job["metadata"]["labels"]},
                "spec": job["spec"],
            },
        },
    }


def _indexed_job(spec: Spec, name: str | None = None) -> dict[str, Any]:
    completions = len(spec.agencies)
    # Pods of an Indexed Job get the hostname <name>-<index>, itself a DNS label.
    room = MAX_NAME - len(str(completions - 1)) - 1
    if name is None:
        name = resource_name(spec.name_prefix, spec.job, unique=spec.run_id, max_len=room)
    labels = _labels(spec, None)
    args = [*_base_args(spec), *spec.extra_args]
    container = _container(spec, args, _env(spec, spec.agencies))
    max_failed = spec.max_failed_indexes
    if max_failed is None:  # a circuit breaker: a tenth of the agencies failing means "stop"
        max_failed = max(1, math.ceil(completions / 10))
    job_spec = {
        "completionMode": "Indexed",
        "completions": completions,
        "parallelism": min(spec.parallelism or 10, completions),
        # No global backoffLimit: one agency's retries must not use up the others' budget.
        "backoffLimitPerIndex": spec.backoff_limit,
        "maxFailedIndexes": min(max_failed, completions),
        **_common_job_spec(spec, _pod_template(spec, labels, container), indexed=True),
    }
    return _job(spec, name, labels, job_spec)


class _Dumper(yaml.SafeDumper):
    """Safe YAML without anchors/aliases: shared dicts (labels) are written out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(manifests: Sequence[Mapping[str, Any]]) -> str:
    """A deterministic multi-document YAML stream (key order as built, no line folding)."""
    return yaml.dump_all(
        manifests,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=1 << 16,
        explicit_start=True,
    )
