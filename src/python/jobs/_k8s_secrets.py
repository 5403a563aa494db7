"""What `k8s render` refuses to inline, and what it insists the pods are told.

Manifests are applied with kubectl, kept in git and shown by `kubectl get -o yaml` to anyone who
may read Jobs: a credential in them is a leak. So every string render takes in (each command-line
token, every key and value of the values file, the agencies file) is scanned before it is used
or echoed in an error, and one that carries a credential is refused, naming where it was and
never the value. Credentials reach pods only by reference: a Secret (`[secret_env]`,
`--history-secret`, a secretKeyRef) or the pod's identity (IRSA for S3).

And pods never run on the embedded local defaults (a throwaway store and SQLite history in
/tmp): a render must say where the store and the run history are.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from jobs._k8s_manifests import RenderError

# Names of variables and flags whose value is a secret by definition (AGENCIES_KEY is an
# object key, not a credential).
SECRETISH_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|HEADERS|COOKIE|"
    r"(ACCESS|API|AUTH|CLIENT|ENCRYPTION|MASTER|SESSION|SIGNING)_?KEY"
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")
# userinfo with a password, even where urlsplit gives up (an unbracketed IPv6 host, a bad port).
_USERINFO = re.compile(r"://[^\s/?#@:]*:[^\s/?#@]+@")
# user:password@host with no scheme (an image reference, a DSN fragment).
_BARE_USERINFO = re.compile(r"(?:^|[\s=,;])[^\s/@:=,;]+:[^\s/@]+@[A-Za-z0-9.-]+")
_PARAM = re.compile(
    r"(?i)(?:^|[?&;\s])(password|passwd|pwd|pass|secret|client_secret|token|access_token|"
    r"refresh_token|api_?key|sslpassword|sig|signature|x-amz-signature|x-amz-security-token|"
    r"x-amz-credential)=[^&;\s]"
)
_AUTH_HEADER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")
_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")

STORE_ENV, HISTORY_ENV, CONFIG_ENV = "ETL_STORE_URL", "ETL_HISTORY_URL", "ETL_CONFIG_PATH"
# Jobs that write somewhere other than the store: (flag, variable) that names it instead.
_STORE_ELSEWHERE = {
    "get_s3_files": ("--destination-bucket", "ETL_DESTINATION_BUCKET"),
    "generate": ("--out", "ETL_OUT"),
}


def credential_in(text: str) -> str | None:
    """What kind of credential text carries (never the value), or None."""
    for candidate in dict.fromkeys((text, unquote(text))):
        if _USERINFO.search(candidate) or any(
            _has_password(url.group()) for url in _URL.finditer(candidate)
        ):
            return "a URL with a password"
        if _BARE_USERINFO.search(candidate):
            return "credentials (user:password@host)"
        if _PARAM.search(candidate):
            return "a password, token or signature parameter"
        if _AUTH_HEADER.search(candidate):
            return "an authorization header value"
        if _AWS_KEY_ID.search(candidate):
            return "an AWS access key id"
        if _PEM.search(candidate):
            return "a private key"
    return None


def _has_password(url: str) -> bool:
    try:
        return bool(urlsplit(url).password)
    except ValueError:  # a malformed port or IPv6 host: _USERINFO has had its say
        return False


def _flag_env(flag: str) -> str:
    return "ETL_" + flag.lstrip("-").split("=", 1)[0].replace("-", "_").upper()


def refuse_in_argv(argv: Sequence[str], where: str, references: Collection[str] = ()) -> None:
    """Raise RenderError for a token of argv that carries a credential or is a secret flag (other
    than the flags in references, whose values name a Secret)."""
    flag = None
    for index, token in enumerate(argv):
        if token.startswith("--"):
            flag = token.split("=", 1)[0]
            if flag not in references and SECRETISH_NAME.search(_flag_env(flag)):
                raise RenderError(
                    f"{where} {flag}: a secret flag; put the value in a Secret and reference it "
                    f"with [secret_env] in --values"
                )
        place = f"{where} {flag}" if flag and token != flag else f"{where} [{index}]"
        _refuse(token, place, flag)


def refuse_in_values(values: Any, where: str) -> None:
    """Raise RenderError for any key or string value of the values file carrying a credential."""
    for path, text in _strings(values, "$"):
        _refuse(text, f"{where} @ {path}", None)


def refuse_in_text(text: str, where: str) -> None:
    """Raise RenderError if a whole input (a file) carries a credential."""
    _refuse(text, where, None)


def _refuse(text: str, where: str, flag: str | None) -> None:
    kind = credential_in(text)
    if kind is None:
        return
    variable = _flag_env(flag) if flag else "ETL_..."
    raise RenderError(
        f"{where}: carries {kind}; manifests never inline credentials: put the value in a Secret "
        f'and reference it ([secret_env] {variable} = "<secret>/<key>" in --values, or '
        f"--history-secret <secret>/<key> for the run history); S3 credentials come from the pod's "
        f"service account (IRSA)"
    )


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield f"{path} (a key)", str(key)  # checked first: a bad key is never echoed below
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def require_store_and_history(
    job: str, env: Mapping[str, str], secret_env: Mapping[str, Any], args: Sequence[str]
) -> None:
    """Raise RenderError unless the pods are told where the store and the run history are."""
    names = set(env) | set(secret_env)
    flags = {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}
    if CONFIG_ENV in names or "--config" in flags:
        return  # a config file in the image; the job itself refuses it if it lacks them (exit 2)
    store_flag, store_env = _STORE_ELSEWHERE.get(job, ("--store", STORE_ENV))
    missing = []
    if not ({STORE_ENV, store_env} & names or {"--store", store_flag} & flags):
        missing.append(f"the object store (--store URL, or {STORE_ENV} in [env] of --values)")
    if HISTORY_ENV not in names and "--history" not in flags:
        missing.append(
            f"the run history (--history-secret <secret>/<key>, or {HISTORY_ENV} in [secret_env]"
            f" of --values; --history URL for one without a password)"
        )
    if missing:
        raise RenderError(
            f"{job}: say where {' and '.join(missing)} are: pods never use the embedded local "
            "defaults (throwaway files in the pod's /tmp)"
        )
