"""The DuckDB peer's SQL: macros, then one materialised table per stage (see duckdb_peer)."""

from __future__ import annotations

from typing import Final

WS: Final = " \t\r\n"
NUMBER: Final = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
ISO: Final = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
LOCAL: Final = r"[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}"
# json_extract(line, [...]) parses each line once for all of these.
PATHS: Final = [
    f"$.{field}"
    for field in (
        "record_id agency_id occurred_at updated_at record_type status location location.lat"
        " location.lon amount officer.badge officer.name tags"
    ).split()
]

# Macros take a value's JSON type and its text (->>'$'); stages materialise those columns once.
MACROS: Final = f"""
CREATE MACRO ws() AS '{WS}';
CREATE MACRO finite(x) AS CASE WHEN isfinite(x) THEN x END;
CREATE MACRO num(t, s) AS finite(CASE
    WHEN t = 'VARCHAR' AND regexp_full_match(trim(s, ws()), '{NUMBER}')
        THEN TRY_CAST(trim(s, ws()) AS DOUBLE)
    WHEN t IN ('UBIGINT', 'BIGINT', 'DOUBLE') THEN TRY_CAST(s AS DOUBLE) END);
CREATE MACRO two(s, pos) AS TRY_CAST(substr(s, pos, 2) AS INTEGER);
CREATE MACRO floor_div(x, y) AS x // y - CASE WHEN x % y < 0 THEN 1 ELSE 0 END;
CREATE MACRO in_range(sec) AS CASE WHEN sec BETWEEN -62135596800 AND 253402300799 THEN sec END;
CREATE MACRO offset_s(s) AS CASE WHEN right(s, 1) = 'Z' THEN 0
    WHEN two(right(s, 6), 2) <= 23 AND two(right(s, 6), 5) <= 59
    THEN (CASE WHEN substr(right(s, 6), 1, 1) = '-' THEN -1 ELSE 1 END)
         * (two(right(s, 6), 2) * 3600 + two(right(s, 6), 5) * 60) END;
CREATE MACRO iso_us(s) AS CASE
    WHEN regexp_full_match(s, '{ISO}') AND two(s, 12) <= 23 AND two(s, 15) <= 59
         AND two(s, 18) <= 59
    THEN ((TRY_CAST(substr(s, 1, 10) AS DATE) - DATE '1970-01-01')::BIGINT * 86400
          + two(s, 12) * 3600 + two(s, 15) * 60 + two(s, 18) - offset_s(s)) * 1000000
         + coalesce(TRY_CAST(rpad(regexp_extract(s, '\\.([0-9]+)', 1), 6, '0') AS BIGINT), 0)
    END;
-- the arguments are columns: a macro repeats its argument expressions wherever it names them
CREATE MACRO occurred_s(t, s, zone, iso) AS in_range(CASE
    WHEN t IN ('UBIGINT', 'BIGINT') THEN TRY_CAST(s AS BIGINT)
    WHEN t <> 'VARCHAR' THEN NULL
    WHEN regexp_full_match(s, '[0-9]+')
        THEN TRY_CAST(coalesce(nullif(ltrim(s, '0'), ''), '0') AS BIGINT)
    WHEN regexp_full_match(s, '{LOCAL}')
        THEN epoch(timezone(zone, try_strptime(s, '%m/%d/%Y %H:%M')))::BIGINT
    ELSE floor_div(iso, 1000000) END);
CREATE MACRO enum(t, s) AS CASE WHEN t = 'VARCHAR' THEN lower(trim(s, ws())) END;
CREATE MACRO utc_text(sec) AS strftime(make_timestamp(sec * 1000000), '%Y-%m-%dT%H:%M:%SZ');
CREATE MACRO squeeze(p) AS lower(regexp_replace(trim(p, ws()), '[{WS}]+', ' ', 'g'))
"""

