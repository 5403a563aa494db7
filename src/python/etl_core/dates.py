"""The one parser of calendar dates given as settings, flags and stored text."""

from __future__ import annotations

import argparse
import datetime as dt
import re

__all__ = ["DATE_FORMAT", "date_flag", "parse_date"]

DATE_FORMAT = "YYYY-MM-DD"
# ISO 8601 calendar dates, extended (2024-01-08) or basic (20240108): what the jobs that took
# any date.fromisoformat input accepted in practice. Week dates (2024-W02-1) and loose forms
# (2024-1-8) are refused: nobody means them, and a dt partition must name one plain day.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{8}")


def parse_date(text: str) -> dt.date:
    """2024-01-08 or 20240108 as a date. Raises ValueError naming the text otherwise."""
    if _DATE.fullmatch(text) is not None:
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError(f"expected a date {DATE_FORMAT}, got {text!r}")


def date_flag(text: str) -> dt.date:
    """parse_date as an argparse type, so a bad flag is argparse's usage error."""
    try:
        return parse_date(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
