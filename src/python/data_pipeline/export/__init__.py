"""Exports of one agency's rows as CSV and NDJSON artifacts.

- `artifacts`: validate, dedupe and enrich a record source's records, then write and upload the
  CSV and NDJSON artifacts (agency_data_job).
- `from_tables`: the same artifacts from the silver and dead-letter tables' committed rows.
- `csv_format`: silver rows as RFC 4180 CSV.
- `agencies_file`: the agencies file an export from a record source enriches with.
- `command`: agency_data_job once its store is open: from the tables or from a source, and where
  the artifacts went.
- `configuration`: agency_data_job's settings and flags.
"""
