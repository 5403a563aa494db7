"""Say plainly when there is nothing for an agency: unknown to agencies.csv, or no input at all.

A run for such an agency fails (NothingForAgency / UnknownAgency, exit 1) instead of succeeding
with an empty result: a typo'd --agency-id must not look like an agency with no data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from etl_core.errors import NothingForAgency, UnknownAgency
from etl_core.ports import ObjectStore

from data_pipeline.bronze_to_silver.plan import BRONZE_SUFFIXES, Plan
from data_pipeline.silver.agencies import Agency, parse_agencies
from data_pipeline.store.layout import BRONZE_PREFIX


def id_ranges(ids: Iterable[int]) -> str:
    """Sorted ids as ranges: `1-5, 7, 9-10`."""
    spans: list[list[int]] = []
    for number in sorted(set(ids)):
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def unknown_agency(agency_id: int, agencies: Mapping[int, Agency], where: str) -> UnknownAgency:
    """The error for an agency that `where` (an agencies file) does not list."""
    listed = f"it lists agencies {id_ranges(agencies)}" if agencies else "it lists no agency"
    return UnknownAgency(
        f"agency {agency_id} is not in the agencies file {where} ({listed}): nothing to do for "
        "it; check --agency-id, or add the agency to the agencies file"
    )


def require_known(agency_id: int, agencies: Mapping[int, Agency], where: str) -> Agency:
    """The agency's row of agencies.csv. Raises UnknownAgency."""
    agency = agencies.get(agency_id)
    if agency is None:
        raise unknown_agency(agency_id, agencies, where)
    return agency


def no_bronze(
    agency: Agency, ignored: Sequence[str], skipped: Sequence[str] = ()
) -> NothingForAgency:
    """The error for a known agency whose bronze prefix holds no bronze file to fold. ignored:
    keys there that are not bronze files (copied documents); skipped: why each bronze file there
    was not folded (its key names no partition of the agency)."""
    prefix = f"{BRONZE_PREFIX}agency_id={agency.agency_id}/"
    kinds = " or ".join(BRONZE_SUFFIXES)
    if skipped:
        found = f"{len(skipped)} bronze file(s) under {prefix} skipped, e.g. {skipped[0]}"
    elif ignored:
        found = (
            f"{prefix} holds {len(ignored)} object(s) but no bronze file ({kinds}), "
            f"e.g. {ignored[0]}"
        )
    else:
        found = f"nothing is under {prefix}"
    return NothingForAgency(
        f"agency {agency.agency_id} ({agency.name}): no bronze to fold: {found}; expected "
        f"{prefix}dt=YYYY-MM-DD/part-*.ndjson[.gz]"
    )


async def check_bronze_agency(bronze: ObjectStore, plan: Plan) -> None:
    """Fail unless the agency is in the plan's agencies file and has bronze files. Raises
    UnknownAgency or NothingForAgency."""
    key = plan.agencies.key
    agency = require_known(plan.agency_id, parse_agencies(await bronze.get(key), source=key), key)
    if not plan.files:
        raise no_bronze(agency, plan.ignored, plan.skipped)
