"""Logging setup: JSON lines with run and trace ids, or readable lines and progress on a TTY.

The progress line on a TTY is rich's Live display (rich.live), which keeps one line at the bottom
of the terminal and prints log records above it; it replaced hand-written ANSI codes that did the
same (clear the line, write the record, redraw). rich also crops a progress text wider than the
terminal instead of letting it wrap, which broke the redraw. Without a TTY nothing of rich is
used or imported: progress becomes a log line at most every 10 s, and stdout stays free for the
summary (and JSON lines stay one object per line).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from etl_core import telemetry
from etl_core.errors import ConfigError
from etl_core.model import Counts

if TYPE_CHECKING:  # rich is imported only once a TTY shows progress: JSON runs never load it
    from rich.live import Live
    from rich.text import Text

__all__ = [
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "end_progress",
    "level_from_env",
    "print_summary",
    "print_text",
    "show_progress",
]

_CONTEXT_FIELDS = ("job", "run_id", "agency_id", "trace_id", "span_id")
# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged too.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    *_CONTEXT_FIELDS,
}
_PROGRESS_LOG_INTERVAL_S = 10.0


class _RunContextFilter(logging.Filter):
    """Copies job/run_id/agency_id and the current trace/span ids onto every record."""

    def __init__(self, job: str) -> None:
        super().__init__()
        self.job = job

    def filter(self, record: logging.LogRecord) -> bool:
        run = telemetry.current_run_attributes()
        record.job = run.get("job", self.job)
        record.run_id = run.get("run_id")
        record.agency_id = run.get("agency_id")
        record.trace_id, record.span_id = telemetry.current_ids()
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and k[:1] != "_"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, message, logger, run context, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = dt.datetime.fromtimestamp(record.created, dt.UTC)
        document: dict[str, Any] = {
            "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        for name in _CONTEXT_FIELDS:
            document[name] = getattr(record, name, None)
        document.update(_extras(record))
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`12:34:56 INFO    message  key=value` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extras = " ".join(f"{key}={value}" for key, value in _extras(record).items())
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}"
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class _ProgressAwareHandler(logging.StreamHandler[TextIO]):
    """On a TTY, log records print above a live progress line (rich.live) that stays last."""

    def __init__(self, stream: TextIO, *, tty: bool) -> None:
        super().__init__(stream)
        self.tty = tty
        self.live: Live | None = None
        self.progress_logged_at = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        live = self.live
        if live is None:
            super().emit(record)
            return
        try:
            line = self.format(record)
            live.console.out(line, highlight=False)  # above the progress line, which is redrawn
        except Exception:  # - logging must not raise; the standard handler's way
            self.handleError(record)

    def show(self, text: str) -> None:
        """Start the live line on its first use, then replace its text."""
        from rich.text import Text

        line = Text(text, no_wrap=True, overflow="ellipsis")
        if self.live is None:
            self.live = _live(self.stream, line)
            self.live.start(refresh=True)
            # Live hides the cursor until stop(); a job killed before that (SIGKILL, OOM) would
            # leave the terminal without one. Visible, as it was with the hand-written line.
            self.live.console.show_cursor(True)
        else:
            self.live.update(line, refresh=True)

    def end(self) -> None:
        """Stop the live line, leaving its last text on its own line."""
        live, self.live = self.live, None
        if live is not None:
            live.stop()


def _live(stream: TextIO, line: Text) -> Live:
    from rich.console import Console
    from rich.live import Live

    # No colour, markup or wrapping: the text lines are the TextFormatter's, as without progress.
    console = Console(
        file=stream, force_terminal=True, color_system=None, highlight=False, soft_wrap=True
    )
    return Live(
        line,
        console=console,
        auto_refresh=False,  # redrawn on each update and log record; no refresh thread
        redirect_stdout=False,  # stdout carries the summary (and JSON when asked for)
        redirect_stderr=False,
        transient=False,
    )


_handler: _ProgressAwareHandler | None = None


def configure_logging(
    *,
    job: str,
    log_format: str = "auto",
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Route the root logger to stream (stderr): JSON unless 'text', or 'auto' on a TTY."""
    global _handler
    out = sys.stderr if stream is None else stream
    tty = _isatty(out)
    json_lines = log_format == "json" or (log_format == "auto" and not tty)
    handler = _ProgressAwareHandler(out, tty=tty and not json_lines)
    handler.addFilter(_RunContextFilter(job))
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(level)
    _handler = handler
    return handler


def level_from_env(env: Mapping[str, str]) -> int:
    """ETL_LOG_LEVEL (default INFO) as a logging level. Raises ConfigError."""
    name = env.get("ETL_LOG_LEVEL", "").strip().upper() or "INFO"
    level = logging.getLevelName(name)
    if not isinstance(level, int):
        raise ConfigError(f"ETL_LOG_LEVEL: unknown level {name!r} (DEBUG, INFO, WARNING, ERROR)")
    return level


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def show_progress(text: str) -> None:
    """Rewrite the progress line on a TTY; otherwise log it at most every few seconds."""
    handler = _handler
    if handler is None:
        return
    if handler.tty:
        handler.show(text)
        return
    now = time.monotonic()
    if now - handler.progress_logged_at >= _PROGRESS_LOG_INTERVAL_S:
        handler.progress_logged_at = now
        logging.getLogger("etl_core.progress").info(text)


def end_progress() -> None:
    """Finish the progress line (a newline on a TTY) so later output starts clean."""
    handler = _handler
    if handler is not None:
        handler.end()
        handler.progress_logged_at = 0.0


def print_text(text: str) -> None:
    """Print text to stdout now, ending the progress line first (a job's plan or table)."""
    end_progress()
    print(text, flush=True)


def print_summary(header: str, counts: Counts, fields: Mapping[str, object]) -> None:
    """The end-of-run summary on stdout: header, counts, then `key: value` for set fields."""
    lines = [
        header,
        f"  rows: in {counts.rows_in:,}  out {counts.rows_out:,}  "
        f"duplicate {counts.rows_duplicate:,}  dead-letter {counts.rows_dead_letter:,}",
        f"  bytes: in {counts.bytes_in:,}  out {counts.bytes_out:,}",
    ]
    if counts.rows_inserted or counts.rows_updated:  # only runs that merged into silver
        lines.append(
            f"  silver: inserted {counts.rows_inserted:,}  updated {counts.rows_updated:,}"
        )
    lines.extend(f"  {key}: {value}" for key, value in fields.items() if value is not None)
    print_text("\n".join(lines))