STAGES: Final = [
    # Every non-blank line with its source (relative to bronze/), dt and line number.
    """CREATE TABLE raw AS
    SELECT source, day, line_no, line,
        CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' ELSE false END AS is_object
    FROM (SELECT source, day, unnest(lines) AS line, generate_subscripts(lines, 1) AS line_no
          FROM (SELECT substr(filename, length($bronze) + 1) AS source,
                       regexp_extract(filename, '/dt=([0-9]{4}-[0-9]{2}-[0-9]{2})/', 1) AS day,
                       string_split(content, chr(10)) AS lines
                FROM read_text($bronze || '**/*.ndjson')))
    WHERE trim(line, ws()) <> ''""",
    """CREATE TABLE extracted AS
    SELECT *, CASE WHEN is_object THEN json_extract(line, $paths) END AS v FROM raw""",
    """CREATE VIEW fields AS
    SELECT source, day, line_no, line, is_object,
        json_type(v[1]) AS id_t, v[1]->>'$' AS id_s, json_type(v[2]) AS agency_t,
        v[2]->>'$' AS agency_s, json_type(v[3]) AS occ_t, v[3]->>'$' AS occ_s,
        json_type(v[4]) AS upd_t, v[4]->>'$' AS upd_s, json_type(v[5]) AS type_t,
        v[5]->>'$' AS type_s, json_type(v[6]) AS status_t, v[6]->>'$' AS status_s,
        json_type(v[7]) AS loc_t, json_type(v[8]) AS lat_t, v[8]->>'$' AS lat_s,
        json_type(v[9]) AS lon_t, v[9]->>'$' AS lon_s, json_type(v[10]) AS amount_t,
        v[10]->>'$' AS amount_s, json_type(v[11]) AS badge_t, v[11]->>'$' AS badge_s,
        json_type(v[12]) AS name_t, v[12]->>'$' AS name_s,
        CASE WHEN json_type(v[13]) = 'ARRAY' THEN json_extract(v[13], '$[*]') END AS tag_items
    FROM extracted""",
    """CREATE VIEW timed AS
    SELECT *, CASE WHEN occ_t = 'VARCHAR' THEN iso_us(occ_s) END AS occ_iso,
        CASE WHEN upd_t = 'VARCHAR' THEN iso_us(upd_s) END AS upd_iso
    FROM fields""",
    """CREATE VIEW typed AS
    SELECT f.*, a.agency_id, a.name AS agency_name, a.state AS agency_state,
        trim(id_s, ws()) AS record_id,
        occurred_s(occ_t, occ_s, a.timezone, occ_iso) AS occurred,
        CASE WHEN in_range(floor_div(upd_iso, 1000000)) IS NOT NULL THEN upd_iso END AS updated_us,
        enum(type_t, type_s) AS record_type, enum(status_t, status_s) AS status,
        num(lat_t, lat_s) AS lat, num(lon_t, lon_s) AS lon,
        CASE WHEN amount_t = 'VARCHAR' THEN num(amount_t, replace(trim(amount_s, ws()), ',', ''))
             ELSE num(amount_t, amount_s) END AS amount
    FROM timed f LEFT JOIN agencies a
        ON f.agency_t IN ('UBIGINT', 'BIGINT') AND a.agency_id = TRY_CAST(f.agency_s AS BIGINT)""",
    # Validation in WORKLOAD.md order: the first failing check names the reason.
    """CREATE TABLE checked AS
    SELECT *, CASE
        WHEN NOT is_object THEN 'invalid_json'
        WHEN id_t IS DISTINCT FROM 'VARCHAR' OR record_id = '' THEN 'missing_record_id'
        WHEN agency_id IS NULL THEN 'unknown_agency'
        WHEN occurred IS NULL THEN 'bad_occurred_at'
        WHEN updated_us IS NULL THEN 'bad_updated_at'
        WHEN record_type IS NULL
            OR record_type NOT IN ('incident', 'complaint', 'use_of_force', 'commendation')
            THEN 'bad_record_type'
        WHEN status IS NULL OR status NOT IN ('open', 'closed', 'pending') THEN 'bad_status'
        WHEN loc_t IS DISTINCT FROM 'OBJECT' OR lat IS NULL OR lon IS NULL THEN 'bad_location'
        WHEN NOT lat BETWEEN -90 AND 90 THEN 'lat_out_of_range'
        WHEN NOT lon BETWEEN -180 AND 180 THEN 'lon_out_of_range'
        WHEN amount_t IS NOT NULL AND amount_t <> 'NULL' AND amount IS NULL THEN 'bad_amount'
        END AS reason
    FROM typed""",
    # Dedupe: the greatest updated_at, then the later source, then the later line.
    """CREATE TABLE survivors AS
    SELECT *,
        CASE WHEN name_t = 'VARCHAR' THEN squeeze(CASE WHEN strpos(name_s, ',') = 0 THEN name_s
            ELSE substr(name_s, 1, strpos(name_s, ',') - 1) END) END AS last_norm,
        CASE WHEN name_t = 'VARCHAR' AND strpos(name_s, ',') > 0
            THEN squeeze(substr(name_s, strpos(name_s, ',') + 1)) END AS first_norm
    FROM checked WHERE reason IS NULL
    QUALIFY row_number() OVER (
        PARTITION BY record_id ORDER BY updated_us DESC, source DESC, line_no DESC) = 1""",
    # str.title() of each distinct name part: upper after an uncased character, else lower.
    """CREATE TABLE titles AS
    SELECT part, array_to_string(list_transform(chars, lambda c, i:
        CASE WHEN i > 1 AND lower(chars[i - 1]) <> upper(chars[i - 1]) THEN lower(c)
             ELSE upper(c) END), '') AS title
    FROM (SELECT part, string_split(part, '') AS chars
          FROM (SELECT last_norm AS part FROM survivors UNION SELECT first_norm FROM survivors)
          WHERE part <> '')""",
]

SILVER: Final = """
COPY (
    SELECT record_id, s.agency_id, day AS dt, agency_name, agency_state, record_type, status,
        utc_text(occurred) AS occurred_at, utc_text(floor_div(updated_us, 1000000)) AS updated_at,
        CASE WHEN badge_t = 'VARCHAR'
             THEN coalesce(nullif(ltrim(trim(badge_s, ws()), '0'), ''), '0') END AS officer_badge,
        l.title AS officer_last, f.title AS officer_first, lat, lon, amount,
        coalesce(list_transform(list_filter(tag_items, lambda t: json_type(t) = 'VARCHAR'),
                                lambda t: lower(trim(t->>'$', ws()))), []::VARCHAR[]) AS tags
    FROM survivors s
        LEFT JOIN titles l ON l.part = s.last_norm LEFT JOIN titles f ON f.part = s.first_norm
) TO '{out}/silver' (FORMAT JSON, PARTITION_BY (agency_id, dt), WRITE_PARTITION_COLUMNS true)
"""

DEAD_LETTER: Final = """
COPY (SELECT reason, source, line AS raw FROM checked WHERE reason IS NOT NULL)
TO '{out}/deadletter/part-0.ndjson' (FORMAT JSON)
"""

COUNTS: Final = """
SELECT count(*), count(*) FILTER (reason IS NOT NULL), (SELECT count(*) FROM survivors),
    count(*) FILTER (reason IS NULL) - (SELECT count(*) FROM survivors)
FROM checked
"""
