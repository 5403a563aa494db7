"""Reserved keys of RecordSource records: a line that is not a JSON object, and its provenance."""

# Records are Mappings, but not every upstream line is a JSON object: a truncated bronze line or
# a text column holding garbage must still travel, unchanged, to the validation that
# dead-letters it as invalid_json. Such a line travels as {"__raw__": "<the line's text>"};
# consumers treat the text exactly as a bronze line (data_pipeline.ingest.records). Sources that
# know a record's file and line add "__source__": "<path relative to bronze/>:<line>", so consumers
# keep the file's dt and name the source in dead letters. Both keys are reserved: consumers
# strip them before using the rest of a record, and they are never written to bronze.

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

RAW_KEY: Final = "__raw__"
SOURCE_KEY: Final = "__source__"
RESERVED_KEYS: Final = frozenset({RAW_KEY, SOURCE_KEY})


def raw_record(text: str, source: str | None = None) -> dict[str, Any]:
    """The record that carries a line which is not a JSON object, optionally with provenance."""
    record: dict[str, Any] = {RAW_KEY: text}
    if source is not None:
        record[SOURCE_KEY] = source
    return record


def raw_text(record: Mapping[str, Any]) -> str | None:
    """The line a raw record carries; None for an ordinary record.

    Only a record made of reserved keys is raw, so an upstream object that merely has a
    `__raw__` field among others stays an ordinary record.
    """
    text = record.get(RAW_KEY)
    if not isinstance(text, str) or not RESERVED_KEYS.issuperset(record):
        return None
    return text


def provenance(record: Mapping[str, Any]) -> tuple[str, int] | None:
    """(source path, line number) of a record whose source named them; else None."""
    value = record.get(SOURCE_KEY)
    if not isinstance(value, str):
        return None
    path, _, line = value.rpartition(":")
    if not path or not line.isdigit():
        return None
    return path, int(line)


def payload(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The record without its provenance key (the fields upstream sent)."""
    if SOURCE_KEY not in record:
        return record
    return {key: value for key, value in record.items() if key != SOURCE_KEY}
