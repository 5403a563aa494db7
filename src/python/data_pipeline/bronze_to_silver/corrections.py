"""Corrections of dead-letter rows: the file format, and an agency's corrections kept in the store.

A corrections file is NDJSON, one object per bronze line to replace:

    {"source": "agency_id=1/dt=2024-01-08/part-0.ndjson",       (as a dead-letter row names it)
     "raw": "<the line as the dead-letter row shows it>",       (or "raw_sha256": sha256 hex of it)
     "corrected": "<the replacement line>"}

Other keys are ignored, so dead-letter rows with a "corrected" key added are a valid file. The
replacement is one line (no newline) and not blank: a correction never adds or removes a row.

Accepted corrections are stored write-once as
`corrections/agency_id=<id>/<seq:06d>-<run_id>.ndjson` rows {source, raw_sha256, corrected,
run_id}, keyed by the *original* bronze line; a later file overrides an earlier one for the same
key. They are part of the agency's input: bronze -> silver applies them (corrected_bronze).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import orjson
from etl_core import serde
from etl_core.errors import ConfigError, DataError
from etl_core.ports import ObjectStore

from data_pipeline.store.ndjson import join_lines

CORRECTIONS_PREFIX = "corrections/"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_STORED = re.compile(r"/([0-9]{6})-[^/]+\.ndjson$")


def line_key(text: str) -> str:
    """sha256 hex of a line's text (as a dead-letter row's `raw` holds it)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def bytes_key(line: bytes) -> str:
    """line_key of a bronze line's bytes, decoded the way dead-letter rows decode them."""
    return line_key(line.decode("utf-8", errors="replace"))


@attrs.frozen
class Correction:
    """Replace the line of `source` whose text hashes to raw_sha256 by `corrected`."""

    source: str  # relative to bronze/: agency_id=<id>/dt=<day>/part-<n>.ndjson
    raw_sha256: str
    corrected: str


def parse_corrections(body: bytes, *, name: str, agency_id: int) -> tuple[Correction, ...]:
    """The corrections in an NDJSON body. Raises ConfigError naming the file and line."""
    found: list[Correction] = []
    for line_no, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"{name}:{line_no}"
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise ConfigError(f"{where}: not a JSON object") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: not a JSON object")
        found.append(_correction(row, where, agency_id))
    return tuple(found)


def _correction(row: Mapping[str, Any], where: str, agency_id: int) -> Correction:
    source, raw, digest, corrected = (
        row.get(k) for k in ("source", "raw", "raw_sha256", "corrected")
    )
    if not isinstance(source, str) or not source.startswith(f"agency_id={agency_id}/dt="):
        raise ConfigError(
            f"{where}: source must name a bronze file of agency {agency_id}, got {source!r}"
        )
    if isinstance(raw, str):
        digest = line_key(raw)
    elif not isinstance(digest, str) or not _HEX64.match(digest):
        raise ConfigError(f"{where}: needs raw (the line's text) or raw_sha256 (64 hex digits)")
    if not isinstance(corrected, str) or not corrected.strip(" \t\r\n"):
        raise ConfigError(f"{where}: corrected must be a non-blank string")
    if "\n" in corrected:
        raise ConfigError(f"{where}: corrected must be one line (it contains a newline)")
    return Correction(source, digest, corrected)


@attrs.frozen
class StoredCorrections:
    """An agency's stored corrections, folded: source -> original line key -> replacement."""

    agency_id: int
    fixes: Mapping[str, Mapping[str, str]]
    keys: tuple[str, ...] = ()  # the stored objects, oldest first
    # (source, line_key of a replacement ever stored) -> the original-line keys it replaced
    history: Mapping[tuple[str, str], frozenset[str]] = attrs.field(factory=dict)

    def replacement(self, source: str, key: str) -> str | None:
        return self.fixes.get(source, {}).get(key)

    def replaced_by(self, source: str, text: str) -> tuple[str, ...]:
        """Original line keys of source that are currently replaced by text."""
        return tuple(key for key, fixed in self.fixes.get(source, {}).items() if fixed == text)

    def once_replaced_by(self, source: str, text_key: str) -> frozenset[str]:
        """Original line keys of source that some stored correction replaced by that text."""
        return self.history.get((source, text_key), frozenset())

    def merged(self, corrections: Iterable[Correction]) -> StoredCorrections:
        """These corrections as if stored after the others (what a dry run works with)."""
        fixes = {source: dict(by_key) for source, by_key in self.fixes.items()}
        history = {place: set(keys) for place, keys in self.history.items()}
        for c in corrections:
            fixes.setdefault(c.source, {})[c.raw_sha256] = c.corrected
            history.setdefault((c.source, line_key(c.corrected)), set()).add(c.raw_sha256)
        frozen = {place: frozenset(keys) for place, keys in history.items()}
        return StoredCorrections(self.agency_id, fixes, self.keys, frozen)

    def bronze_fixes(self) -> dict[str, dict[str, bytes]]:
        """bronze key -> original line key -> replacement bytes (what the bronze view applies)."""
        return {
            f"bronze/{source}": {key: text.encode("utf-8") for key, text in fixes.items()}
            for source, fixes in self.fixes.items()
        }

    def next_key(self, run_id: str) -> str:
        """Where the next corrections object goes: one past the newest sequence number."""
        last = max((int(m.group(1)) for k in self.keys if (m := _STORED.search(k))), default=0)
        return f"{prefix(self.agency_id)}{last + 1:06d}-{run_id}.ndjson"


def prefix(agency_id: int) -> str:
    """corrections/agency_id=<id>/."""
    return f"{CORRECTIONS_PREFIX}agency_id={agency_id}/"


async def load_corrections(store: ObjectStore, agency_id: int) -> StoredCorrections:
    """Fold the agency's stored corrections objects in key (= sequence) order. Raises DataError
    naming a damaged one."""
    keys = [info.key async for info in store.list(prefix(agency_id)) if _STORED.search(info.key)]
    fixes: dict[str, dict[str, str]] = {}
    history: dict[tuple[str, str], set[str]] = {}
    for key in keys:
        try:
            stored = parse_corrections(await store.get(key), name=key, agency_id=agency_id)
        except ConfigError as exc:  # stored by a replay: damaged data of the agency, not usage
            raise DataError(
                f"stored corrections damaged: {exc}; restore the object or remove it (its rows "
                "return to dead-letter at the next bronze_to_silver run)"
            ) from None
        for correction in stored:
            source, original = correction.source, correction.raw_sha256
            fixes.setdefault(source, {})[original] = correction.corrected
            history.setdefault((source, line_key(correction.corrected)), set()).add(original)
    frozen = {place: frozenset(originals) for place, originals in history.items()}
    return StoredCorrections(agency_id, fixes, tuple(keys), frozen)


def corrections_body(corrections: Iterable[Correction], run_id: str) -> bytes:
    """The NDJSON of a stored corrections object."""
    return join_lines(
        orjson.dumps({**serde.unstructure(correction), "run_id": run_id})
        for correction in corrections
    )
