"""The reference workload of WORKLOAD.md: a deterministic data set, and the `--demo` seed.

- `generate`: agencies, bronze files and the manifest of expected outcomes; `run`: the generate
  job's run (progress, what it reports); `configuration`: its settings and flags.
- `rows`: bronze lines: messy good rows, faults, later versions.
- `demo_seed`: seed an empty store only when a person asks (`--demo`).
- `bronze_store` (tests only): the workload as an in-memory bronze store.
"""
