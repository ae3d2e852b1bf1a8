"""One exception root for Grace, and the CLI's named exit codes.

Every message is written for an operator at 3 a.m.: what was wrong, where
(file:line, key path, subject, stream) and what to do about it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the `grace` command."""

    OK = 0
    FINDINGS = 1  # a check found issues, or validation found errors
    ERROR = 2  # bad usage, bad config, an unreachable service
    INTERRUPTED = 130


class GraceError(Exception):
    """Root of every error Grace raises on purpose."""

    exit_code: ExitCode = ExitCode.ERROR


class ConfigError(GraceError):
    """A config or playbook file is wrong: carries file:line and key path."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 path: str | None = None) -> None:
        self.file, self.line, self.path, self.reason = file, line, path, message
        where = file or ""
        if file and line:
            where = f"{file}:{line}"
        prefix = f"{where}: " if where else ""
        at = f" (at {path})" if path else ""
        super().__init__(f"{prefix}{message}{at}")


class ValidationErrors(GraceError):
    """Several ConfigErrors found in one pass; nothing of the input was loaded."""

    exit_code = ExitCode.FINDINGS

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class InvalidValue(GraceError, ValueError):
    """A value an operator wrote (a duration, a hold target) does not parse; says what is allowed.

    Also a ValueError, so msgspec reports one raised in a decode hook as a validation error
    with its key path."""


class BootBlocked(GraceError):
    """`grace up` refused to go on (e.g. the code does not compile); nothing was started."""

    exit_code = ExitCode.FINDINGS


class BusError(GraceError):
    """Anything about the NATS connection or JetStream."""


class ConnectFailed(BusError):
    """The NATS server could not be reached at start."""


class TopologyConflict(BusError):
    """An existing stream's config differs from the one Grace declares."""


class EmbeddedServerError(GraceError):
    """The embedded nats-server could not be started or found."""


class EventError(GraceError):
    """An event failed to decode or validate; keeps the raw bytes."""

    def __init__(self, reason: str, raw: bytes = b"") -> None:
        self.reason, self.raw = reason, raw
        super().__init__(reason)


class UnknownEventType(EventError):
    """An event whose type this version of Grace does not know."""


class ActionError(GraceError):
    """An actuator refused or failed a command; becomes a failed result.

    `details` (e.g. a sink's HTTP status) are added to the failed result's details."""

    def __init__(self, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.details = dict(details or {})


class ConfinementError(ActionError):
    """A path or kernel outside what config names was asked for."""
