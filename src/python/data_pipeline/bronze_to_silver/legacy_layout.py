"""The NDJSON silver layout of earlier releases (`_manifests/` plus `silver/**.ndjson` and
`deadletter/**.ndjson` generations), found and removed when an agency moves to the Delta tables.

The upgrade is automatic: an agency whose silver table holds no fold yet is folded from its
whole bronze anyway, so the first run after an upgrade rebuilds it into the tables and then
deletes the old files, with a log line naming how many. The two layouts are never read together:
Delta readers see only files in the table's log, and no code reads the old layout any more.
"""

from __future__ import annotations

from etl_core.ports import ObjectStore

_PREFIXES = ("_manifests/agency_id={id}/", "silver/agency_id={id}/", "deadletter/agency_id={id}/")


async def legacy_files(store: ObjectStore, agency_id: int) -> list[str]:
    """Keys of the agency's files in the old layout (manifests and NDJSON generations)."""
    found: list[str] = []
    for prefix in _PREFIXES:
        async for info in store.list(prefix.format(id=agency_id)):
            if prefix.startswith("_manifests/") or info.key.endswith(".ndjson"):
                found.append(info.key)
    return sorted(found)


async def remove_legacy_files(store: ObjectStore, keys: list[str]) -> None:
    """Delete the old layout's files: generations first, manifests last (a reader of the old
    layout, if any is left, sees whole generations until their manifest goes)."""
    for key in sorted(keys, key=lambda key: key.startswith("_manifests/")):
        await store.delete(key)
