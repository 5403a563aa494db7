"""Rendered Job manifests for 1 and 500 agencies validate offline (kubernetes-validate --strict)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jobs._k8s_render import render_main

# Pinned: backoffLimitPerIndex, FailIndex and podReplacementPolicy are beta and on by default
# since 1.29; 1.31 is the oldest release still commonly supported by managed clusters.
K8S_VERSION = "1.31.0"
IMAGE = "registry.example/etl/bronze_to_silver:1.4.2"
RUN_ID = "0190a1b2-c3d4-7e5f-8a9b-0123456789ab"
AGENCIES_500 = [1000 + 7 * i for i in range(500)]
VALUES = """
namespace = "etl-prod"
service_account = "etl-runner"
active_deadline_seconds = 7200
args = ["--max-dead-letter-ratio", "0.01"]
[resources]
cpu = "500m"
cpu_limit = "2"
memory = "1Gi"
memory_limit = "1536Mi"
tmp_size = "3Gi"
[env]
ETL_STORE_URL = "s3://etl-bucket/prod"
ETL_LOG_FORMAT = "json"
OTEL_TRACES_EXPORTER = "otlp"
OTEL_EXPORTER_OTLP_ENDPOINT = "http://otel-collector.observability:4318"
OTEL_SERVICE_NAME = "data-pipeline"
[secret_env]
ETL_HISTORY_URL = "etl-run-history/dsn"
[labels]
team = "data-platform"
"""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_URL_PASSWORD = re.compile(r"://[^/@:]*:[^/@]+@")
_MEMORY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def dns_label(name: str) -> bool:
    return len(name) <= 63 and bool(_DNS_LABEL.match(name))


def label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    prefix_ok = not prefix or (len(prefix) <= 253 and all(dns_label(p) for p in prefix.split(".")))
    return prefix_ok and len(name) <= 63 and bool(_LABEL_NAME.match(name))


def memory_bytes(quantity: str) -> int:
    for suffix, factor in _MEMORY.items():
        if quantity.endswith(suffix):
            return int(quantity.removesuffix(suffix)) * factor
    return int(quantity)


def server_side_problems(job: dict[str, Any]) -> list[str]:
    """Rules the API server enforces that the JSON schema cannot express."""
    problems = []
    meta, spec = job["metadata"], job["spec"]
    pod = spec["template"]["spec"]
    name = meta["name"]
    if not dns_label(name):
        problems.append(f"name {name!r} is not a DNS-1123 label")
    if not dns_label(meta.get("namespace", "default")):
        problems.append("namespace is not a DNS-1123 label")
    for labels in (meta.get("labels", {}), spec["template"]["metadata"].get("labels", {})):
        for key, value in labels.items():
            if not label_key_ok(key) or len(value) > 63 or not _LABEL_VALUE.match(value):
                problems.append(f"label {key}={value!r} is invalid")
    indexed = spec.get("completionMode") == "Indexed"
    for field in ("backoffLimitPerIndex", "maxFailedIndexes"):
        if field in spec and not indexed:
            problems.append(f"{field} needs completionMode: Indexed")
    if "maxFailedIndexes" in spec and "backoffLimitPerIndex" not in spec:
        problems.append("maxFailedIndexes needs backoffLimitPerIndex")
    if indexed:
        completions = spec.get("completions")
        if completions is None:
            problems.append("an Indexed Job needs completions")
        else:
            if spec.get("maxFailedIndexes", 0) > completions:
                problems.append("maxFailedIndexes > completions")
            if not 0 <= spec.get("parallelism", 1) <= completions:
                problems.append("parallelism outside 0..completions")
            if len(f"{name}-{completions - 1}") > 63:
                problems.append("pod hostname <name>-<index> would exceed 63 characters")
    policy = spec.get("podFailurePolicy")
    if policy is not None:
        if pod["restartPolicy"] != "Never":
            problems.append("podFailurePolicy needs restartPolicy: Never")
        if spec.get("podReplacementPolicy", "Failed") != "Failed":
            problems.append("podFailurePolicy allows only podReplacementPolicy: Failed")
        for rule in policy["rules"]:
            if rule["action"] == "FailIndex" and "backoffLimitPerIndex" not in spec:
                problems.append("FailIndex needs backoffLimitPerIndex")
            codes = rule.get("onExitCodes", {}).get("values")
            if codes is not None:
                if codes != sorted(set(codes)) or not 0 < len(codes) <= 255:
                    problems.append(f"onExitCodes values {codes} must be sorted and unique")
                if rule["onExitCodes"]["operator"] == "In" and 0 in codes:
                    problems.append("onExitCodes In must not contain 0")
    if pod["restartPolicy"] not in ("Never", "OnFailure"):
        problems.append("a Job's restartPolicy must be Never or OnFailure")
    volumes = {v["name"] for v in pod.get("volumes", [])}
    for container in pod["containers"]:
        if not dns_label(container["name"]):
            problems.append(f"container name {container['name']!r} is not a DNS-1123 label")
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                problems.append(f"volumeMount {mount['name']} has no volume")
        env_names = [e["name"] for e in container.get("env", [])]
        if len(set(env_names)) != len(env_names):
            problems.append("duplicate env names")
        for env in container.get("env", []):
            if not _ENV_NAME.match(env["name"]):
                problems.append(f"env name {env['name']!r} is invalid")
            if _URL_PASSWORD.search(str(env.get("value", ""))):
                problems.append(f"env {env['name']} carries a password")
        resources = container.get("resources", {})
        request = resources.get("requests", {}).get("memory")
        limit = resources.get("limits", {}).get("memory")
        if request and limit and memory_bytes(limit) < memory_bytes(request):
            problems.append("memory limit below request")
    if len(yaml.safe_dump(job)) > 1_000_000:
        problems.append("object too large for etcd")
    return problems


def render(tmp_path: Path, mode: str, agencies: list[int]) -> list[dict[str, Any]]:
    values = tmp_path / "values.toml"
    values.write_text(VALUES)
    ids = tmp_path / "agencies.txt"
    ids.write_text("\n".join(map(str, agencies)) + "\n")
    out = tmp_path / "out"
    argv = ["bronze_to_silver", "--image", IMAGE, "--run-id", RUN_ID, "--mode", mode]
    argv += ["--agencies-file", str(ids), "--values", str(values), "--out", str(out)]
    if mode == "indexed":
        argv += ["--parallelism", "25"]
    assert render_main(argv) == 0
    files = sorted(out.glob("*.yaml"))
    return [doc for f in files for doc in yaml.safe_load_all(f.read_text())]


def validate_all(manifests: list[dict[str, Any]]) -> None:
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
        assert server_side_problems(manifest) == [], manifest["metadata"]["name"]


@pytest.mark.parametrize("count", [1, 500])
def test_one_job_per_agency_validates(tmp_path: Path, count: int) -> None:
    agencies = AGENCIES_500[:count]
    jobs = render(tmp_path, "jobs", agencies)

    validate_all(jobs)
    assert len(jobs) == count
    assert len({j["metadata"]["name"] for j in jobs}) == count
    labelled = []
    for job in jobs:
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        agency = job["metadata"]["labels"]["etl-platform/agency-id"]
        assert args[args.index("--agency-id") + 1] == agency
        labelled.append(int(agency))
    assert sorted(labelled) == sorted(agencies)


@pytest.mark.parametrize("count", [1, 500])
def test_one_indexed_job_validates_and_indexes_every_agency(tmp_path: Path, count: int) -> None:
    agencies = AGENCIES_500[:count]
    [job] = render(tmp_path, "indexed", agencies)

    validate_all([job])
    spec = job["spec"]
    env = {e["name"]: e.get("value") for e in spec["template"]["spec"]["containers"][0]["env"]}
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == count
    assert [int(i) for i in env["ETL_AGENCY_IDS"].split(",")] == agencies
    assert spec["parallelism"] == min(25, count)


def test_the_validators_do_reject_what_they_should(tmp_path: Path) -> None:
    [job] = render(tmp_path, "jobs", [1])
    misspelt = copy.deepcopy(job)
    misspelt["spec"]["backofLimit"] = 3
    not_indexed = copy.deepcopy(job)
    not_indexed["spec"]["backoffLimitPerIndex"] = 1
    bad_name = copy.deepcopy(job)
    bad_name["metadata"]["name"] = "Bronze_To_Silver"

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, K8S_VERSION, strict=True)
    assert server_side_problems(not_indexed) == [
        "backoffLimitPerIndex needs completionMode: Indexed"
    ]
    assert server_side_problems(bad_name) == ["name 'Bronze_To_Silver' is not a DNS-1123 label"]


def render_cron(tmp_path: Path, job: str, *argv: str) -> dict[str, Any]:
    values = tmp_path / "values.toml"
    values.write_text(VALUES)
    out = tmp_path / "cron"
    base = [job, "--image", IMAGE, "--run-id", RUN_ID, "--values", str(values), "--out", str(out)]
    assert render_main([*base, *argv]) == 0
    [path] = out.glob("*.yaml")
    [manifest] = yaml.safe_load_all(path.read_text())
    return dict(manifest)


def as_job(cron_job: dict[str, Any]) -> dict[str, Any]:
    """The Job a CronJob's template makes, named as the controller names it."""
    template = cron_job["spec"]["jobTemplate"]
    name = f"{cron_job['metadata']['name']}-{29_000_000:08d}"  # <name>-<minutes since epoch>
    metadata = {**template["metadata"], "name": name}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": template["spec"]}


