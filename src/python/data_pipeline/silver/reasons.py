"""Why a row is a dead letter: the reasons of the bronze -> silver transform, in check order."""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["VALIDATION_REASONS", "DeadLetterReason"]


class DeadLetterReason(enum.StrEnum):
    """The values are what the dead-letter table and the manifests store: never change one."""

    INVALID_JSON = "invalid_json"
    MISSING_RECORD_ID = "missing_record_id"
    UNKNOWN_AGENCY = "unknown_agency"
    BAD_OCCURRED_AT = "bad_occurred_at"
    BAD_UPDATED_AT = "bad_updated_at"
    BAD_RECORD_TYPE = "bad_record_type"
    BAD_STATUS = "bad_status"
    BAD_LOCATION = "bad_location"
    LAT_OUT_OF_RANGE = "lat_out_of_range"
    LON_OUT_OF_RANGE = "lon_out_of_range"
    BAD_AMOUNT = "bad_amount"
    # Not a line's validation. A valid row whose agency_id names another agency than the file's
    # path: a one-agency run must not write another agency's partition (never generated).
    AGENCY_MISMATCH = "agency_mismatch"
    # A bronze file that cannot be read at all (broken gzip): one dead letter for the whole file,
    # with no line and no raw text; its detail names the key, etag, size and the decoder's error.
    UNREADABLE_FILE = "unreadable_file"


# What validating one line can reject it for, in the order the checks run.
VALIDATION_REASONS: Final = tuple(DeadLetterReason)[:11]
