"""Plan a backfill from the bronze listing: each agency's partitions in range, which are current."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

import attrs
from etl_core.ports import ObjectStore

from data_pipeline.corrected_bronze import with_corrections
from data_pipeline.layout import BRONZE_PREFIX
from data_pipeline.plan import make_plan
from data_pipeline.publish import PartitionPublisher

_AGENCY = re.compile(r"^agency_id=([0-9]+)/")


@attrs.frozen
class AgencyPlan:
    """One work item: an agency's partitions in the range (its dedupe scope is all its bronze)."""

    agency_id: int
    days: tuple[str, ...]  # dt of the partitions in range that have bronze files
    files: int  # every bronze file of the agency (all are read unless it is up to date)
    bytes_in: int
    current: int  # partitions in range already published from exactly this input

    @property
    def up_to_date(self) -> bool:
        """The bronze_to_silver fast path applies: nothing would be read or written."""
        return bool(self.days) and self.current == len(self.days)


async def bronze_agencies(bronze: ObjectStore) -> tuple[int, ...]:
    """Every agency with at least one object under bronze/agency_id=<id>/, ascending."""
    found: set[int] = set()
    async for info in bronze.list(f"{BRONZE_PREFIX}agency_id="):
        match = _AGENCY.match(info.key[len(BRONZE_PREFIX) :])
        if match is not None:
            found.add(int(match.group(1)))
    return tuple(sorted(found))


async def plan_backfill(
    store: ObjectStore,
    bronze: ObjectStore,
    agency_ids: Iterable[int],
    *,
    first: dt.date,
    last: dt.date,
    agencies_key: str,
    reprocess: bool = False,
) -> tuple[AgencyPlan, ...]:
    """One AgencyPlan per agency (listings and manifests only; no bronze body is read).

    `current` counts what bronze_to_silver's fast path compares: the newest manifest's input
    fingerprint against the agency's input (bronze listing, agencies file, stored corrections).
    With reprocess nothing is current.
    """
    publisher = PartitionPublisher(store)
    plans = []
    for agency_id in agency_ids:
        effective = await with_corrections(store, bronze, agency_id)
        plan = await make_plan(
            effective, agency_id, agencies_key=agencies_key, first=first, last=last
        )
        current = 0
        if not reprocess:
            for partition in plan.partitions:
                manifest = await publisher.current(partition)
                current += manifest is not None and manifest.input_fingerprint == plan.fingerprint
        plans.append(
            AgencyPlan(
                agency_id=agency_id,
                days=plan.days,
                files=len(plan.files),
                bytes_in=plan.bytes_in,
                current=current,
            )
        )
    return tuple(plans)