@pytest.mark.parametrize(
    ("job", "argv"),
    [
        ("maintain", ["--schedule", "0 3 * * *", "--", "--retention-hours", "168"]),
        ("bronze_to_silver", ["--schedule", "@hourly", "--agencies", "1,2,3"]),
        ("bronze_to_silver", ["--schedule", "15 */6 * * 1-5", "--agencies", "7"]),
    ],
)
def test_a_scheduled_cronjob_validates(tmp_path: Path, job: str, argv: list[str]) -> None:
    cron_job = render_cron(tmp_path, job, *argv)

    kubernetes_validate.validate(cron_job, K8S_VERSION, strict=True)
    assert cron_job["kind"] == "CronJob"
    assert len(cron_job["metadata"]["name"]) <= 52  # the API server's limit for CronJob names
    assert server_side_problems(as_job(cron_job)) == []
    assert cron_job["spec"]["concurrencyPolicy"] == "Forbid"


def test_the_cronjob_validator_rejects_a_misspelt_field(tmp_path: Path) -> None:
    cron_job = render_cron(tmp_path, "maintain", "--schedule", "0 3 * * *")
    cron_job["spec"]["concurencyPolicy"] = cron_job["spec"].pop("concurrencyPolicy")

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(cron_job, K8S_VERSION, strict=True)
