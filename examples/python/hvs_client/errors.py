"""The exceptions the client raises."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional


class HvsClientError(Exception):
    """Base class of everything this package raises. ``code`` is a stable,
    machine-readable string."""

    code: str = "client_error"


class HvsError(HvsClientError):
    """The server answered a request with an error frame.

    ``code`` is the server's stable code (``permission_denied``,
    ``unknown_op``, ``limit_exceeded``, …; see docs/PROTOCOL.md),
    ``message`` is for people, ``retry_after_ms`` is set when a rate limit
    refused and says when a retry can pass, ``primary`` is set when a
    server of a failover group refused with ``not_primary`` and knows
    which server is the primary (``"host:port"``), and ``details`` holds
    every other key of the error map (``current_version`` of a
    ``version_conflict``, and whatever later servers add).
    """

    def __init__(
        self,
        code: str,
        message: str,
        retry_after_ms: Optional[int] = None,
        details: Optional[Mapping[str, Any]] = None,
        primary: Optional[str] = None,
    ):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms
        self.primary = primary
        self.details: Dict[str, Any] = dict(details or {})

    def __repr__(self) -> str:
        extra = f", retry_after_ms={self.retry_after_ms}" if self.retry_after_ms is not None else ""
        if self.primary is not None:
            extra += f", primary={self.primary!r}"
        return f"{type(self).__name__}({self.code!r}, {self.message!r}{extra})"


class VersionConflict(HvsError):
    """``update_vector`` with ``if_version`` found another version:
    ``current_version`` is the one stored now (re-read, merge, and try
    again with it)."""

    def __init__(
        self,
        message: str,
        current_version: Optional[int],
        details: Optional[Mapping[str, Any]] = None,
    ):
        super().__init__("version_conflict", message, None, details)
        self.current_version = current_version


class ConnectionLost(HvsClientError, ConnectionError):
    """The connection is gone (or was never there) and the client did not,
    or could not, carry the request over to a new one.

    ``code`` is ``connection_lost`` for a dropped connection, ``closed``
    after :meth:`Client.close`, ``connect_failed`` when connecting failed,
    ``protocol`` when the server sent something unreadable, or the code of
    the server's ``closing`` push (``shutting_down``, ``heartbeat_timeout``,
    ``replaced``, ``not_primary`` from a primary that lost its lease) when
    the server said why it closed.

    ``maybe_done`` is true when the request had been written to the
    server before the connection dropped: it may or may not have been
    carried out. When false the server never saw it.
    """

    def __init__(self, reason: str, code: str = "connection_lost", maybe_done: bool = False):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.maybe_done = maybe_done

    def copy(self, maybe_done: Optional[bool] = None) -> "ConnectionLost":
        """The same loss as a new exception (one loss is raised in many
        threads or tasks; each gets its own)."""
        return ConnectionLost(self.reason, self.code, self.maybe_done if maybe_done is None else maybe_done)


class RequestTimeout(HvsClientError, TimeoutError):
    """No answer within the request timeout. The connection stays usable;
    a late answer is dropped. The request may or may not have been carried
    out, and it is not retried."""

    code = "timeout"


class ProtocolError(HvsClientError):
    """The server sent something this client cannot read (the connection
    is closed)."""

    code = "protocol"


def error_from_wire(e: Any) -> HvsError:
    """The exception for an error frame's ``error`` map."""
    if not isinstance(e, Mapping):
        return HvsError("protocol", f"an unreadable error: {e!r}")
    code = str(e.get("code"))
    message = str(e.get("message", ""))
    details = {k: v for k, v in e.items() if k not in ("code", "message", "retry_after_ms", "primary")}
    if code == "version_conflict":
        current = e.get("current_version")
        return VersionConflict(message, None if current is None else int(current), details)
    retry = e.get("retry_after_ms")
    primary = e.get("primary")
    return HvsError(code, message, None if retry is None else int(retry), details, None if primary is None else str(primary))
