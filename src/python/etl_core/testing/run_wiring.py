"""run_job wired as a job's wiring does, with the environment's values given as arguments."""

from __future__ import annotations

import os
from typing import Any

from etl_core import runner
from etl_core.adapters import otel_sdk, run_histories
from etl_core.adapters.every_history import every_history
from etl_core.settings import CommonSettings


def run_job(
    job: str,
    settings: CommonSettings,
    body: runner.JobBody,
    *,
    log_level: str | None = None,
    code_version: str | None = None,
    **options: Any,
) -> int:
    """runner.run_job with the history the settings name (through run_histories.open_run_history,
    every adapter), the tracing SDK, and log_level / code_version as the wiring would read them."""
    wiring = runner.RunWiring(
        history=run_histories.RunHistoryAt(settings.history_url, every_history()),
        install_tracing=lambda name: otel_sdk.install_tracing(
            os.environ, default_service_name=name
        ),
        log_level=log_level,
        code_version=code_version,
    )
    return runner.run_job(job, settings, body, wiring=wiring, **options)
