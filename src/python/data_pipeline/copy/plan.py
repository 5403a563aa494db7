"""Where get_s3_files copies each source document, and whether a destination copy is current."""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from etl_core import serde
from etl_core.errors import ConfigError
from etl_core.model import ObjectInfo

from data_pipeline.store.layout import BRONZE_PREFIX, partition_path

DEFAULT_TEMPLATE = "agency_id={agency_id}/"
MANIFEST_PREFIX = "_copies/get_s3_files/"

_DT_SEGMENT = re.compile(r"dt=([0-9]{4}-[0-9]{2}-[0-9]{2})")
_MD5 = re.compile(r"[0-9a-f]{32}")


class Action(str, enum.Enum):
    """What the job did with one listed source object (the manifest's `action`)."""

    COPIED = "copied"  # destination was absent
    REPLACED = "replaced"  # destination differed and --overwrite was given
    SKIPPED = "skipped"  # destination already holds the same content
    CONFLICT = "conflict"  # destination differs (or two sources map to one key): not written
    FAILED = "failed"  # a store error or the source changed mid-copy: not written


@attrs.frozen(kw_only=True)
class CopyOptions:
    """One agency's copy: where its documents are, how they are dated, what may be replaced."""

    agency_id: int
    run_date: dt.date  # the partition of objects the key and the store do not date
    source_prefix: str = ""  # inside the source store, before the agency template
    template: str = attrs.field(default=DEFAULT_TEMPLATE)
    day: dt.date | None = None  # --dt: every object goes to this partition
    overwrite: bool = False

    @template.validator
    def _check(self, _: object, template: str) -> None:
        check_template(template)

    @property
    def agency_prefix(self) -> str:
        """Key prefix (in the source store) of the agency's documents, ending with '/'."""
        base = self.source_prefix.strip("/")
        return (base + "/" if base else "") + self.template.format(agency_id=self.agency_id)


def check_template(template: str) -> None:
    """The template must name {agency_id} and end with '/' (else agency 1 would match 10)."""
    try:
        filled = template.format(agency_id=0)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"source template {template!r}: only {{agency_id}} may be used ({exc!s})"
        ) from None
    if "{agency_id}" not in template or not filled.endswith("/") or filled.startswith("/"):
        raise ConfigError(
            f"source template {template!r}: must contain {{agency_id}}, end with '/' and not "
            f"start with '/' (e.g. {DEFAULT_TEMPLATE!r})"
        )


@attrs.frozen
class Target:
    """Where one source object goes: its dt partition and destination key."""

    partition: str  # agency_id=<id>/dt=<YYYY-MM-DD>, the ledger's partition name
    key: str


def target_of(info: ObjectInfo, options: CopyOptions) -> Target | None:
    """The destination of a listed source object; None for a 'folder' marker (key ends in '/').

    The date is --dt, else the first directory segment `dt=YYYY-MM-DD` below the agency prefix
    (that segment is then dropped from the name), else the object's last-modified day in UTC,
    else the run date. The rest of the name below the agency prefix is kept.
    """
    relative = info.key[len(options.agency_prefix) :]
    if not relative or relative.endswith("/"):
        return None
    *folders, name = relative.split("/")
    keyed_day: dt.date | None = None
    for index, folder in enumerate(folders):
        keyed_day = _day_of_segment(folder)
        if keyed_day is not None:
            del folders[index]
            break
    day = options.day or keyed_day or _modified_day(info) or options.run_date
    partition = partition_path(options.agency_id, day.isoformat())
    return Target(
        partition=partition, key=f"{BRONZE_PREFIX}{partition}/{'/'.join([*folders, name])}"
    )


def _day_of_segment(segment: str) -> dt.date | None:
    match = _DT_SEGMENT.fullmatch(segment)
    if match is None:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:  # dt=2024-13-45 is a name, not a date
        return None


def _modified_day(info: ObjectInfo) -> dt.date | None:
    if info.last_modified is None:
        return None
    return info.last_modified.astimezone(dt.UTC).date()


def same_content(source: ObjectInfo, existing: ObjectInfo) -> bool:
    """True when existing (the destination) holds source's content, judged from metadata.

    Sizes must match. Equal etags, or two plain-MD5 etags compared, decide. A multipart etag
    ('<md5>-<parts>') depends on how the object was uploaded, so across stores it says nothing;
    then, like `aws s3 sync`, a destination written no earlier than the source was modified is
    current. Without etags or times to compare, it is not known to be current.
    """
    if source.size != existing.size:
        return False
    if source.etag is not None and source.etag == existing.etag:
        return True
    if is_md5(source.etag) and is_md5(existing.etag):
        return False
    if source.last_modified is None or existing.last_modified is None:
        return False
    return existing.last_modified >= source.last_modified


def is_md5(etag: str | None) -> bool:
    """A single-part etag: the MD5 of the content in lower-case hex."""
    return etag is not None and _MD5.fullmatch(etag) is not None


def manifest_key(agency_id: int, run_id: str) -> str:
    """_copies/get_s3_files/agency_id=<id>/<run_id>.json in the destination store."""
    return f"{MANIFEST_PREFIX}agency_id={agency_id}/{run_id}.json"


@attrs.frozen(kw_only=True)
class Entry:
    """One line of the copy manifest: a listed source object and what became of it."""

    source_key: str
    size: int
    etag: str | None
    last_modified: dt.datetime | None
    destination_key: str
    partition: str
    action: Action
    reason: str | None = None
    temporary: bool = False  # FAILED only: a re-run is expected to succeed


def entry_document(entry: Entry) -> dict[str, Any]:
    """The manifest's JSON object for an entry: its fields but `temporary` (this run's advice),
    without null ones."""
    data: dict[str, Any] = serde.unstructure(entry)
    del data["temporary"]
    return {name: value for name, value in data.items() if value is not None}


def manifest(header: Mapping[str, Any], entries: Iterable[Entry]) -> dict[str, Any]:
    """The copy manifest document: header fields, then entries in source-key order."""
    documents = [entry_document(entry) for entry in sorted(entries, key=_by_source)]
    return {**serde.unstructure(dict(header)), "entries": documents}


def _by_source(entry: Entry) -> str:
    return entry.source_key
