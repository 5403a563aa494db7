"""HttpRecordSource: an agency's records from a paginated JSON API over aiohttp, resumable.

Retries use etl_core.adapters.backoff rather than stamina, whose waits (Retry-After included)
cannot be observed in tests without sleeping them; see that module's docstring.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import attrs
from yarl import URL

from etl_core.adapters.backoff import Backoff
from etl_core.errors import ConfigError, SourceError, TemporaryFailure
from etl_core.model import SourceBatch
from etl_core.urls import redact

END = "end"  # checkpoint of old: resuming from it reads nothing (kept readable)
TAIL = "tail"  # checkpoint after the last page: `tail:<records it had>:<its position>`


@attrs.frozen
class CursorPaging:
    """`?<param>=<cursor>`; the next cursor is at `next_path` in the body, null on the last page."""

    param: str = "cursor"
    next_path: str = "next_cursor"


@attrs.frozen
class NextLinkPaging:
    """Follow the URL at `next_path` in the body, or the `Link: <...>; rel="next"` header."""

    next_path: str | None = "next"


@attrs.frozen
class PageNumberPaging:
    """`?<param>=<n>[&<size_param>=<size>]`; a short or empty page is the last one."""

    param: str = "page"
    first: int = 1
    size_param: str | None = "per_page"
    size: int = attrs.field(default=100, validator=attrs.validators.ge(1))


Paging = CursorPaging | NextLinkPaging | PageNumberPaging


@attrs.frozen
class HttpSourceConfig:
    """Where and how to read one API. `url` may contain `{agency_id}`; `records_path` is a dotted
    path to the list of records ("" when the body is the list). `auth_env` names the environment
    variable holding the `auth_header` value: the opener reads it, the adapter never does.
    With `since_param` and `since`, every request asks only for what changed since then
    (`?updated_since=<since>`, inclusive as such APIs are): an incremental pull."""

    url: str
    paging: Paging = CursorPaging()
    records_path: str = "data"
    agency_param: str | None = "agency_id"
    auth_header: str = "Authorization"
    auth_env: str | None = None
    timeout_s: float = 30.0
    max_retry_after_s: float = 300.0
    since_param: str | None = None
    since: str | None = None


@attrs.define
class HttpRecordSource:
    """RecordSource over a paginated API; checkpoint = where the next page is, as text:
    `cursor:<cursor>`, `next:<url>`, `page:<n>`; after the last page `tail:<n>:<its position>`
    (position "" for the first page): resuming there asks for that page again and returns only
    what follows its first n records, so records appended upstream since are read, and nothing
    twice. (`end`, the old last checkpoint, still reads as nothing more.)

    429 (honouring Retry-After, in seconds or as an HTTP date), 5xx and dropped connections are
    retried with capped, jittered backoff; when attempts run out (or Retry-After exceeds
    max_retry_after_s) TemporaryFailure (exit 75). Other 4xx, redirects and bad JSON: SourceError.
    Credentials are only ever sent to the configured origin: next links elsewhere are refused.
    """

    session: aiohttp.ClientSession = attrs.field(repr=False)
    config: HttpSourceConfig
    auth: str | None = attrs.field(default=None, repr=False)
    backoff: Backoff = Backoff()

    async def batches(
        self, agency_id: int, checkpoint: str | None = None
    ) -> AsyncIterator[SourceBatch]:
        """Non-empty batches after checkpoint, one per page. SourceError / TemporaryFailure."""
        base = URL(self.config.url.replace("{agency_id}", str(int(agency_id))))
        if self.config.agency_param:
            base = base.update_query({self.config.agency_param: str(agency_id)})
        if self.config.since_param and self.config.since:
            base = base.update_query({self.config.since_param: self.config.since})
        position, skip = self._parse(checkpoint)
        if position == END:
            return
        while True:
            url = self._url(base, position)
            body, links = await self._get_json(url)
            records = _records(body, self.config.records_path, url)
            page, position = position, self._next(base, url, position, body, links, len(records))
            fresh, skip = records[skip:], 0
            if fresh:
                last = position == END
                yield SourceBatch(
                    records=fresh,
                    checkpoint=f"{TAIL}:{len(records)}:{page or ''}" if last else position,
                )
            if position == END:
                return

    # -- paging --------------------------------------------------------------------------------

    def _parse(self, checkpoint: str | None) -> tuple[str | None, int]:
        """(position, records of its page already read) of a checkpoint, validated against this
        source's paging style."""
        if checkpoint is None or checkpoint == END:
            return checkpoint, 0
        kind, _, rest = checkpoint.partition(":")
        if kind == TAIL:
            count, colon, page = rest.partition(":")
            if not colon or not count.isdigit():
                raise SourceError(f"checkpoint {checkpoint!r} does not fit: tail:<n>:<position>")
            return (self._position(page) if page else None), int(count)
        return self._position(checkpoint), 0

    def _position(self, checkpoint: str) -> str:
        """Validate a page position against this source's paging style."""
        kind, _, value = checkpoint.partition(":")
        paging = self.config.paging
        expected = {CursorPaging: "cursor", NextLinkPaging: "next", PageNumberPaging: "page"}
        valid = kind == expected[type(paging)] and bool(value)
        if valid and isinstance(paging, PageNumberPaging):
            valid = value.isdigit()
        if not valid:
            raise SourceError(f"checkpoint {checkpoint!r} does not fit {type(paging).__name__}")
        return checkpoint

    def _url(self, base: URL, position: str | None) -> URL:
        paging = self.config.paging
        kind, _, value = (position or "").partition(":")
        if isinstance(paging, CursorPaging):
            return base.update_query({paging.param: value}) if value else base
        if isinstance(paging, NextLinkPaging):
            return self._same_origin(base, URL(value)) if value else base
        query = {paging.param: value or str(paging.first)}
        if paging.size_param:
            query[paging.size_param] = str(paging.size)
        return base.update_query(query)

    def _next(
        self, base: URL, url: URL, position: str | None, body: Any, links: Any, count: int
    ) -> str:
        paging = self.config.paging
        if isinstance(paging, CursorPaging):
            cursor = _at(body, paging.next_path)
            return f"cursor:{cursor}" if cursor not in (None, "") else END
        if isinstance(paging, NextLinkPaging):
            if paging.next_path is None:
                link = links.get("next", {}).get("url")
            else:
                link = _at(body, paging.next_path)
            if not link:
                return END
            return f"next:{self._same_origin(base, url.join(URL(str(link))))}"
        page = int(position.partition(":")[2]) if position else paging.first
        short = paging.size_param is not None and count < paging.size
        return END if count == 0 or short else f"page:{page + 1}"

    def _same_origin(self, base: URL, url: URL) -> URL:
        if not url.is_absolute() or url.origin() != base.origin():
            raise SourceError(
                f"next link {redact(str(url))} leaves {base.origin()}: refused (credentials)"
            )
        return url

    # -- transport -----------------------------------------------------------------------------

    async def _get_json(self, url: URL) -> tuple[Any, Any]:
        headers = {self.config.auth_header: self.auth} if self.auth else {}
        shown = redact(str(url))
        for attempt in range(1, self.backoff.attempts + 1):
            wait = 0.0
            try:
                async with self.session.get(url, headers=headers, allow_redirects=False) as resp:
                    if resp.status == 429 or resp.status >= 500:
                        wait = self._retry_after(resp, shown)
                        problem = f"HTTP {resp.status}"
                    elif resp.status >= 300:
                        text = (await resp.text(errors="replace"))[:300]
                        raise SourceError(f"GET {shown}: HTTP {resp.status}: {text}")
                    else:
                        return await _json(resp, shown), resp.links
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt == self.backoff.attempts:
                raise TemporaryFailure(f"GET {shown}: {problem} after {attempt} attempts")
            await self.backoff.pause(attempt - 1, at_least=wait)
        raise AssertionError("unreachable: Backoff.attempts >= 1")

    def _retry_after(self, resp: aiohttp.ClientResponse, shown: str) -> float:
        seconds = _retry_after_seconds(resp.headers.get("Retry-After"))
        if seconds > self.config.max_retry_after_s:
            raise TemporaryFailure(
                f"GET {shown}: HTTP {resp.status}, server asks to retry after {seconds:.0f}s"
            )
        return seconds


