"""Peer: WORKLOAD.md's bronze -> silver with Polars expressions (lazy where it can be).

Faithful on everything the generator writes (the benchmark compares its output with the job's,
row by row); approximate beyond it, hence "approx" in the table: fields are read with
`str.json_path_match`, which gives scalars as text, so JSON types are not checked (a numeric
record_id or badge is taken as its text, agency_id "3" as 3, non-string tags as text), and a
JSON int occurred_at must be non-negative; title case is Polars' to_titlecase (equal to
str.title() on ASCII); .ndjson.gz bronze is not read.

Run: python -m peers.polars_peer STORE_DIR OUT_DIR   (prints the counts as JSON)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import polars as pl

WS = " \t\r\n"
NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
ISO = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"  # noqa: E501
LOCAL = r"^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}$"
FIELDS = {
    "id_s": "record_id", "agency_s": "agency_id", "occ_s": "occurred_at", "upd_s": "updated_at",
    "type_s": "record_type", "status_s": "status", "loc_s": "location", "lat_s": "location.lat",
    "lon_s": "location.lon", "amount_s": "amount", "badge_s": "officer.badge",
    "name_s": "officer.name", "tags_s": "tags",
}  # fmt: skip
MIN_EPOCH, MAX_EPOCH = -62135596800, 253402300799


def _int(column: pl.Expr, start: int, length: int = 2) -> pl.Expr:
    return column.str.slice(start, length).cast(pl.Int64, strict=False)


def iso_us(column: str) -> pl.Expr:
    """Epoch microseconds of the ISO form with a required offset; null when invalid."""
    s = pl.col(column)
    tail = s.str.slice(-6)
    sign = pl.when(tail.str.starts_with("-")).then(-1).otherwise(1)
    valid_offset = (_int(tail, 1) <= 23) & (_int(tail, 4) <= 59)
    offset_s = sign * (_int(tail, 1) * 3600 + _int(tail, 4) * 60)
    offset = pl.when(s.str.ends_with("Z")).then(0).when(valid_offset).then(offset_s)
    days = s.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).cast(pl.Int64)
    clock = _int(s, 11) * 3600 + _int(s, 14) * 60 + _int(s, 17)
    micros = s.str.extract(r"\.([0-9]+)", 1).str.pad_end(6, "0").cast(pl.Int64, strict=False)
    valid = s.str.contains(ISO) & (_int(s, 11) <= 23) & (_int(s, 14) <= 59) & (_int(s, 17) <= 59)
    seconds = days * 86400 + clock - offset
    in_range = seconds.is_between(MIN_EPOCH, MAX_EPOCH)
    return pl.when(valid & in_range).then(seconds * 1_000_000 + micros.fill_null(0))


def number(column: pl.Expr) -> pl.Expr:
    text = column.str.strip_chars(WS)
    value = pl.when(text.str.contains(NUMBER)).then(text.cast(pl.Float64, strict=False))
    return pl.when(value.is_finite()).then(value)


def name_part(column: pl.Expr) -> pl.Expr:
    part = column.str.strip_chars(WS).str.replace_all(r"[ \t\r\n]+", " ")
    return pl.when(part != "").then(part.str.to_lowercase().str.to_titlecase())


def lines_of(source: str, body: bytes) -> pl.DataFrame:
    """One bronze file's lines (blank ones too): line, line_no (1-based), source, day."""
    day = re.search(r"dt=(\d{4}-\d{2}-\d{2})/", source)
    assert day is not None, source
    lines = body.decode("utf-8", errors="replace").split("\n")
    frame = pl.DataFrame({"line": lines}).with_row_index("line_no", offset=1)
    return frame.with_columns(source=pl.lit(source), day=pl.lit(day.group(1)))


def _lines(store: Path) -> pl.DataFrame:
    bronze = store / "bronze"
    paths = sorted(bronze.rglob("*.ndjson"))
    return pl.concat([lines_of(p.relative_to(bronze).as_posix(), p.read_bytes()) for p in paths])


def _with_local_times(frame: pl.DataFrame) -> pl.DataFrame:
    """occ_local: MM/DD/YYYY HH:MM occurred_at as epoch seconds in the row's agency zone."""
    local = pl.col("occ_s").str.to_datetime("%m/%d/%Y %H:%M", strict=False)
    parts = []
    for (zone,), part in frame.partition_by("timezone", as_dict=True).items():
        seconds = pl.lit(None, pl.Int64)
        if zone is not None:
            aware = local.dt.replace_time_zone(str(zone), ambiguous="earliest", non_existent="null")
            seconds = aware.dt.epoch("s")
        parts.append(
            part.with_columns(occ_local=pl.when(pl.col("occ_s").str.contains(LOCAL)).then(seconds))
        )
    return pl.concat(parts)


def read_agencies(body: bytes) -> pl.DataFrame:
    return pl.read_csv(body, schema_overrides={"agency_id": pl.Int64})


def _checked(store: Path) -> pl.DataFrame:
    return check_lines(_lines(store), read_agencies((store / "agencies.csv").read_bytes()))


