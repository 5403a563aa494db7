"""`data-pipeline k8s render` as a subprocess: a credential given through any input never reaches
the manifests (nor the messages), and Jobs are rendered only when the store and history are set."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

# Imported, not only run: the build ships the CLI (and the render modules) with the test.
from jobs import cli

from e2e.cli_support import cli as run_cli

IMAGE = "registry.example/etl/bronze_to_silver:1.4.2"
PASSWORD = "PgPa55word"
DSN = f"postgresql://u:{PASSWORD}@db/etl"
# Store and history as job args (no password in them): every case is a render that would succeed
# but for the credential in it.
JOB_CONFIG = ["--store", "s3://etl-bucket/prod", "--history", "postgresql://etl@db/etl"]


def render(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return run_cli(cwd, "k8s", "render", *argv, timeout=120)


def everything_written(result: subprocess.CompletedProcess[str], out: Path) -> str:
    files = sorted(out.rglob("*")) if out.exists() else []
    return "\n".join([result.stdout, result.stderr, *(f.read_text() for f in files if f.is_file())])


# (values file, extra flags, args after --): one input path each.
CASES = {
    "values args, flag then value": (f'args = ["--history", "{DSN}"]\n', [], []),
    "values args, --flag=value": (f'args = ["--history={DSN}"]\n', [], []),
    "values args, a secret flag": (f'args = ["--api-token", "{PASSWORD}"]\n', [], []),
    "job args after --": ("", [], ["--history", DSN]),
    "job args after --, a secret flag": ("", [], ["--password", PASSWORD]),
    "env URL with a leading space": (f'[env]\nETL_HISTORY_URL = " {DSN}"\n', [], []),
    "env URL with a leading tab": (f'[env]\nETL_HISTORY_URL = "\\t{DSN}"\n', [], []),
    "env URL, upper-case scheme": (
        f'[env]\nETL_HISTORY_URL = "POSTGRESQL://u:{PASSWORD}@db/etl"\n',
        [],
        [],
    ),
    "env URL, percent-encoded": (
        f'[env]\nETL_HISTORY_URL = "postgresql://u%3A{PASSWORD}%40db/x"\n',
        [],
        [],
    ),
    "env URL, password parameter": (
        f'[env]\nETL_SOURCE_URL = "https://api.example/v1?agency=1&token={PASSWORD}"\n',
        [],
        [],
    ),
    "env libpq key=value DSN": (
        f'[env]\nETL_HISTORY_URL = "host=db password={PASSWORD}"\n',
        [],
        [],
    ),
    "env OTLP endpoint with userinfo": (
        f'[env]\nOTEL_EXPORTER_OTLP_ENDPOINT = "https://u:{PASSWORD}@collector:4318"\n',
        [],
        [],
    ),
    "env bearer token": (f'[env]\nETL_SOURCE_AUTH = "Bearer {PASSWORD}{PASSWORD}"\n', [], []),
    "env secret-looking name": (f'[env]\nETL_DB_PASSWORD = "{PASSWORD}"\n', [], []),
    "secret_env given a URL": (f'[secret_env]\nETL_HISTORY_URL = "{DSN}"\n', [], []),
    "secret_env key holding it": (f'[secret_env]\nETL_HISTORY_URL = "db/u:{PASSWORD}@x"\n', [], []),
    "a label key": (f'[labels]\n"{DSN}" = "x"\n', [], []),
    "a values setting": (f'service_account = "u:{PASSWORD}@x"\n', [], []),
    "--history": ("", ["--history", DSN], []),
    "--store": ("", ["--store", f"https://u:{PASSWORD}@minio.example/bucket"], []),
    "--image with registry credentials": (
        "",
        ["--image", f"u:{PASSWORD}@registry.example/b:1"],
        [],
    ),
    "--name-prefix": ("", ["--name-prefix", DSN], []),
    "--namespace=": ("", [f"--namespace={DSN}"], []),
    "the agencies file": ("", ["--agencies-file", "agencies.txt"], []),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_credential_in_any_input_is_refused_and_appears_nowhere(
    tmp_path: Path, case: str
) -> None:
    values_text, flags, job_args = CASES[case]
    values = tmp_path / "values.toml"
    values.write_text(values_text)
    (tmp_path / "agencies.txt").write_text(f"1\n2\n# {DSN}\n")
    out = tmp_path / "out"
    agencies = [] if "--agencies-file" in flags else ["--agencies", "1,2,3"]
    argv = ["bronze_to_silver", "--image", IMAGE, *agencies, "--values", str(values)]
    argv += [*flags, "--out", str(out)]

    result = render(tmp_path, *argv, "--", *job_args, *JOB_CONFIG)

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert PASSWORD not in everything_written(result, out)
    assert PASSWORD.lower() not in everything_written(result, out).lower()
    assert not out.exists() or not list(out.iterdir())
    [line] = result.stderr.splitlines()
    assert line.startswith("data-pipeline k8s render: ")


def test_credentials_by_reference_render_as_secret_key_refs_and_irsa(tmp_path: Path) -> None:
    values = tmp_path / "values.toml"
    values.write_text(
        'service_account = "etl-runner"\n'
        "[env]\n"
        'ETL_STORE_URL = "s3://etl-bucket/prod"\n'
        'OTEL_EXPORTER_OTLP_ENDPOINT = "http://otel-collector.observability:4318"\n'
        "[secret_env]\n"
        'ETL_SOURCE_URL = "etl-source/url"\n'
    )
    argv = ["bronze_to_silver", "--image", IMAGE, "--agencies", "1,2,3", "--values", str(values)]

    result = render(tmp_path, *argv, "--history-secret", "etl-run-history/dsn")

    assert result.returncode == 0, result.stderr
    [job] = yaml.safe_load_all(result.stdout)
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["containers"][0]["env"]}
    assert env["ETL_HISTORY_URL"] == {"secretKeyRef": {"name": "etl-run-history", "key": "dsn"}}
    assert env["ETL_SOURCE_URL"] == {"secretKeyRef": {"name": "etl-source", "key": "url"}}
    assert env["ETL_STORE_URL"] == "s3://etl-bucket/prod"  # S3 credentials: IRSA, not env
    assert env["ETL_EMBEDDED_DEFAULTS"] == "off"
    assert pod["serviceAccountName"] == "etl-runner"
    assert "AWS_" not in result.stdout


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ([], ["the object store", "the run history"]),
        (["--store", "s3://etl-bucket/prod"], ["the run history"]),
        (["--history-secret", "etl-run-history/dsn"], ["the object store"]),
    ],
)
def test_render_refuses_jobs_that_would_run_on_the_embedded_defaults(
    tmp_path: Path, given: list[str], missing: list[str]
) -> None:
    result = render(tmp_path, "bronze_to_silver", "--image", IMAGE, "--agencies", "1,2,3", *given)

    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert f"{cli.PROG} k8s render: bronze_to_silver: say where " in line
    for what in ("the object store", "the run history"):
        assert (what in line) == (what in missing), line
