"""Unit tests of `data-pipeline k8s render`: shapes, names, values file, errors, determinism."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from jobs._k8s_manifests import MAX_NAME, is_dns_label, resource_name
from jobs._k8s_render import render_main

IMAGE = "registry.example/etl/bronze_to_silver:1.4.2"
RUN_ID = "0190a1b2-c3d4-7e5f-8a9b-0123456789ab"
# Where the pods' store and run history are: every render must say.
CONFIGURED = ("--store", "s3://etl-bucket/prod", "--history-secret", "etl-run-history/dsn")


def run(
    capsys: pytest.CaptureFixture[str], *argv: str, configured: bool = True
) -> list[dict[str, Any]]:
    base = ["bronze_to_silver", "--image", IMAGE, "--run-id", RUN_ID]
    code = render_main([*base, *(CONFIGURED if configured else ()), *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return list(yaml.safe_load_all(out))


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = render_main(list(argv))
    _, err = capsys.readouterr()
    assert code == 2
    return err


def container(job: dict[str, Any]) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env(job: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(job)["env"]}


def rules(job: dict[str, Any]) -> dict[int, str]:
    return {
        code: rule["action"]
        for rule in job["spec"]["podFailurePolicy"]["rules"]
        for code in rule.get("onExitCodes", {}).get("values", [])
    }


def test_one_agency_renders_one_plain_job_that_passes_the_agency_as_an_arg(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [job] = run(capsys, "--agencies", "10")

    assert job["kind"] == "Job"
    assert job["apiVersion"] == "batch/v1"
    assert "completionMode" not in job["spec"]
    assert job["spec"]["backoffLimit"] == 3
    assert container(job)["args"] == ["--agency-id", "10"]
    assert container(job)["image"] == IMAGE
    assert "command" not in container(job)  # the image's ENTRYPOINT is the job
    assert env(job)["ETL_PARENT_RUN_ID"] == RUN_ID
    assert job["metadata"]["labels"]["etl-platform/agency-id"] == "10"


def test_many_agencies_render_one_indexed_job_with_the_ids_in_env(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [job] = run(capsys, "--agencies", "30,10,20", "--parallelism", "2")
    spec = job["spec"]

    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == 3
    assert spec["parallelism"] == 2
    assert spec["backoffLimitPerIndex"] == 3
    assert spec["maxFailedIndexes"] == 1
    assert "backoffLimit" not in spec
    assert env(job)["ETL_AGENCY_IDS"] == "30,10,20"  # index order = the order given
    assert container(job)["args"] == []


def test_jobs_mode_renders_one_job_per_agency_with_distinct_valid_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    jobs = run(capsys, "--agencies", "1,2,3", "--mode", "jobs")

    names = [j["metadata"]["name"] for j in jobs]
    assert len(set(names)) == 3
    assert all(is_dns_label(n) for n in names)
    assert [container(j)["args"] for j in jobs] == [["--agency-id", str(i)] for i in (1, 2, 3)]


def test_exit_codes_map_to_pod_failure_actions_per_mode(capsys: pytest.CaptureFixture[str]) -> None:
    [plain] = run(capsys, "--agencies", "1")
    [indexed] = run(capsys, "--agencies", "1,2")

    assert rules(plain) == {1: "FailJob", 2: "FailJob", 75: "Count"}
    assert rules(indexed) == {1: "FailIndex", 2: "FailJob", 75: "Count"}
    disruption = indexed["spec"]["podFailurePolicy"]["rules"][0]
    assert disruption["action"] == "Ignore"
    assert disruption["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]


def test_pod_is_locked_down_and_has_a_writable_tmp(capsys: pytest.CaptureFixture[str]) -> None:
    [job] = run(capsys, "--agencies", "1")
    pod = job["spec"]["template"]["spec"]
    security = container(job)["securityContext"]

    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65534
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container(job)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}]
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400


def test_umbrella_image_gets_the_job_name_first_and_extra_args_last(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [job] = run(capsys, "--agencies", "7", "--umbrella", "--", "--dry-run")

    assert container(job)["args"] == ["bronze_to_silver", "--agency-id", "7", "--dry-run"]


def test_values_file_supplies_env_resources_labels_and_flags_win(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    values = tmp_path / "values.toml"
    values.write_text(
        """