@contextlib.asynccontextmanager
async def open_http_record_source(
    config: HttpSourceConfig, *, backoff: Backoff | None = None
) -> AsyncIterator[HttpRecordSource]:
    """An HttpRecordSource on its own aiohttp session; reads the auth value from config.auth_env."""
    auth = None
    if config.auth_env:
        auth = os.environ.get(config.auth_env)
        if not auth:
            raise ConfigError(
                f"environment variable {config.auth_env} (API credentials) is not set"
            )
    timeout = aiohttp.ClientTimeout(total=config.timeout_s)
    async with aiohttp.ClientSession(timeout=timeout, raise_for_status=False) as session:
        yield HttpRecordSource(session, config, auth=auth, backoff=backoff or Backoff())


def _retry_after_seconds(value: str | None) -> float:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; 0 if absent or unreadable."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


async def _json(resp: aiohttp.ClientResponse, shown: str) -> Any:
    try:
        return await resp.json(content_type=None)
    except ValueError as exc:
        raise SourceError(f"GET {shown}: response is not JSON: {exc}") from None


def _at(body: Any, path: str) -> Any:
    """The value at a dotted path ("" = body itself); None where the path is absent."""
    for part in path.split(".") if path else ():
        if not isinstance(body, Mapping):
            return None
        body = body.get(part)
    return body


def _records(body: Any, path: str, url: URL) -> tuple[Mapping[str, Any], ...]:
    found = _at(body, path)
    if not isinstance(found, list) or not all(isinstance(r, Mapping) for r in found):
        where = f"at {path!r}" if path else "as the body"
        raise SourceError(f"GET {redact(str(url))}: expected a list of objects {where}")
    return tuple(found)
