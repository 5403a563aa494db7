"""Vocabulary of the reference workload: enums, the whitespace set and the silver row's keys."""

from __future__ import annotations

from typing import Final

WHITESPACE: Final = " \t\r\n"
"""What "trim" strips at both ends (WORKLOAD.md); nothing else counts as whitespace."""

RECORD_TYPES: Final = ("incident", "complaint", "use_of_force", "commendation")
STATUSES: Final = ("open", "closed", "pending")

SILVER_FIELDS: Final = (
    "record_id",
    "agency_id",
    "dt",
    "agency_name",
    "agency_state",
    "record_type",
    "status",
    "occurred_at",
    "updated_at",
    "officer_badge",
    "officer_last",
    "officer_first",
    "lat",
    "lon",
    "amount",
    "tags",
)
