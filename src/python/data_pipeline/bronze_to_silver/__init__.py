"""One agency's incremental, exactly-once bronze -> silver run into the Delta tables.

Flow (`run.promote`): `presence` fails plainly when there is nothing for the agency ->
`plan` lists the agency's bronze (with its stored `corrections` applied by `corrected_bronze`)
and `ledger` says which (key, etag, size) earlier folds took -> the new files are split into
folds of ~64 MB -> `workers` transforms each fold's files in worker processes
(silver.file_transform) -> silver.dedupe keeps one row per record_id -> `commit` writes the fold:
ledger entry, dead letters, then the silver merge whose commit carries the fold version (the
publish) -> `accounting` turns the per-file results into per-partition counts for the history;
`fingerprint` names a partition's input and output. `legacy_layout` removes the NDJSON layout of
earlier releases when an agency moves to Delta.
`configuration`: bronze_to_silver's settings and flags, and the promote flags backfill and
replay reuse.
"""