namespace = "etl"
service_account = "etl-s3"
backoff_limit = 5
args = ["--max-dead-letter-ratio", "0.01"]
[resources]
cpu = "250m"
memory = "2Gi"
[env]
ETL_STORE_URL = "s3://bucket/prefix"
OTEL_TRACES_EXPORTER = "otlp"
OTEL_METRIC_EXPORT_INTERVAL = 5000
[secret_env]
ETL_HISTORY_URL = "etl-db/url"
[labels]
team = "data"
"""
    )
    [job] = run(capsys, "--agencies", "1", "--values", str(values), "--backoff-limit", "1",
                configured=False)  # fmt: skip
    resources = container(job)["resources"]

    assert job["metadata"]["namespace"] == "etl"
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "etl-s3"
    assert job["spec"]["backoffLimit"] == 1
    assert resources["requests"]["cpu"] == "250m"
    assert resources["limits"] == {"memory": "2Gi"}
    assert env(job)["ETL_STORE_URL"] == "s3://bucket/prefix"
    assert env(job)["OTEL_METRIC_EXPORT_INTERVAL"] == "5000"
    assert env(job)["ETL_HISTORY_URL"] == {"secretKeyRef": {"name": "etl-db", "key": "url"}}
    assert job["metadata"]["labels"]["team"] == "data"
    assert container(job)["args"] == ["--agency-id", "1", "--max-dead-letter-ratio", "0.01"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('ETL_DB_PASSWORD = "x"', "looks like a secret"),
        ('ETL_HISTORY_URL = "postgresql://etl:hunter2@db/etl"', "carries a URL with a password"),
        ('AWS_ACCESS_KEY_ID = "AKIA"', "only ETL_* and OTEL_*"),
        ('ETL_AGENCY_ID = "3"', "set by the renderer"),
        ('OTEL_EXPORTER_OTLP_HEADERS = "api-key=abc"', "looks like a secret"),
    ],
)
def test_values_env_refuses_secrets_and_foreign_variables(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, line: str, message: str
) -> None:
    values = tmp_path / "values.toml"
    values.write_text(f"[env]\n{line}\n")

    err = fails(capsys, "j", "--image", IMAGE, "--agencies", "1", "--values", str(values))

    assert message in err
    assert "hunter2" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--image", "reg/img", "--agencies", "1"], "pin a tag or a digest"),
        (["--image", IMAGE, "--agencies", "1,x"], "not a non-negative integer"),
        (["--image", IMAGE, "--agencies", "1,2,1"], "duplicate agency ids [1]"),
        (["--image", IMAGE, "--agencies", "1", "--parallelism", "3"], "indexed only"),
        (["--image", IMAGE, "--agencies", "1", "--namespace", "Bad_NS"], "DNS-1123"),
        (["--image", IMAGE, "--agencies", "1", "--memory", "lots"], "not a Kubernetes quantity"),
        (["--image", IMAGE, "--agencies", "1", "--run-id", "a b"], "label value"),
        (["--agencies", "1"], "--image is required"),
    ],
)
def test_bad_input_is_a_usage_error_naming_the_input(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    err = fails(capsys, "bronze_to_silver", *argv)

    assert message in err


def test_unknown_job_is_refused_when_the_registry_is_given(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = render_main(["nope", "--image", IMAGE, "--agencies", "1"], known_jobs={"generate"})

    assert code == 2
    assert "unknown job 'nope'" in capsys.readouterr().err


def test_help_exits_0_and_a_bad_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert render_main(["--help"]) == 0
    assert render_main(["bronze_to_silver", "--bogus"]) == 2


def test_agencies_file_accepts_lines_commas_and_comments(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "agencies.txt"
    path.write_text("# pilot agencies\n10\n20, 30  # late joiners\n\n")

    [job] = run(capsys, "--agencies-file", str(path))

    assert env(job)["ETL_AGENCY_IDS"] == "10,20,30"


def test_long_names_are_cut_to_a_dns_label_keeping_the_run_hash() -> None:
    name = resource_name("etl", "a_very_long_job_name_" * 5, "a123456", unique=RUN_ID)

    assert len(name) == MAX_NAME
    assert is_dns_label(name)
    assert name == resource_name("etl", "a_very_long_job_name_" * 5, "a123456", unique=RUN_ID)
    assert name != resource_name("etl", "a_very_long_job_name_" * 5, "a123456", unique="other")


def test_jobs_keep_distinct_names_when_the_agency_part_is_cut_off(
    capsys: pytest.CaptureFixture[str],
) -> None:
    jobs = run(capsys, "--agencies", "1,2", "--mode", "jobs", "--name-prefix", "p" * 70)

    names = [j["metadata"]["name"] for j in jobs]
    assert len(set(names)) == 2
    assert all(is_dns_label(n) for n in names)


def test_indexed_job_name_leaves_room_for_the_pod_hostname_suffix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [job] = run(capsys, "--agencies", ",".join(map(str, range(500))), "--name-prefix", "x" * 80)

    assert len(f"{job['metadata']['name']}-499") <= MAX_NAME


def test_same_input_renders_the_same_bytes_and_out_dir_gets_one_file_per_job(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["bronze_to_silver", "--image", IMAGE, "--run-id", RUN_ID, "--agencies", "1,2"]
    argv += CONFIGURED
    assert render_main([*argv, "--mode", "jobs", "--out", str(tmp_path / "a")]) == 0
    assert render_main([*argv, "--mode", "jobs", "--out", str(tmp_path / "b")]) == 0

    first = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(first) == 2
    for name in first:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert all(Path(line).exists() for line in capsys.readouterr().out.split())


def test_without_run_id_a_fresh_one_labels_the_rollout(capsys: pytest.CaptureFixture[str]) -> None:
    code = render_main(["bronze_to_silver", "--image", IMAGE, "--agencies", "1", *CONFIGURED])
    [job] = list(yaml.safe_load_all(capsys.readouterr().out))

    assert code == 0
    run_id = job["metadata"]["labels"]["etl-platform/run-id"]
    assert env(job)["ETL_PARENT_RUN_ID"] == run_id
    assert len(run_id) == 36


def cron(capsys: pytest.CaptureFixture[str], job: str, *argv: str) -> dict[str, Any]:
    code = render_main([job, "--image", IMAGE, "--run-id", RUN_ID, *CONFIGURED, *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    [manifest] = yaml.safe_load_all(out)
    assert manifest["kind"] == "CronJob"
    return dict(manifest)


def test_a_schedule_without_agencies_renders_one_cronjob_running_the_job_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = cron(capsys, "maintain", "--schedule", "0 3 * * *", "--", "--retention-hours", "72")
    spec = manifest["spec"]
    job = {"metadata": spec["jobTemplate"]["metadata"], "spec": spec["jobTemplate"]["spec"]}

    assert manifest["apiVersion"] == "batch/v1"
    assert manifest["metadata"]["name"] == "etl-maintain"
    assert spec["schedule"] == "0 3 * * *"
    assert spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert container(job)["args"] == ["--retention-hours", "72"]
    assert "etl-platform/agency-id" not in manifest["metadata"]["labels"]
    assert job["spec"]["backoffLimit"] == 3
    assert rules(job) == {1: "FailJob", 2: "FailJob", 75: "Count"}
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_a_cronjob_keeps_its_name_across_rollouts_so_applying_updates_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = cron(capsys, "maintain", "--schedule", "@daily")
    code = render_main(
        ["maintain", "--image", IMAGE, "--schedule", "@daily", "--run-id", "r2", *CONFIGURED]
    )
    [second] = yaml.safe_load_all(capsys.readouterr().out)

    assert code == 0
    assert first["metadata"]["name"] == second["metadata"]["name"]
    assert second["metadata"]["labels"]["etl-platform/run-id"] == "r2"


def test_a_schedule_over_several_agencies_wraps_the_indexed_job(
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = cron(capsys, "bronze_to_silver", "--schedule", "*/30 * * * *",
                    "--agencies", "3,1,2", "--time-zone", "Europe/Paris")  # fmt: skip
    job_spec = manifest["spec"]["jobTemplate"]["spec"]

    assert manifest["spec"]["timeZone"] == "Europe/Paris"
    assert job_spec["completionMode"] == "Indexed"
    assert job_spec["completions"] == 3
    assert env({"spec": job_spec})["ETL_AGENCY_IDS"] == "3,1,2"
    assert len(manifest["metadata"]["name"]) <= 52


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["maintain"], "--agencies or --agencies-file is required (or --schedule"),
        (["maintain", "--schedule", "0 3 * *"], "expected five cron fields"),
        (["maintain", "--schedule", "@daily", "--time-zone", "Paris time"], "tz database name"),
        (["j", "--schedule", "@daily", "--agencies", "1,2", "--mode", "jobs"], "--mode indexed"),
        (["maintain", "--schedule", "@daily", "--mode", "indexed"], "needs --agencies"),
    ],
)
def test_bad_schedules_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    err = fails(capsys, *argv, "--image", IMAGE)

    assert message in err
