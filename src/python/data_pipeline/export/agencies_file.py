"""The agencies file an export enriches from, or checks the agency against (reference data)."""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from etl_core.errors import DataError, ObjectNotFound
from etl_core.ports import ObjectStore

from data_pipeline.bronze_to_silver.presence import require_known
from data_pipeline.silver.agencies import Agency, parse_agencies


async def read_agencies(store: ObjectStore, key: str, shown: str) -> Mapping[int, Agency]:
    """agency_id -> Agency of the file at key (shown: its name in errors). DataError if none."""
    try:
        body = await store.get(key)
    except ObjectNotFound:
        raise DataError(f"agencies file {shown} not found (pass --agencies URL)") from None
    return parse_agencies(body, source=shown)


@attrs.frozen
class AgenciesFile:
    """Where an export's agencies file is: the store holding it, its key, its name in errors."""

    store: ObjectStore
    key: str
    shown: str

    async def read(self) -> Mapping[int, Agency]:
        """agency_id -> Agency. Raises DataError if there is no such file or it is malformed."""
        return await read_agencies(self.store, self.key, self.shown)


async def require_listed(store: ObjectStore, agency_id: int, key: str, shown: str) -> None:
    """Raise UnknownAgency if the store's agencies file (bronze_to_silver's reference data)
    does not list the agency; nothing if it does or there is no such file."""
    try:
        body = await store.get(key)
    except ObjectNotFound:
        return
    require_known(agency_id, parse_agencies(body, source=shown), shown)
