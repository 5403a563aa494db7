"""Note a SIGTERM that arrives before a run can act on it, instead of dying unrecorded.

A pod evicted in its first moments gets SIGTERM while the job is still importing, parsing flags
or opening its history. The default action would end the process at once with no history row
and a signal exit. Inside `deferred()` the signal is only noted; the runner then records the run
as terminated and exits 75 (see runner.run_job).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

_state = {"depth": 0, "received": False}


def received() -> bool:
    """True once a SIGTERM was noted inside the outermost deferred() now active."""
    return bool(_state["received"])


def _note(signum: int, frame: FrameType | None) -> None:
    _state["received"] = True


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within this block SIGTERM only sets received(); the previous handler comes back after.

    Nests (the outermost block clears the flag); a no-op outside the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: Any = signal.signal(signal.SIGTERM, _note)
    if _state["depth"] == 0:
        _state["received"] = False
    _state["depth"] = int(_state["depth"]) + 1
    try:
        yield
    finally:
        _state["depth"] = int(_state["depth"]) - 1
        signal.signal(signal.SIGTERM, previous)
