"""Leave the process with the job's own exit code, whatever native libraries do at shutdown.

delta-rs can abort the interpreter during its own teardown ("terminate called without an active
exception", SIGABRT, exit 134; delta-rs issue 2184), which would replace a job's 0 or 75 with a
crash. A job's `__main__` therefore flushes spans, logs and stdio itself and then ends the process
with os._exit, skipping the native destructors. Only for `__main__`: never call it in-process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import NoReturn

from etl_core import telemetry


def exit_with(code: int) -> NoReturn:
    """Flush spans, logging handlers, stdout and stderr; then end the process with code."""
    try:
        telemetry.flush()
        logging.shutdown()
    finally:
        for stream in (sys.stdout, sys.stderr):
            # A closed pipe or stream: nothing more to save.
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
