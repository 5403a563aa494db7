"""The native bronze scanner for job runs started from a checkout.

Pants builds the scanner (src/python/data_pipeline/silver/native/BUILD) and puts it beside
native_scan.py in every sandbox, PEX and image. A run from a checkout (PYTHONPATH=src/python)
has no built library there, so the benchmark compiles the same source with the same rustc
flags once, into a cache keyed by the source's hash, and names it in ETL_BRONZE_SCAN_LIBRARY.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from pathlib import Path

from data_pipeline.silver import native_scan

SOURCE = Path(native_scan.__file__).parent / "native" / "bronze_scan.rs"
# As native/BUILD's shell_command runs it.
RUSTC_FLAGS = ["--edition", "2021", "--crate-type", "cdylib", "-C", "opt-level=3",
               "-C", "strip=symbols", "-C", "panic=abort"]  # fmt: skip


@functools.cache
def scanner_env() -> dict[str, str]:
    """{} when the scanner loads where it is (a Pants sandbox), else ETL_BRONZE_SCAN_LIBRARY
    naming a library built from the checkout's source. Raises naming rustc's error."""
    if native_scan.LIBRARY.is_file():
        return {}
    source = SOURCE.read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    library = (
        cache
        / "etl-platform-bench"
        / f"libbronze_scan-{hashlib.sha256(source).hexdigest()[:16]}.so"
    )
    if not library.is_file():
        library.parent.mkdir(parents=True, exist_ok=True)
        partial = library.with_suffix(".partial")
        built = subprocess.run(
            ["rustc", *RUSTC_FLAGS, "-o", str(partial), str(SOURCE)],
            capture_output=True,
            text=True,
            check=False,
        )
        if built.returncode != 0:
            raise RuntimeError(f"building the native scanner failed: {built.stderr.strip()}")
        partial.replace(library)
    return {native_scan.LIBRARY_ENV: str(library)}
