"""Plan a backfill from the bronze listings and each agency's fold ledger: what each agency's
child run will fold in (no bronze body is read)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

import attrs
from etl_core.errors import DataError
from etl_core.ports import ObjectStore, SilverTable

from data_pipeline.bronze_to_silver.corrected_bronze import with_corrections
from data_pipeline.bronze_to_silver.ledger import load_ledger
from data_pipeline.bronze_to_silver.plan import in_range, make_plan
from data_pipeline.store.layout import BRONZE_PREFIX

_AGENCY = re.compile(r"^agency_id=([0-9]+)/")


@attrs.frozen(kw_only=True)
class AgencyPlan:
    """One work item: an agency's partitions in the range and what its child run will read."""

    agency_id: int
    days: tuple[str, ...]  # dt of the partitions in range that have bronze files
    fold: int = 0  # the agency's committed fold version in silver
    current: int = 0  # partitions in range whose bronze files are all folded in already
    files: int = 0  # bronze files the child will read: new ones in range, or all on a rebuild
    bytes_in: int = 0
    rebuild: str | None = None  # why the child will rebuild the agency from its whole bronze
    problem: str | None = None  # why the child is expected to fail (it still runs and says so)

    @property
    def to_fold(self) -> int:
        """Partitions in range with bronze not folded in yet (all of them on a rebuild)."""
        return len(self.days) - self.current

    @property
    def up_to_date(self) -> bool:
        """The child will find nothing new in range: it reads and writes nothing."""
        return bool(self.days) and self.to_fold == 0 and self.problem is None

    @property
    def action(self) -> str:
        """What the child will do, in a word or two."""
        if not self.days:
            return "nothing"
        if self.problem is not None:
            return "error"
        if self.rebuild is not None:
            return "rebuild"
        return "up to date" if self.up_to_date else "fold"


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
    silver: SilverTable,
    agency_ids: Iterable[int],
    *,
    first: dt.date,
    last: dt.date,
    agencies_key: str,
    reprocess: bool = False,
) -> tuple[AgencyPlan, ...]:
    """One AgencyPlan per agency, from listings, silver's fold versions and the fold ledgers.

    It foresees what bronze_to_silver's promote decides for each agency: fold in the bronze files
    of dt in range that the ledger of silver's committed fold does not list, or rebuild the agency
    from its whole bronze when a folded file changed or vanished (or with reprocess). The child
    runs decide again for themselves; the plan is what the operator sees first.
    """
    plans = []
    for agency_id in agency_ids:
        version = await silver.version(agency_id)
        try:
            effective = await with_corrections(store, bronze, agency_id)
        except DataError as exc:  # damaged stored corrections: this agency's problem alone
            plan = await make_plan(bronze, agency_id, agencies_key=agencies_key, first=first,
                                   last=last)  # fmt: skip
            plans.append(AgencyPlan(agency_id=agency_id, days=plan.days, fold=version,
                                    problem=str(exc)))  # fmt: skip
            continue
        plan = await make_plan(
            effective, agency_id, agencies_key=agencies_key, first=first, last=last
        )
        if not plan.files:  # its child fails saying so (UnknownAgency / NothingForAgency)
            problem = f"no bronze file under {BRONZE_PREFIX}agency_id={agency_id}/"
            plans.append(AgencyPlan(agency_id=agency_id, days=(), fold=version, problem=problem))
            continue
        try:
            ledger = await load_ledger(store, agency_id, version)
        except DataError as exc:
            plans.append(AgencyPlan(agency_id=agency_id, days=plan.days, fold=version,
                                    problem=str(exc)))  # fmt: skip
            continue
        changes = list(ledger.changes(plan.agencies, plan.files))
        rebuild = "--reprocess" if reprocess else None
        if changes and rebuild is None:
            rebuild = f"{len(changes)} change(s) in its input, e.g. {changes[0]}"
        if rebuild is not None:
            to_read = plan.files
            current = 0
        else:
            folded = ledger.keys()
            to_read = tuple(
                info
                for info in plan.files
                if info.key not in folded and in_range(plan.day_of(info.key), first, last)
            )
            new_days = {plan.day_of(info.key) for info in to_read}
            current = sum(day not in new_days for day in plan.days)
        plans.append(
            AgencyPlan(
                agency_id=agency_id,
                days=plan.days,
                fold=version,
                current=current,
                files=len(to_read),
                bytes_in=sum(info.size for info in to_read),
                rebuild=rebuild,
            )
        )
    return tuple(plans)
