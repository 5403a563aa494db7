"""data_pipeline: the business logic of etl-platform, one package per capability.

Packages, in the order data flows through them (docs/internals.md draws it):
- `store`: the object-store key layout (bronze, silver, dead letters, manifests), write-once puts
  and NDJSON bodies, shared by every package below.
- `silver`: the pure transform of WORKLOAD.md: one bronze line or file -> silver rows and dead
  letters with reasons (validate, normalise, timeparse, the columnar hot path, dedupe by key).
- `bronze_to_silver`: one agency's incremental, exactly-once run: plan the new bronze against the
  fold ledger, transform it in worker processes, commit each fold (ledger, dead letters, silver).
- `backfill`: bronze -> silver over a date range for many agencies, one child run each.
- `replay`: dead-letter rows (with their corrections) through the transform again, exactly once.
- `ingest`: pull records from a RecordSource (HTTP API, PostgreSQL, bronze) into bronze parts.
- `copy`: get_s3_files: copy an agency's documents from a source store into the bronze layout.
- `export`: an agency's rows as CSV and NDJSON artifacts, from a record source or the tables.
- `maintenance`: compaction, vacuum and checkpoints of the silver and dead-letter tables.
- `workload`: the deterministic reference data set (and the `--demo` seed).
- `runs`: a run inside a run (backfill's and replay's child runs) and work under a lease.

Each package that a job runs has a `configuration.py`: that job's settings and flags (dlt's
layout); the job module in src/python/jobs only wires adapters to it. Business logic never
imports a driver or an adapter (data_pipeline/BUILD forbids it): it works through the ports of
`etl_core.ports`.
"""
