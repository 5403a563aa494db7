"""Atomic, idempotent publication of one partition: data files first, then a manifest commit.

Layout in the object store (keys relative to the store root):

    silver/<partition>/part-<run_id>-<n>.ndjson        data files (names unique per run)
    deadletter/<partition>/part-<run_id>.ndjson        dead-letter rows of that partition
    _manifests/<partition>/<seq:010d>.json             commits; the highest seq is the truth

A manifest is created with `put_if_absent`, so two writers can never both commit the same seq.
Readers and re-runs trust only the files the newest manifest lists. A crash before the commit
leaves unreferenced files, which `sweep` removes on the next run; a crash after it leaves the
previous generation's files, which are unreferenced too. Either way the partition shows the old or
the new generation, never a mix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import attrs
from etl_core.errors import DataError, ObjectNotFound, TemporaryFailure
from etl_core.model import Counts
from etl_core.ports import ObjectStore

MANIFESTS = "_manifests"
FORMAT_VERSION = 1


class ConcurrentPublish(TemporaryFailure):
    """Another writer committed the same manifest sequence number first."""


class ManifestCorrupt(DataError):
    """A committed manifest cannot be parsed: the partition needs operator attention."""


@attrs.frozen
class PartitionManifest:
    """One committed generation of a partition."""

    partition: str
    seq: int
    run_id: str
    input_fingerprint: str
    content_fingerprint: str
    files: tuple[str, ...]
    counts: Counts
    created_at: str

    @property
    def key(self) -> str:
        return manifest_key(self.partition, self.seq)

    def to_json(self) -> bytes:
        body = {
            "format": FORMAT_VERSION,
            "partition": self.partition,
            "seq": self.seq,
            "run_id": self.run_id,
            "input_fingerprint": self.input_fingerprint,
            "content_fingerprint": self.content_fingerprint,
            "files": list(self.files),
            "counts": attrs.asdict(self.counts),
            "created_at": self.created_at,
        }
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, key: str, body: bytes) -> PartitionManifest:
        try:
            data = json.loads(body)
            return cls(
                partition=str(data["partition"]),
                seq=int(data["seq"]),
                run_id=str(data["run_id"]),
                input_fingerprint=str(data["input_fingerprint"]),
                content_fingerprint=str(data["content_fingerprint"]),
                files=tuple(str(f) for f in data["files"]),
                counts=Counts(**{k: int(v) for k, v in data["counts"].items()}),
                created_at=str(data["created_at"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestCorrupt(f"{key}: unreadable manifest ({exc})") from None


def manifest_key(partition: str, seq: int) -> str:
    return f"{MANIFESTS}/{partition}/{seq:010d}.json"


def data_prefixes(partition: str) -> tuple[str, ...]:
    """Where a partition's data files live (silver and dead-letter)."""
    return (f"silver/{partition}/", f"deadletter/{partition}/")


@attrs.frozen
class PublishResult:
    """What publish() did: committed a new generation, or found the content already there."""

    partition: str
    published: bool
    manifest: PartitionManifest
    removed: tuple[str, ...] = ()


@attrs.define
class PartitionPublisher:
    """Commits partitions into one object store."""

    store: ObjectStore

    async def current(self, partition: str) -> PartitionManifest | None:
        """The newest committed manifest of partition, or None if it was never published."""
        keys = [info.key async for info in self.store.list(f"{MANIFESTS}/{partition}/")]
        manifests = sorted(k for k in keys if k.endswith(".json"))
        if not manifests:
            return None
        newest = manifests[-1]
        try:
            body = await self.store.get(newest)
        except ObjectNotFound:  # deleted between list and get: treat as a concurrent writer
            raise ConcurrentPublish(f"{newest} vanished while reading") from None
        return PartitionManifest.from_json(newest, body)

    async def publish(
        self,
        *,
        partition: str,
        run_id: str,
        files: Mapping[str, bytes],
        input_fingerprint: str,
        content_fingerprint: str,
        counts: Counts,
        created_at: str,
        force: bool = False,
    ) -> PublishResult:
        """Write files, then commit a manifest listing them; no-op if the content is unchanged.

        Raises ConcurrentPublish if another writer committed in between (exit 75: retry).
        """
        previous = await self.current(partition)
        if (
            previous is not None
            and not force
            and previous.content_fingerprint == content_fingerprint
        ):
            removed = await self.sweep(partition, previous)
            return PublishResult(partition, published=False, manifest=previous, removed=removed)
        for key in files:
            if not key.startswith(data_prefixes(partition)):
                raise ValueError(f"{key} is outside partition {partition}")
        for key, body in files.items():
            await self.store.put(key, body)
        manifest = PartitionManifest(
            partition=partition,
            seq=(previous.seq + 1) if previous else 1,
            run_id=run_id,
            input_fingerprint=input_fingerprint,
            content_fingerprint=content_fingerprint,
            files=tuple(sorted(files)),
            counts=counts,
            created_at=created_at,
        )
        if not await self.store.put_if_absent(manifest.key, manifest.to_json()):
            raise ConcurrentPublish(f"{manifest.key} was committed by another writer")
        removed = await self.sweep(partition, manifest)
        return PublishResult(partition, published=True, manifest=manifest, removed=removed)

    async def sweep(
        self, partition: str, manifest: PartitionManifest | None = None
    ) -> tuple[str, ...]:
        """Delete data files of partition that the newest manifest does not list.

        Only safe while holding the partition's lease: it removes in-flight files of other writers.
        """
        if manifest is None:
            manifest = await self.current(partition)
        keep = set(manifest.files) if manifest else set()
        removed: list[str] = []
        for prefix in data_prefixes(partition):
            async for info in self.store.list(prefix):
                if info.key not in keep:
                    await self.store.delete(info.key)
                    removed.append(info.key)
        return tuple(removed)

    async def read_files(self, partition: str) -> dict[str, bytes]:
        """Bodies of the files the newest manifest lists (the consistent view of a partition)."""
        manifest = await self.current(partition)
        if manifest is None:
            return {}
        return {key: await self.store.get(key) for key in manifest.files}
