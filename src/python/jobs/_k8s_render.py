"""`data-pipeline k8s render`: Kubernetes batch/v1 Jobs for one job over many agencies.

Two shapes (`--mode`):
- `jobs`: one Job per agency; the container gets `--agency-id <id>` in its args.
- `indexed`: one Indexed Job (`completionMode: Indexed`, `completions` = number of agencies).
  Every pod gets the same args and the env var `ETL_AGENCY_IDS=<id0>,<id1>,...`; Kubernetes sets
  `JOB_COMPLETION_INDEX` in each pod and the job settings resolve the agency as
  `ETL_AGENCY_IDS[JOB_COMPLETION_INDEX]` (so no ConfigMap and no shell are needed).

`--schedule "0 3 * * *"` renders one CronJob instead, whose Job is the one above for one agency
or (indexed) several, or, without `--agencies`, one pod running the job once: the shape of jobs
that cover every agency themselves, such as `maintain`. Its name is stable (`<prefix>-<job>`), so
applying a new rollout updates the CronJob; `concurrencyPolicy: Forbid` keeps runs from
overlapping; `--time-zone` (default Etc/UTC) says whose 03:00 it is.

The image's ENTRYPOINT is the job, so only `args` are set (`--umbrella`: the image is the
`data-pipeline` PEX and the job name is the first arg). Exit codes and the pod failure policy:

| exit | meaning (ARCHITECTURE.md)     | jobs mode      | indexed mode    |
| ---- | ----------------------------- | -------------- | --------------- |
| 0    | success                       | -              | -               |
| 1    | failed (data, bug, invariant) | FailJob        | FailIndex       |
| 2    | usage/configuration error     | FailJob        | FailJob         |
| 75   | temporary: retry later        | Count          | Count           |
| else | OOMKilled (137), signals ...  | Count          | Count           |
| -    | pod disruption (drain, evict) | Ignore         | Ignore          |

Exit 1 is deterministic for a given input, so retrying it only repeats the failure; in an
Indexed Job it fails just that agency's index. Exit 2 means the shared configuration is wrong, so
every index would fail the same way: stop the whole Job at once. Exit 75 (lease held by another
run, throttling) counts against `backoffLimit` (jobs) or `backoffLimitPerIndex` (indexed), so the
retries are bounded and spaced by the Job controller's exponential back-off (10 s, 20 s, ... 6 min).
Disruptions are not the job's fault and do not use up retries.

run_id: `--run-id` names the rollout. It labels every Job and pod (`etl-platform/run-id`) and is
passed to each container as `ETL_PARENT_RUN_ID`; each attempt generates its own run_id, because
the run history keys runs by run_id and a retried or sibling pod must not collide with it.

Store and history: a render must say where they are (`--store URL` or `ETL_STORE_URL` in `[env]`;
`--history-secret <secret>/<key>` or `ETL_HISTORY_URL` in `[secret_env]`); pods also get
`ETL_EMBEDDED_DEFAULTS=off`, so a job never falls back to a throwaway local store in /tmp.

Cloud credentials: the pods run as `--service-account`; on EKS annotate that ServiceAccount with
`eks.amazonaws.com/role-arn: arn:aws:iam::<account>:role/<role>` (IRSA) and the AWS SDK picks up
the injected web-identity token. Manifests never carry secrets (jobs._k8s_secrets): every input
(flags, args after `--`, the values file's keys and values, the agencies file) is scanned first,
and a password, token or key in any of them is refused, exit 2, without echoing it; use
`[secret_env]` or `--history-secret` (secretKeyRef) for those.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from etl_core.clock import new_run_id
from etl_core.errors import ExitCode

from jobs._k8s_manifests import (
    MAX_NAME,
    RenderError,
    Resources,
    Spec,
    dump,
    is_dns_label,
    is_dns_subdomain,
    render,
    slug,
)
from jobs._k8s_secrets import (
    HISTORY_ENV,
    STORE_ENV,
    refuse_in_argv,
    refuse_in_text,
    require_store_and_history,
)
from jobs._k8s_values import (
    RESOURCE_KEYS,
    env_values,
    label_key_ok,
    load_values,
    secret_env_refs,
    store_and_history,
)

_JOB = re.compile(r"^[a-z][a-z0-9_]*$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
# Five cron fields (numbers, names, ranges, steps, lists, *, ?) or a macro such as @daily.
_CRON_FIELD = r"[0-9A-Za-z*?/,-]+"
_CRON_MACRO = r"@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
_SCHEDULE = re.compile(rf"^({_CRON_FIELD}(\s+{_CRON_FIELD}){{4}}|{_CRON_MACRO})$")
_TIME_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
# Render's own flags whose value names a Secret rather than holding one.
_REFERENCE_FLAGS = ("--history-secret",)


def parse_agencies(text: str, where: str) -> tuple[int, ...]:
    """Agency ids separated by commas, whitespace or newlines; '#' starts a comment."""
    tokens = re.split(r"[,\s]+", re.sub(r"#[^\n]*", "", text).strip())
    ids = []
    for token in filter(None, tokens):
        if not token.isdigit():
            raise RenderError(f"{where}: agency id {token!r} is not a non-negative integer")
        ids.append(int(token))
    if not ids:
        raise RenderError(f"{where}: no agency ids")
    duplicates = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) < len(ids) else []
    if duplicates:
        raise RenderError(f"{where}: duplicate agency ids {duplicates}")
    return tuple(ids)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="data-pipeline k8s render",
        description="Render Kubernetes Jobs running <job> for agencies (see the module docstring).",
        epilog="Arguments after `--` are appended to the job's own args.",
    )
    add = parser.add_argument
    add("job", help="job name, e.g. bronze_to_silver")
    add("--image", help="image reference with a tag or digest (or `image` in the values file)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--agencies", help="comma-separated agency ids, e.g. 1,2,3")
    source.add_argument("--agencies-file", type=Path, help="file of agency ids ('-' for stdin)")
    add("--schedule", metavar="CRON", help="render a CronJob on this schedule, e.g. '0 3 * * *' "
        "(then --agencies is optional: without it one pod runs the job once)")  # fmt: skip
    add("--time-zone", help="the schedule's time zone (default Etc/UTC)")
    add("--mode", choices=("jobs", "indexed"), help="default: jobs for one agency, else indexed")
    add("--parallelism", type=int, help="pods at once (indexed mode; default 10)")
    add("--values", type=Path, help="TOML: env/secret_env/resources/labels and flag defaults")
    add("--store", metavar="URL", help=f"the jobs' object store, e.g. s3://bucket/prefix "
        f"({STORE_ENV}; required, here or in the values file)")  # fmt: skip
    history = parser.add_mutually_exclusive_group()
    history.add_argument("--history-secret", metavar="SECRET/KEY", help="a Secret's key holding "
                         f"the run history URL ({HISTORY_ENV} from a secretKeyRef)")  # fmt: skip
    history.add_argument("--history", metavar="URL", help="a run history URL without a password")
    add("--namespace", help="default: default")
    add("--service-account", help="ServiceAccount (IRSA role annotation lives there)")
    add("--run-id", help="rollout id (default: a new UUIDv7)")
    add("--backoff-limit", type=int, help="retries per Job (jobs) or per index (indexed); def. 3")
    add("--max-failed-indexes", type=int, help="indexed: fail the Job past this (default 10%%)")
    add("--ttl-seconds", type=int, help="ttlSecondsAfterFinished (default 86400)")
    add("--active-deadline-seconds", type=int, help="hard time limit per Job")
    add("--cpu", help="CPU request (default 500m)")
    add("--cpu-limit", help="CPU limit (default none)")
    add("--memory", help="memory request (default 1Gi)")
    add("--memory-limit", help="memory limit (default: the request)")
    add("--tmp-size", help="size of the /tmp emptyDir (default 2Gi)")
    add("--name-prefix", help="prefix of Job names (default etl)")
    add("--umbrella", action="store_true", default=None, help="image runs data-pipeline <job>")
    add("--out", default="-", help="directory to write <name>.yaml files into, or - for stdout")
    return parser


def _pick(flag: Any, values: Mapping[str, Any], key: str, default: Any) -> Any:
    if flag is not None:
        return flag
    return values.get(key, default)


def _check_positive(name: str, value: int | None, *, zero_ok: bool = False) -> None:
    if value is not None and (value < 0 or (value == 0 and not zero_ok)):
        raise RenderError(f"{name}: must be {'>= 0' if zero_ok else '> 0'}, got {value}")


def build_spec(args: argparse.Namespace, extra_args: Sequence[str]) -> Spec:
    """Merge flags over the values file over defaults, and validate the result."""
    values = load_values(args.values) if args.values else {}
    where = str(args.values) if args.values else "values"
    if not _JOB.match(args.job) or len(args.job) > MAX_NAME:
        raise RenderError(f"job {args.job!r}: expected a job module name like bronze_to_silver")
    schedule = _pick(args.schedule, values, "schedule", None)
    if schedule is not None and not _SCHEDULE.match(schedule.strip()):
        raise RenderError(f"--schedule {schedule!r}: expected five cron fields or @daily etc.")
    time_zone = _pick(args.time_zone, values, "time_zone", "Etc/UTC")
    if not _TIME_ZONE.match(time_zone):
        raise RenderError(f"--time-zone {time_zone!r}: expected a tz database name like Etc/UTC")
    agencies: tuple[int, ...] = ()
    if args.agencies is not None:
        agencies = parse_agencies(args.agencies, "--agencies")
    elif args.agencies_file is None:
        if schedule is None:
            raise RenderError(
                "--agencies or --agencies-file is required (or --schedule, for a job that "
                "covers every agency itself)"
            )
    else:
        path = args.agencies_file
        try:
            text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RenderError(f"--agencies-file {path}: {exc.strerror}") from None
        refuse_in_text(text, str(path))
        agencies = parse_agencies(text, str(path))
    image = _pick(args.image, values, "image", None)
    if not image:
        raise RenderError("--image is required (or `image` in the values file)")
    if not re.search(r"(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$", image.rsplit("/", 1)[-1]):
        raise RenderError(f"--image {image!r}: pin a tag or a digest")
    mode = _pick(args.mode, values, "mode", "jobs" if len(agencies) <= 1 else "indexed")
    if mode not in ("jobs", "indexed"):
        raise RenderError(f"{where} @ $.mode: expected jobs or indexed, got {mode!r}")
    if schedule is not None and mode == "jobs" and len(agencies) > 1:
        raise RenderError("--schedule renders one CronJob: use --mode indexed for many agencies")
    if mode == "indexed" and not agencies:
        raise RenderError("--mode indexed needs --agencies or --agencies-file")
    parallelism = _pick(args.parallelism, values, "parallelism", None)
    if mode == "jobs" and args.parallelism is not None:
        raise RenderError("--parallelism applies to --mode indexed only (one pod per Job)")
    run_id = args.run_id or new_run_id()
    if len(run_id) > MAX_NAME or not _LABEL_VALUE.match(run_id):
        raise RenderError(f"--run-id {run_id!r}: must be a label value ([A-Za-z0-9._-], <= 63)")
    res_values = values.get("resources", {})
    resources = Resources(
        **{
            key: _pick(getattr(args, key), res_values, key, getattr(Resources(), key))
            for key in RESOURCE_KEYS
        }
    )
    for key in RESOURCE_KEYS:
        quantity = getattr(resources, key)
        if quantity is not None and not _QUANTITY.match(str(quantity)):
            raise RenderError(f"{key.replace('_', '-')} {quantity!r}: not a Kubernetes quantity")
    labels = {str(k): str(v) for k, v in values.get("labels", {}).items()}
    for key, value in labels.items():
        if not label_key_ok(key):
            raise RenderError(f"{where} @ $.labels: {key!r} is not a label key")
        if not _LABEL_VALUE.match(value) or len(value) > MAX_NAME:
            raise RenderError(f"{where} @ $.labels.{key}: {value!r} is not a label value")
    env, secret_env = store_and_history(
        args,
        env_values(values.get("env", {}), f"{where} @ $.env"),
        secret_env_refs(values.get("secret_env", {}), f"{where} @ $.secret_env"),
    )
    spec = Spec(
        job=args.job,
        image=image,
        agencies=agencies,
        mode=mode,
        run_id=run_id,
        namespace=_pick(args.namespace, values, "namespace", "default"),
        service_account=_pick(args.service_account, values, "service_account", "etl-runner"),
        parallelism=parallelism,
        backoff_limit=_pick(args.backoff_limit, values, "backoff_limit", 3),
        max_failed_indexes=_pick(args.max_failed_indexes, values, "max_failed_indexes", None),
        ttl_seconds=_pick(args.ttl_seconds, values, "ttl_seconds_after_finished", 86400),
        active_deadline_seconds=_pick(
            args.active_deadline_seconds, values, "active_deadline_seconds", None
        ),
        name_prefix=_pick(args.name_prefix, values, "name_prefix", "etl"),
        umbrella=bool(_pick(args.umbrella, values, "umbrella", False)),
        resources=resources,
        env=env,
        secret_env=secret_env,
        labels=labels,
        extra_args=(*map(str, values.get("args", [])), *extra_args),
        schedule=None if schedule is None else " ".join(schedule.split()),
        time_zone=time_zone,
    )
    if not is_dns_label(spec.namespace):
        raise RenderError(f"namespace {spec.namespace!r}: not a DNS-1123 label")
    if not is_dns_subdomain(spec.service_account):
        raise RenderError(f"service account {spec.service_account!r}: not a DNS-1123 subdomain")
    if not slug(spec.name_prefix):
        raise RenderError(f"name prefix {spec.name_prefix!r}: no usable characters")
    _check_positive("parallelism", spec.parallelism)
    _check_positive("backoff-limit", spec.backoff_limit, zero_ok=True)
    _check_positive("max-failed-indexes", spec.max_failed_indexes, zero_ok=True)
    _check_positive("ttl-seconds", spec.ttl_seconds, zero_ok=True)
    _check_positive("active-deadline-seconds", spec.active_deadline_seconds)
    require_store_and_history(spec.job, spec.env, spec.secret_env, spec.extra_args)
    return spec


def write(manifests: Sequence[Mapping[str, Any]], out: str) -> list[Path]:
    """Write all manifests to stdout (out == '-') or one <name>.yaml per manifest into out."""
    if out == "-":
        sys.stdout.write(dump(manifests))
        return []
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for manifest in manifests:
        path = directory / f"{manifest['metadata']['name']}.yaml"
        path.write_text(dump([manifest]), encoding="utf-8")
        paths.append(path)
    return paths


def render_main(argv: list[str], *, known_jobs: Collection[str] | None = None) -> int:
    """`data-pipeline k8s render ...`; returns the exit code (0, or 2 for bad input)."""
    own, extra = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    try:  # before argparse or a check below can echo a token
        refuse_in_argv(own, "argument", references=_REFERENCE_FLAGS)
        refuse_in_argv(extra, "job argument")
    except RenderError as exc:
        print(f"data-pipeline k8s render: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    try:
        args = _parser().parse_args(own)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else int(ExitCode.USAGE)
    try:
        if known_jobs is not None and args.job not in known_jobs:
            raise RenderError(f"unknown job {args.job!r} (known: {', '.join(sorted(known_jobs))})")
        spec = build_spec(args, extra)
        paths = write(render(spec), args.out)
    except RenderError as exc:
        print(f"data-pipeline k8s render: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    except OSError as exc:
        print(f"data-pipeline k8s render: cannot write {args.out}: {exc}", file=sys.stderr)
        return int(ExitCode.FAILED)
    for path in paths:
        print(path)
    return int(ExitCode.OK)


if __name__ == "__main__":
    raise SystemExit(render_main(sys.argv[1:]))
