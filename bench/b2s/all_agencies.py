"""Run bronze_to_silver for several agencies one after another in this one process.

The benchmark's `job (batched xK)` rows: the job's own entrypoint (settings, runner, history, pool,
publication) per agency, without an interpreter start-up per agency.

Run: python -m b2s.all_agencies 1,2,3 -- <bronze_to_silver arguments without --agency-id>
"""

from __future__ import annotations

import sys

from jobs.bronze_to_silver import entrypoint


def main(argv: list[str]) -> int:
    agencies, rest = argv[0], argv[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    for agency_id in agencies.split(","):
        code = entrypoint([*rest, "--agency-id", agency_id])
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
