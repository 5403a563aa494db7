"""Parse and validate object-store, run-history and record-source URLs; redact passwords."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Literal

import attrs

from etl_core.errors import ConfigError

__all__ = [
    "HistoryUrl",
    "SecretUrl",
    "SourceUrl",
    "StoreUrl",
    "parse_history_url",
    "parse_source_url",
    "parse_store_url",
    "redact",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# S3 bucket naming rules (3-63 chars, lower-case letters, digits, dots, hyphens).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SECRET_PARAMS = frozenset({"password", "passwd", "pwd", "secret", "token", "sslpassword"})
_MASK = "***"


@attrs.frozen
class StoreUrl:
    """An object store: a local directory or an S3 bucket + key prefix."""

    kind: Literal["file", "s3"]
    path: Path | None = None  # kind == "file"; relative paths resolve against the cwd
    bucket: str | None = None  # kind == "s3"
    prefix: str = ""  # kind == "s3"; no leading or trailing "/"


@attrs.frozen
class HistoryUrl:
    """A run history: a SQLite file or a PostgreSQL DSN (with an optional `schema` parameter)."""

    kind: Literal["sqlite", "postgresql"]
    path: Path | None = None  # kind == "sqlite"
    dsn: str | None = None  # kind == "postgresql", `schema` parameter removed
    schema: str = "public"


@attrs.frozen
class SourceUrl:
    """A record source: PostgreSQL, an HTTP(S) API, or bronze files in an object store."""

    kind: Literal["postgresql", "http", "store"]
    url: str  # the URL to hand to the adapter (postgres:// normalised to postgresql://)
    store: StoreUrl | None = None  # kind == "store"


class SecretUrl(str):
    """A URL that may carry a password, shown redacted wherever it is shown: str(), repr(),
    f-strings, %-formatting (so logs) and the converter's unstructure (so run parameters).

    A str, so parsers and adapters read it as the URL it is; reveal() is the plain text for a
    client that needs the password. Concatenating or json.dumps-ing it gives the raw text:
    build shown text with f-strings, stored text with the converter.
    """

    __slots__ = ()

    def reveal(self) -> str:
        """The URL as given, password included: only for the client that connects with it."""
        return str.__str__(self)

    def __str__(self) -> str:
        return redact(self.reveal())

    def __repr__(self) -> str:
        return repr(str(self))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _plain(url: str) -> str:
    # What a parser returns reaches clients (yarl, asyncpg), which str() a str subclass.
    return url.reveal() if isinstance(url, SecretUrl) else url


def redact(url: str) -> str:
    """url with any password (userinfo or secret query parameter) replaced by ***; never raises."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return _redact_fallback(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{_MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in _SECRET_PARAMS for key, _ in pairs):
            query = "&".join(
                f"{key}={_MASK if key.lower() in _SECRET_PARAMS else urllib.parse.quote(value)}"
                for key, value in pairs
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def _redact_fallback(url: str) -> str:
    # Unparseable (e.g. a bad IPv6 literal): mask whatever sits between "//user:" and "@".
    return re.sub(r"(//[^/:@]*:)[^@/]*@", rf"\g<1>{_MASK}@", url)


def _error(what: str, url: str, problem: str) -> ConfigError:
    return ConfigError(f"invalid {what} URL {redact(url)!r}: {problem}")


def _scheme(url: str) -> str | None:
    match = _SCHEME.match(url)
    # A one-letter "scheme" is a Windows drive, not a URL; treat it as a path.
    if match is None or len(match.group(1)) == 1:
        return None
    return match.group(1).lower()


def parse_store_url(url: str) -> StoreUrl:
    """`s3://bucket/prefix`, `file:///abs`, `file://./rel`, or a plain path. Raises ConfigError."""
    url = _plain(url)
    if not url.strip():
        raise _error("object store", url, "empty")
    scheme = _scheme(url)
    if scheme is None:
        return StoreUrl(kind="file", path=Path(url))
    if scheme == "file":
        return StoreUrl(kind="file", path=_file_path(url))
    if scheme == "s3":
        return _s3(url)
    raise _error(
        "object store", url, f"unsupported scheme {scheme!r} (expected s3://, file:// or a path)"
    )


def _file_path(url: str) -> Path:
    rest = url[len("file:") :]
    if rest.startswith("//"):
        rest = rest[2:]
        # file://./x and file://../x are relative; file:///x is absolute; file://host/x is not ours.
        if not rest.startswith(("/", ".")):
            host = rest.split("/", 1)[0]
            raise _error(
                "object store",
                url,
                f"file URLs cannot name a host ({host!r}); use file:///absolute/path or file://./rel",
            )
    path = urllib.parse.unquote(rest)
    if not path:
        raise _error("object store", url, "no path")
    return Path(path)


def _s3(url: str) -> StoreUrl:
    parts = urllib.parse.urlsplit(url)
    if parts.query or parts.fragment:
        raise _error("object store", url, "S3 URLs take no query or fragment")
    if "@" in parts.netloc:
        raise _error(
            "object store", url, "credentials do not belong in the URL (use the AWS chain)"
        )
    bucket = parts.netloc
    if not bucket:
        raise _error("object store", url, "no bucket (expected s3://bucket/prefix)")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise _error("object store", url, f"{bucket!r} is not a valid S3 bucket name")
    prefix = parts.path.strip("/")
    if "//" in prefix:
        raise _error("object store", url, "empty path segment in the prefix")
    return StoreUrl(kind="s3", bucket=bucket, prefix=prefix)


def parse_history_url(url: str) -> HistoryUrl:
    """`sqlite:///rel/path`, `sqlite:////abs/path`, `postgresql://...`/`postgres://...`."""
    url = _plain(url)
    scheme = _scheme(url)
    if scheme == "sqlite":
        return _sqlite(url)
    if scheme in ("postgresql", "postgres"):
        dsn, schema = _postgres(url, "run history")
        return HistoryUrl(kind="postgresql", dsn=dsn, schema=schema)
    found = f"scheme {scheme!r}" if scheme else "no scheme"
    raise _error("run history", url, f"{found}; expected sqlite:///path or postgresql://...")


def _sqlite(url: str) -> HistoryUrl:
    # SQLAlchemy's convention: sqlite:///relative/path and sqlite:////absolute/path.
    rest = url[len("sqlite:") :]
    if not rest.startswith("///"):
        raise _error(
            "run history", url, "expected sqlite:///relative/path or sqlite:////absolute/path"
        )
    path = urllib.parse.unquote(rest[3:].split("?", 1)[0])
    if not path or path.endswith("/"):
        raise _error("run history", url, "no database file name")
    return HistoryUrl(kind="sqlite", path=Path(path))


def _postgres(url: str, what: str) -> tuple[str, str]:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _error(what, url, str(exc)) from None
    # No host is fine: libpq and asyncpg then use PGHOST or the local socket.
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if port == 0:
        raise _error(what, url, "port 0")
    schema = "public"
    kept = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", schema):
        raise _error(what, url, f"schema {schema!r} is not a plain SQL identifier")
    # Rebuilt by hand: urlunsplit turns an empty host ("postgresql:///db") into "postgresql:/db".
    query_text = urllib.parse.urlencode(kept)
    dsn = f"postgresql://{parts.netloc}{parts.path}" + (f"?{query_text}" if query_text else "")
    return dsn, schema


def parse_source_url(url: str) -> SourceUrl:
    """`postgresql://...`, `http(s)://...`, or an object-store URL of bronze files."""
    url = _plain(url)
    scheme = _scheme(url)
    if scheme in ("postgresql", "postgres"):
        dsn, _ = _postgres(url, "record source")
        return SourceUrl(kind="postgresql", url=dsn)
    if scheme in ("http", "https"):
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname:
            raise _error("record source", url, "no host")
        return SourceUrl(kind="http", url=url)
    if scheme not in (None, "file", "s3"):
        raise _error(
            "record source",
            url,
            f"unsupported scheme {scheme!r} (expected postgresql://, http(s)://, s3:// or file://)",
        )
    return SourceUrl(kind="store", url=url, store=parse_store_url(url))
