"""Object-store conventions every capability shares.

- `layout`: the key layout of bronze, silver, dead letters and manifests (ARCHITECTURE.md), and
  parsing a bronze key back into agency and date.
- `put_once`: write-once objects (put_if_absent that accepts an identical object left by an
  earlier attempt), the building block of exactly-once manifests and ledgers.
- `ndjson`: NDJSON bodies of silver and dead-letter rows.
"""
