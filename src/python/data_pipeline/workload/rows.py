"""Bronze lines of the reference workload: messy good rows, faults, later versions."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from collections.abc import Sequence
from typing import Final

import attrs
import orjson

from data_pipeline.silver.agencies import Agency, seat_coordinates
from data_pipeline.silver.reasons import DeadLetterReason
from data_pipeline.silver.schema import RECORD_TYPES, STATUSES
from data_pipeline.silver.timeparse import format_utc

_LAST_NAMES: Final = (
    "smith", "johnson", "o'brien", "smith-jones", "garcia", "nguyen", "williams", "martinez",
    "mcdonald", "de la cruz", "van der berg", "o'neil", "kowalski", "brown", "lee", "davis",
    "hernandez", "st. james", "miller", "wilson", "anderson", "thompson", "white-hall", "clark",
)  # fmt: skip
_FIRST_NAMES: Final = (
    "anne marie", "john", "maria", "james", "mary jo", "jean-luc", "robert", "linda", "michael",
    "patricia", "david", "jennifer", "luis", "sarah", "kevin", "aisha", "wei", "fatima", "daniel",
    "karen", "jose", "emily", "thomas", "li",
)  # fmt: skip
_TAGS: Final = (
    "traffic", "night", "downtown", "school", "domestic", "bodycam", "k9", "patrol",
    "vehicle", "weapon", "juvenile", "follow-up", "tip", "overtime", "training",
)  # fmt: skip
_PADS: Final = ("", "", "", "", " ", " ", "\t", "  ")
_BAD_OCCURRED_AT: Final = (
    "not a date", "13/45/2024 25:61", "2024-02-30T10:00:00-05:00", "", "yesterday 5pm",
)  # fmt: skip
FAULTS: Final = (
    DeadLetterReason.BAD_OCCURRED_AT,
    DeadLetterReason.MISSING_RECORD_ID,
    DeadLetterReason.LAT_OUT_OF_RANGE,
    DeadLetterReason.INVALID_JSON,
)
"""The four fault kinds, named by the dead-letter reason each one must produce."""


@attrs.define
class _Version:
    """The latest version of a good record, kept so that a later version can be emitted."""

    head: bytes  # '{"record_id":..,"agency_id":..,"record_type":..,"occurred_at":..'
    middle: (
        bytes  # '","officer":{..},"status":' (concatenated: exact-size, unlike orjson's buffers)
    )
    tail: bytes  # ',"location":..,"amount":..,"tags":..}'
    updated_at: int  # epoch seconds of the latest version
    status: int  # index into STATUSES of the latest version


@attrs.define
class _AgencyState:
    next_seq: int = 1
    previous_file: list[_Version] = attrs.field(factory=list)
    current_file: list[_Version] = attrs.field(factory=list)


@attrs.frozen
class Row:
    """One emitted line and what the transform must make of it."""

    line: bytes
    kind: str  # "new", "duplicate", or the dead-letter reason of a fault


@attrs.define
class RowFactory:
    """Deterministic source of bronze lines: one random.Random drives every choice, in order.

    A later version (duplicate) revisits a good record of the same agency from the agency's
    current or previous file, so duplicates land in the same file or a later one while memory
    stays bounded by two files per agency.
    """

    rng: random.Random
    agencies: Sequence[Agency]
    bad_rate: float
    dup_rate: float
    _states: dict[int, _AgencyState] = attrs.field(factory=dict, init=False)

    def start_file(self, agency_id: int) -> None:
        """Rotate the agency's revisit window: its current file becomes the previous one."""
        state = self._states.setdefault(agency_id, _AgencyState())
        state.previous_file = state.current_file
        state.current_file = []

    def file_rows(self, agency_id: int, day: dt.date, count: int) -> list[Row]:
        """count lines for one file of agency_id whose wall-clock times fall on day."""
        self.start_file(agency_id)
        state = self._states[agency_id]
        agency = self.agencies[agency_id - 1]
        zone = zoneinfo.ZoneInfo(agency.timezone)
        # 06:00-22:59 never meets a DST transition, so one offset serves the whole day.
        noon = dt.datetime.combine(day, dt.time(12), zone).utcoffset()
        assert noon is not None
        offset = noon.days * 86400 + noon.seconds
        midnight = (day - dt.date(1970, 1, 1)).days * 86400 - offset
        context = _FileContext(agency_id, day, offset, midnight, _iso_offset(offset))
        random_ = self.rng.random
        rows = []
        for _ in range(count):
            pool = len(state.previous_file) + len(state.current_file)
            if pool and random_() < self.dup_rate:
                rows.append(self._duplicate(state, int(random_() * pool)))
            elif random_() < self.bad_rate:
                rows.append(self._bad(state, context))
            else:
                rows.append(self._good(state, context))
        return rows

    def _duplicate(self, state: _AgencyState, index: int) -> Row:
        previous = len(state.previous_file)
        version = (
            state.previous_file[index] if index < previous else state.current_file[index - previous]
        )
        random_ = self.rng.random
        version.updated_at += 1 + int(random_() * 86400)
        version.status = (version.status + 1 + int(random_() * 2)) % 3
        status = self._messy(STATUSES[version.status])
        return Row(_join(version, version.updated_at, status), "duplicate")

    def _good(self, state: _AgencyState, context: _FileContext) -> Row:
        version, status = self._new_version(state, context, None)
        state.current_file.append(version)
        return Row(_join(version, version.updated_at, status), "new")

    def _bad(self, state: _AgencyState, context: _FileContext) -> Row:
        fault = FAULTS[int(self.rng.random() * len(FAULTS))]
        version, status = self._new_version(state, context, fault)
        line = _join(version, version.updated_at, status)
        if fault == DeadLetterReason.INVALID_JSON:
            line = line[: 1 + int(self.rng.random() * (len(line) - 2))]
        return Row(line, fault)

    def _new_version(
        self, state: _AgencyState, context: _FileContext, fault: str | None
    ) -> tuple[_Version, str]:
        random_ = self.rng.random
        seq = state.next_seq
        state.next_seq += 1
        record: dict[str, object] = {}
        if fault != DeadLetterReason.MISSING_RECORD_ID:
            record["record_id"] = f"A{context.agency_id:03d}-{seq:08d}"
        record["agency_id"] = context.agency_id
        record["record_type"] = self._messy(RECORD_TYPES[int(random_() * 4)])
        occurred_text, occurred = self._occurred_at(context)
        record["occurred_at"] = (
            _BAD_OCCURRED_AT[int(random_() * len(_BAD_OCCURRED_AT))]
            if fault == DeadLetterReason.BAD_OCCURRED_AT
            else occurred_text
        )
        status_index = int(random_() * 3)
        updated_at = occurred + 60 + int(random_() * (3 * 86400 - 59))
        officer = {"badge": self._badge(), "name": self._officer_name()}
        lat, lon = seat_coordinates(context.agency_id)
        lat += random_() * 0.6 - 0.3
        lon += random_() * 0.6 - 0.3
        if fault == DeadLetterReason.LAT_OUT_OF_RANGE:
            lat = (90.5 + random_() * 89) * (1 if random_() < 0.5 else -1)
        tail = {
            "location": {"lat": f"{lat:.6f}", "lon": f"{lon:.6f}"},
            "amount": None if random_() < 0.35 else f"{random_() * 12000:,.2f}",
            "tags": self._tags(),
        }
        version = _Version(
            head=orjson.dumps(record)[:-1],
            middle=b'","officer":' + orjson.dumps(officer) + b',"status":',
            tail=b"," + orjson.dumps(tail)[1:],
            updated_at=updated_at,
            status=status_index,
        )
        return version, self._messy(STATUSES[status_index])

    def _occurred_at(self, context: _FileContext) -> tuple[str | int, int]:
        random_ = self.rng.random
        form = random_()
        hour, minute = 6 + int(random_() * 17), int(random_() * 60)
        second = 0 if 0.4 <= form < 0.7 else int(random_() * 60)
        wall = hour * 3600 + minute * 60 + second
        instant = context.midnight_utc + wall
        if form < 0.4:
            offset, suffix = (
                (context.offset, context.offset_text) if random_() < 0.7 else (0, "+00:00")
            )
            local = format_utc(instant + offset)
            return f"{local[:-1]}{suffix}", instant
        if form < 0.7:
            day = context.day
            return f"{day.month:02d}/{day.day:02d}/{day.year:04d} {hour:02d}:{minute:02d}", instant
        return instant, instant

    def _messy(self, word: str) -> str:
        random_ = self.rng.random
        case = random_()
        if case < 0.4:
            cased = word
        elif case < 0.6:
            cased = word.upper()
        elif case < 0.85:
            cased = word.title()
        else:
            cased = "".join(c.upper() if random_() < 0.5 else c for c in word)
        return _PADS[int(random_() * 8)] + cased + _PADS[int(random_() * 8)]

    def _badge(self) -> str:
        random_ = self.rng.random
        number = int(random_() * 100000)
        text = f"{number:05d}" if random_() < 0.5 else str(number)
        return text if random_() < 0.7 else _PADS[int(random_() * 8)] + text + " "

    def _officer_name(self) -> str:
        random_ = self.rng.random
        last = _LAST_NAMES[int(random_() * len(_LAST_NAMES))]
        first = _FIRST_NAMES[int(random_() * len(_FIRST_NAMES))]
        shape = random_()
        if shape < 0.8:
            name = f"{last}, {first}"
        elif shape < 0.95:
            name = f"{last} ,  {first}"
        elif shape < 0.98:
            name = f" {last},\t{first.replace(' ', '  ')} "
        else:
            name = last
        case = random_()
        return name.upper() if case < 0.5 else name.title() if case < 0.8 else name

    def _tags(self) -> list[str]:
        random_ = self.rng.random
        tags = []
        for _ in range(int(random_() * 4)):
            tag = _TAGS[int(random_() * len(_TAGS))]
            tags.append(self._messy(tag) if random_() < 0.2 else tag)
        return tags


@attrs.frozen
class _FileContext:
    agency_id: int
    day: dt.date
    offset: int  # the agency's UTC offset in seconds on day (06:00-22:59)
    midnight_utc: int  # epoch seconds of local 00:00 at that offset
    offset_text: str  # "-05:00"


def _iso_offset(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def _join(version: _Version, updated_at: int, status: str) -> bytes:
    return b"".join(
        (
            version.head,
            b',"updated_at":"',
            format_utc(updated_at).encode(),
            version.middle,
            orjson.dumps(status),
            version.tail,
        )
    )
