"""The exceptions the client raises."""

from __future__ import annotations

from typing import Optional


class HvsClientError(Exception):
    """Base class of everything this package raises. ``code`` is a stable,
    machine-readable string."""

    code: str = "client_error"


class HvsError(HvsClientError):
    """The server answered a request with an error frame.

    ``code`` is the server's stable code (``permission_denied``,
    ``unknown_op``, ``limit_exceeded``, …; see docs/PROTOCOL.md),
    ``message`` is for people, and ``retry_after_ms`` is set when a rate
    limit refused and says when a retry can pass.
    """

    def __init__(self, code: str, message: str, retry_after_ms: Optional[int] = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms

    def __repr__(self) -> str:
        extra = f", retry_after_ms={self.retry_after_ms}" if self.retry_after_ms is not None else ""
        return f"HvsError({self.code!r}, {self.message!r}{extra})"


class ConnectionLost(HvsClientError, ConnectionError):
    """The connection is gone (or was never there). A request that was
    waiting for its answer may or may not have been carried out.

    ``code`` is ``connection_lost`` for a dropped connection, ``closed``
    after :meth:`Client.close`, ``connect_failed`` when connecting failed,
    or the code of the server's ``closing`` push (``shutting_down``,
    ``heartbeat_timeout``, ``replaced``) when the server said why it closed.
    """

    def __init__(self, reason: str, code: str = "connection_lost"):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class RequestTimeout(HvsClientError, TimeoutError):
    """No answer within the request timeout. The connection stays usable;
    a late answer is dropped."""

    code = "timeout"


class ProtocolError(HvsClientError):
    """The server sent something this client cannot read (the connection
    is closed)."""

    code = "protocol"
