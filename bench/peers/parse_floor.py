"""The parse floor: read every bronze file and decode each line with orjson, nothing more.

Not a transform: no validation, no output. The CPU a line costs here is the least any Python
reader of this NDJSON pays, so the benchmark shows each implementation's CPU per row as a
multiple of it (issue 10: at most 3x). Read and decoded as the plain peer does (whole file,
gzip where named, split on newlines, blank lines skipped).

Run: python -m peers.parse_floor STORE_DIR OUT_DIR   (prints the counts as JSON; OUT_DIR unused)
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import orjson

_WS = b" \t\r\n"


def parse(store: Path) -> dict[str, int]:
    rows = decoded = 0
    for path in sorted((store / "bronze").rglob("*.ndjson*")):
        body = path.read_bytes()
        if path.name.endswith(".gz"):
            body = gzip.decompress(body)
        for line in body.split(b"\n"):
            if not line.strip(_WS):
                continue
            rows += 1
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            decoded += 1
    return {"rows_in": rows, "decoded": decoded}


if __name__ == "__main__":
    sys.stdout.write(orjson.dumps(parse(Path(sys.argv[1]))).decode() + "\n")
