"""Dead-letter reason names of the bronze -> silver transform, in validation order."""

from __future__ import annotations

from typing import Final

INVALID_JSON: Final = "invalid_json"
MISSING_RECORD_ID: Final = "missing_record_id"
UNKNOWN_AGENCY: Final = "unknown_agency"
BAD_OCCURRED_AT: Final = "bad_occurred_at"
BAD_UPDATED_AT: Final = "bad_updated_at"
BAD_RECORD_TYPE: Final = "bad_record_type"
BAD_STATUS: Final = "bad_status"
BAD_LOCATION: Final = "bad_location"
LAT_OUT_OF_RANGE: Final = "lat_out_of_range"
LON_OUT_OF_RANGE: Final = "lon_out_of_range"
BAD_AMOUNT: Final = "bad_amount"

ALL_REASONS: Final = (
    INVALID_JSON,
    MISSING_RECORD_ID,
    UNKNOWN_AGENCY,
    BAD_OCCURRED_AT,
    BAD_UPDATED_AT,
    BAD_RECORD_TYPE,
    BAD_STATUS,
    BAD_LOCATION,
    LAT_OUT_OF_RANGE,
    LON_OUT_OF_RANGE,
    BAD_AMOUNT,
)
