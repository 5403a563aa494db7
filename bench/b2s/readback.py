"""Read an implementation's output back and check it: counts, unique ids, placement, digests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import attrs
import orjson
from deltalake import DeltaTable

SILVER_KEYS: Final = frozenset(
    "record_id agency_id dt agency_name agency_state record_type status occurred_at updated_at"
    " officer_badge officer_last officer_first lat lon amount tags".split()
)
_MASK: Final = (1 << 64) - 1


def _hash(body: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(body, digest_size=8).digest(), "little")


@attrs.define
class Readback:
    """What an output holds. Digests are order-free sums of row hashes over a canonical form
    (sorted keys), so two implementations agree exactly when they wrote the same rows."""

    silver_rows: int = 0
    dead_letter_rows: int = 0
    duplicates: int = 0  # reported by the implementation (not observable in its output)
    repeated_ids: int = 0
    misplaced: int = 0  # rows whose agency_id/dt differ from their partition's
    wrong_keys: int = 0
    silver_digest: int = 0
    dead_digest: int = 0
    _ids: set[str] = attrs.Factory(set)

    def add_silver(self, partition: str, body: bytes) -> None:
        """partition is `agency_id=<id>/dt=<day>`; body NDJSON."""
        for line in body.splitlines():
            if line.strip():
                self.add_silver_row(partition, orjson.loads(line))

    def add_silver_row(self, partition: str, row: dict[str, Any]) -> None:
        """One silver row in the NDJSON form (timestamps and dt as text)."""
        self.silver_rows += 1
        if row["record_id"] in self._ids:
            self.repeated_ids += 1
        self._ids.add(row["record_id"])
        self.misplaced += partition != f"agency_id={row['agency_id']}/dt={row['dt']}"
        self.wrong_keys += row.keys() != SILVER_KEYS
        canonical = orjson.dumps(row, option=orjson.OPT_SORT_KEYS)
        self.silver_digest = (self.silver_digest + _hash(canonical)) & _MASK

    def add_dead_letters(self, body: bytes) -> None:
        for line in body.splitlines():
            if line.strip():
                self.add_dead_letter_row(orjson.loads(line))

    def add_dead_letter_row(self, row: dict[str, Any]) -> None:
        self.dead_letter_rows += 1
        triple = orjson.dumps([row["reason"], row["source"], row["raw"]])
        self.dead_digest = (self.dead_digest + _hash(triple)) & _MASK

    @property
    def digest(self) -> str:
        return f"{self.silver_digest:016x}{self.dead_digest:016x}"

    def problems(self, expected: dict[str, Any]) -> list[str]:
        """Where the output breaks the invariant or the generator's manifest; [] when ok."""
        found: list[str] = []
        total = self.silver_rows + self.duplicates + self.dead_letter_rows
        if total != expected["input_rows"]:
            found.append(f"in {expected['input_rows']} != {total}")
        for name, have in (
            ("silver_rows", self.silver_rows),
            ("duplicates", self.duplicates),
            ("dead_letter_rows", self.dead_letter_rows),
        ):
            if have != expected[name]:
                found.append(f"{name} {have} != {expected[name]}")
        for name in ("repeated_ids", "misplaced", "wrong_keys"):
            if getattr(self, name):
                found.append(f"{name} {getattr(self, name)}")
        return found


def read_tables(
    silver_uri: str, deadletter_uri: str, options: dict[str, str], duplicates: int
) -> Readback:
    """The job's output as any Delta reader sees it (committed versions only); duplicates as the
    run history reports them (a table holds only survivors)."""
    readback = Readback(duplicates=duplicates)
    for batch in DeltaTable(silver_uri, storage_options=options).to_pyarrow_dataset().to_batches():
        for row in batch.to_pylist():
            for name in [key for key in row if key.startswith("_")]:
                del row[name]
            for name in ("occurred_at", "updated_at"):
                row[name] = row[name].strftime("%Y-%m-%dT%H:%M:%SZ")
            row["dt"] = row["dt"].isoformat()
            readback.add_silver_row(f"agency_id={row['agency_id']}/dt={row['dt']}", row)
    dead = DeltaTable(deadletter_uri, storage_options=options).to_pyarrow_dataset()
    for batch in dead.to_batches(columns=["reason", "source", "raw"]):
        for row in batch.to_pylist():
            readback.add_dead_letter_row(row)
    return readback


def read_directory(out: Path, duplicates: int) -> Readback:
    """A peer's output: OUT/silver/<partition>/* and OUT/deadletter/**."""
    readback = Readback(duplicates=duplicates)
    for path in _files(out / "silver"):
        partition = path.parent.relative_to(out / "silver").as_posix()
        readback.add_silver(partition, path.read_bytes())
    for path in _files(out / "deadletter"):
        readback.add_dead_letters(path.read_bytes())
    return readback


def _files(base: Path) -> Iterable[Path]:
    return sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []
