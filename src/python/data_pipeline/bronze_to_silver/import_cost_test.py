"""A run that finds nothing new imports no Arrow and no multiprocessing: promote's modules and
the Delta tables' opener load them only when a fold transforms or merges rows (~0.15 s of every
such run's start-up)."""

from __future__ import annotations

from pathlib import Path

import etl_core.adapters.delta_tables  # noqa: F401
from etl_core.testing.fresh_interpreter import run_fresh

# Imported here only so that Pants puts them (and what they import) in this test's sandbox: the
# probe below imports them again in a fresh interpreter, which is what is measured.
import data_pipeline.bronze_to_silver.run  # noqa: F401


def test_promote_and_the_delta_tables_import_no_arrow_until_a_fold_needs_it() -> None:
    # A fresh interpreter: this test process may have imported pyarrow already.
    probe = (
        "import sys\n"
        "import data_pipeline.bronze_to_silver.run\n"
        "import etl_core.adapters.delta_tables\n"
        "heavy = {'pyarrow', 'multiprocessing'}\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in heavy))\n"
    )
    root = Path(__file__).resolve().parents[2]
    assert run_fresh(probe, source_root=root) == "[]"
