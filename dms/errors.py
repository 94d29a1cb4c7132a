"""DMS's exception tree: what went wrong, and whether trying again can help.

    DmsError                     root of every DMS-specific failure
    ├── TransientError           worth retrying as is (broker blip, peer lost)
    └── FatalError               retrying the same thing cannot help
        ├── ConfigError          a configuration file or value is unusable
        ├── RequestError         a sync request is malformed or refused
        │   ├── PathError        a source or destination path is unusable
        │   ├── RequestExists    the request id is already taken
        │   └── ConfinementError a path lies outside the configured roots
        ├── BrokerUnavailable    the control-plane Redis cannot be reached
        ├── EmbeddedError        the embedded Redis or worker could not start
        ├── IntegrityError       bytes do not match the digest recorded for them
        ├── SourceChangedError   a source file changed between planning and copying
        ├── ProtocolError        bytes on the data port that do not parse
        ├── AuthenticationError  the data-plane handshake failed (wrong secret, replay)
        └── Cancelled            the request was cancelled

Errno failures of the native core are not here: they arrive as the precise
built-in OSError subclass (FileNotFoundError, PermissionError, ...), with the
failing call and path in the message, exactly like os.open() would raise.
Plain Python on purpose, so tasks can catch these without the extension.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BrokerUnavailable",
    "Cancelled",
    "ConfigError",
    "ConfinementError",
    "DmsError",
    "EmbeddedError",
    "FatalError",
    "IntegrityError",
    "PathError",
    "ProtocolError",
    "RequestError",
    "RequestExists",
    "SourceChangedError",
    "SyncTimeout",
    "TransientError",
]


class DmsError(Exception):
    """Root of DMS-specific failures."""

    #: Whether the same operation may succeed if simply tried again.
    retryable = False


class TransientError(DmsError):
    """A failure that may go away by itself: retry with backoff."""

    retryable = True


class FatalError(DmsError):
    """A failure that retrying cannot fix."""


class ConfigError(FatalError):
    """A configuration file or value is unusable; the message names file, key and value."""


class RequestError(FatalError):
    """A sync request is malformed or refused."""


class UnitGone(RequestError):
    """A transfer unit's manifest is not in Redis: recorded and dropped (a copy of it
    finished first), or the plan it belonged to was dropped."""


class PathError(RequestError):
    """A source or destination path is missing, unreadable or badly placed."""


class RequestExists(RequestError):
    """The request id is already in use."""


class ConfinementError(RequestError):
    """A path lies outside the allowed roots of the node that would read or write it."""


class BrokerUnavailable(FatalError):
    """The control-plane Redis (broker and state store) cannot be reached."""


class EmbeddedError(FatalError):
    """The embedded private Redis or local worker could not be started."""


class IntegrityError(FatalError):
    """Bytes read back do not hash to the digest recorded when they were moved."""


class SourceChangedError(FatalError):
    """A source file changed between planning and copying; its copy would mix versions."""


class ProtocolError(FatalError):
    """Bytes on the data port that do not parse as a DMS frame."""


class AuthenticationError(FatalError):
    """The data-plane handshake failed: the two sides do not share the secret, or a replay."""


class Cancelled(FatalError):
    """The request was cancelled."""


class SyncTimeout(DmsError, TimeoutError):
    """`dms.sync(timeout=...)` ran out before the request ended. A TimeoutError, so code
    that caught the plain one still does; `request_id` names the request and `cancelled`
    says whether it was cancelled (on_timeout="cancel", or the embedded mode, whose worker
    stops with the call) or keeps running in the service."""

    def __init__(self, message: str, request_id: str, cancelled: bool) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.cancelled = cancelled
