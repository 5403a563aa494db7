"""Error types shared by every layer, each carrying the exit code it maps to."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """The one exit-code mapping used by every job (see ARCHITECTURE.md)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    TEMPORARY = 75


class EtlError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILED


class ConfigError(EtlError):
    """Bad flag, bad URL, unreadable or malformed configuration."""

    exit_code = ExitCode.USAGE


class TemporaryFailure(EtlError):
    """Worth retrying later: lease held elsewhere, throttling that outlasted retries."""

    exit_code = ExitCode.TEMPORARY


class LeaseHeld(TemporaryFailure):
    """Another run holds the lease for the same job and scope.

    `holder` describes it (run_id, host, pid, expiry) when the lease store could say.
    """

    def __init__(self, name: str, holder: str | None = None) -> None:
        self.name = name
        self.holder = holder
        message = f"lease {name!r} is held by another run" + (f": {holder}" if holder else "")
        super().__init__(message)


class ObjectStoreError(EtlError):
    """An object store operation failed for a reason other than a missing key."""


class ObjectNotFound(ObjectStoreError):
    """The key does not exist in the object store."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"object not found: {key}")


class TableError(EtlError):
    """A silver or dead-letter table could not be read or committed."""


class TableConflict(TableError, TemporaryFailure):
    """A concurrent commit to the same agency's partitions won; the run can be retried."""

    exit_code = ExitCode.TEMPORARY


class RunHistoryError(EtlError):
    """The run history could not be read or written."""


class RunHistoryBusy(RunHistoryError, TemporaryFailure):
    """The run history stayed locked by other writers past the busy timeout (exit 75)."""

    exit_code = ExitCode.TEMPORARY


class RunHistoryUnavailable(RunHistoryError, TemporaryFailure):
    """The run history could not be reached (refused, timed out, no such database yet, shutting
    down): an outage, worth retrying later (exit 75)."""

    exit_code = ExitCode.TEMPORARY


class RunNotFound(RunHistoryError):
    """No run with that run_id is recorded."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run not found: {run_id}")


class RunAlreadyExists(RunHistoryError):
    """A run with that run_id was already started."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run already exists: {run_id}")


class SourceError(EtlError):
    """A record source failed (connection, protocol, or upstream error)."""


class DataError(EtlError):
    """Input data broke an invariant that the job cannot route to dead-letter."""


class NothingForAgency(DataError):
    """The source holds nothing for the agency (no records, no bronze files): a failed run, not
    an empty success."""


class UnknownAgency(NothingForAgency):
    """The agency is not in the reference data (agencies.csv)."""


class InvariantViolation(DataError):
    """rows_in != rows_out + rows_duplicate + rows_dead_letter, or a similar audit failure."""


class DeadLetterThresholdExceeded(DataError):
    """The share of dead-letter rows crossed --max-dead-letter-ratio."""