def check_lines(lines: pl.DataFrame, agencies: pl.DataFrame) -> pl.DataFrame:
    """Every non-blank line of `lines` (lines_of) with its typed fields and reason (null when
    valid); agencies from read_agencies."""
    line = pl.col("line").str
    frame = lines.filter(line.strip_chars(WS) != "").with_columns(
        is_object=line.json_path_match("$").str.starts_with("{").fill_null(False),
        **{name: line.json_path_match(f"$.{path}") for name, path in FIELDS.items()},
    )
    frame = frame.with_columns(agency_id=pl.col("agency_s").cast(pl.Int64, strict=False))
    frame = _with_local_times(frame.join(agencies, on="agency_id", how="left"))
    occ = pl.col("occ_s")
    occurred = (
        pl.when(occ.str.contains(r"^[0-9]+$")).then(occ.cast(pl.Int64, strict=False))
        .when(occ.str.contains(LOCAL)).then(pl.col("occ_local"))
        .otherwise(iso_us("occ_s") // 1_000_000)
    )  # fmt: skip
    amount = pl.col("amount_s").str.strip_chars(WS).str.replace_all(",", "")
    frame = frame.with_columns(
        record_id=pl.col("id_s").str.strip_chars(WS),
        occurred=pl.when(occurred.is_between(MIN_EPOCH, MAX_EPOCH)).then(occurred),
        updated_us=iso_us("upd_s"),
        record_type=pl.col("type_s").str.strip_chars(WS).str.to_lowercase(),
        status=pl.col("status_s").str.strip_chars(WS).str.to_lowercase(),
        lat=number(pl.col("lat_s")),
        lon=number(pl.col("lon_s")),
        amount=number(amount),
    )
    return frame.with_columns(reason=_reason())


def _reason() -> pl.Expr:
    """The first failing check in WORKLOAD.md order, null for a valid row."""
    c = pl.col
    types = ["incident", "complaint", "use_of_force", "commendation"]
    checks = [
        (~c("is_object"), "invalid_json"),
        (c("record_id").is_null() | (c("record_id") == ""), "missing_record_id"),
        (c("name").is_null(), "unknown_agency"),
        (c("occurred").is_null(), "bad_occurred_at"),
        (c("updated_us").is_null(), "bad_updated_at"),
        (~c("record_type").is_in(types).fill_null(False), "bad_record_type"),
        (~c("status").is_in(["open", "closed", "pending"]).fill_null(False), "bad_status"),
        (~c("loc_s").str.starts_with("{").fill_null(False), "bad_location"),
        (c("lat").is_null() | c("lon").is_null(), "bad_location"),
        (~c("lat").is_between(-90, 90), "lat_out_of_range"),
        (~c("lon").is_between(-180, 180), "lon_out_of_range"),
        (c("amount_s").is_not_null() & c("amount").is_null(), "bad_amount"),
    ]
    chain = pl.lit(None, pl.String)
    for condition, reason in reversed(checks):
        chain = pl.when(condition).then(pl.lit(reason)).otherwise(chain)
    return chain


def _silver(valid: pl.DataFrame) -> pl.DataFrame:
    survivors = valid.sort(["updated_us", "source", "line_no"], descending=True).unique(
        "record_id", keep="first"
    )
    name = pl.col("name_s").str.splitn(",", 2)
    badge = pl.col("badge_s").str.strip_chars(WS).str.strip_chars_start("0")
    tags = (
        pl.when(pl.col("tags_s").str.starts_with("["))
        .then(pl.col("tags_s"))
        .otherwise(pl.lit("[]"))
    )
    clean_tag = pl.element().str.strip_chars(WS).str.to_lowercase()
    utc = "%Y-%m-%dT%H:%M:%SZ"
    return survivors.select(
        "record_id",
        "agency_id",
        dt="day",
        agency_name="name",
        agency_state="state",
        record_type="record_type",
        status="status",
        occurred_at=pl.from_epoch("occurred", "s").dt.strftime(utc),
        updated_at=pl.from_epoch(pl.col("updated_us") // 1_000_000, "s").dt.strftime(utc),
        officer_badge=pl.when(badge == "").then(pl.lit("0")).otherwise(badge),
        officer_last=name_part(name.struct.field("field_0")),
        officer_first=name_part(name.struct.field("field_1")),
        lat="lat",
        lon="lon",
        amount="amount",
        tags=tags.str.json_decode(pl.List(pl.String)).list.eval(clean_tag),
    )


def transform(store: Path, out: Path) -> dict[str, int]:
    """Promote every bronze file under store/bronze/ into out/silver and out/deadletter."""
    checked = _checked(store)
    dead = checked.filter(pl.col("reason").is_not_null())
    valid = checked.filter(pl.col("reason").is_null())
    silver = _silver(valid)
    for (agency_id, day), part in silver.partition_by(["agency_id", "dt"], as_dict=True).items():
        directory = out / "silver" / f"agency_id={agency_id}" / f"dt={day}"
        directory.mkdir(parents=True, exist_ok=True)
        part.write_ndjson(directory / "part-0.ndjson")
    (out / "deadletter").mkdir(parents=True, exist_ok=True)
    dead.select("reason", "source", raw="line").write_ndjson(out / "deadletter" / "part-0.ndjson")
    return {
        "rows_in": checked.height,
        "silver_rows": silver.height,
        "duplicates": valid.height - silver.height,
        "dead_letter_rows": dead.height,
    }


if __name__ == "__main__":
    counts = transform(Path(sys.argv[1]), Path(sys.argv[2]))
    sys.stdout.write(json.dumps(counts) + "\n")
