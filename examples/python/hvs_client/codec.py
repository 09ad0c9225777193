"""The wire, without I/O: frames, msgpack, vectors in and out, the
handshake, and the rules for reconnecting. Both clients (the blocking
:class:`~hvs_client.Client` and the asyncio
:class:`~hvs_client.AsyncClient`) read and write through this module and
take their operations from :mod:`hvs_client.protocol`.
"""

from __future__ import annotations

import enum
import random
import struct
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import msgpack

from . import types as t
from .errors import ConnectionLost, HvsError, ProtocolError, error_from_wire

#: Protocol versions this client speaks.
PROTOCOL_VERSIONS = [1]

#: The largest frame read before the welcome says otherwise (16 MiB, the
#: server's default).
DEFAULT_MAX_FRAME = 16 << 20

#: No frame larger than this is ever read, whatever the server announces.
HARD_MAX_FRAME = 1 << 30

#: The client's name sent in ``hello``.
CLIENT_NAME = "hvs-client-python/0.2.0"

HEADER = struct.Struct(">I")

#: A vector as the client accepts it: any sequence of numbers, or a
#: one-dimensional numpy array.
VectorLike = Union[Sequence[float], Any]


# ---- numpy, optional -------------------------------------------------------

try:  # numpy is never required; when importable it is used by default.
    import numpy as _np
except ImportError:  # pragma: no cover - depends on the environment
    _np = None  # type: ignore[assignment]


def numpy_available() -> bool:
    """Whether numpy can be imported here."""
    return _np is not None


def vector_reader(use_numpy: Optional[bool]) -> t.VectorReader:
    """How answers' vectors are returned: ``None`` (automatic) means numpy
    arrays when numpy is installed, else lists; ``True`` insists on numpy
    (ImportError without it); ``False`` always gives lists."""
    if use_numpy is None:
        use_numpy = _np is not None
    if not use_numpy:
        return _float_list
    if _np is None:
        raise ImportError("numpy=True, but numpy is not installed (pip install numpy)")
    np = _np

    def to_array(v: Any) -> Any:
        return np.asarray(v, dtype=np.float64)

    return to_array


def _float_list(v: Any) -> List[float]:
    return [float(x) for x in v]


def encode_vector(v: Optional[VectorLike]) -> Optional[List[float]]:
    """A vector as the wire wants it (a list of floats). Accepts lists,
    tuples, any iterable of numbers and one-dimensional numpy arrays."""
    if v is None:
        return None
    ndim = getattr(v, "ndim", None)
    if ndim is not None:
        if ndim != 1:
            raise ValueError(f"a vector must be one-dimensional, not of shape {getattr(v, 'shape', '?')}")
        return [float(x) for x in v.tolist()]  # type: ignore[union-attr]
    if isinstance(v, (str, bytes, Mapping)):
        raise TypeError(f"a vector is a sequence of numbers, not {type(v).__name__}")
    return [float(x) for x in v]


def _default(obj: Any) -> Any:
    # numpy scalars and arrays inside metadata or values: their Python form.
    tolist = getattr(obj, "tolist", None)
    if tolist is not None:
        return tolist()
    raise TypeError(f"cannot send a {type(obj).__name__} over the wire")


# ---- frames ----------------------------------------------------------------


def encode_frame(obj: Mapping[str, Any], max_bytes: int) -> bytes:
    """One frame (length header and msgpack body). A body over
    ``max_bytes`` is refused here with ``HvsError("frame_too_large")``:
    the server would close the connection on it."""
    body: bytes = msgpack.packb(obj, use_bin_type=True, default=_default)
    if len(body) > max_bytes:
        raise HvsError(
            "frame_too_large",
            f"the request is {len(body)} bytes; the server accepts at most {max_bytes}",
        )
    return HEADER.pack(len(body)) + body


def frame_length(header: bytes, max_bytes: int) -> int:
    """The body length from a 4-byte header; never believed past
    ``max_bytes``."""
    (n,) = HEADER.unpack(header)
    if n > max_bytes:
        raise ProtocolError(f"the server sent a frame of {n} bytes; at most {max_bytes} are accepted")
    return int(n)


def decode_body(body: bytes) -> Dict[str, Any]:
    """A frame's body: a map."""
    try:
        frame = msgpack.unpackb(body, raw=False)
    except Exception as e:  # msgpack raises several types
        raise ProtocolError(f"unreadable frame: {e}") from e
    if not isinstance(frame, dict):
        raise ProtocolError(f"a frame that is not a map: {type(frame).__name__}")
    return frame


class Kind(enum.Enum):
    """What a frame from the server is."""

    ANSWER = "answer"  #: ``ok`` or ``error`` for request ``id``
    UNROUTED = "unrouted"  #: an error the server could not tie to a request
    DELIVERY = "delivery"  #: a pushed delivery
    CLOSING = "closing"  #: the server's last word
    OTHER_PUSH = "other_push"  #: a push this client does not know


@dataclass
class Frame:
    """A server frame, read once: its kind, the request id, the ``ok``
    value or the error, and for pushes the delivery or the closing code."""

    kind: Kind
    id: Any = None
    ok: Any = None
    error: Optional[HvsError] = None
    delivery: Any = None
    closing: Optional[Tuple[str, str]] = None


def read_frame(frame: Mapping[str, Any]) -> Frame:
    """Tells a push, an error and an answer apart by their keys."""
    if "push" in frame:
        kind = frame.get("push")
        if kind == "delivery":
            return Frame(Kind.DELIVERY, delivery=frame.get("delivery"))
        if kind == "closing":
            return Frame(Kind.CLOSING, closing=(str(frame.get("code")), str(frame.get("reason"))))
        return Frame(Kind.OTHER_PUSH)
    rid = frame.get("id")
    if "error" in frame:
        err = error_from_wire(frame["error"])
        return Frame(Kind.UNROUTED if rid is None else Kind.ANSWER, id=rid, error=err)
    if "ok" in frame:
        return Frame(Kind.ANSWER, id=rid, ok=frame["ok"])
    raise ProtocolError("a frame with neither push, error nor ok")


def request_frame(rid: int, op: str, args: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """A request map."""
    return {"id": rid, "op": op, "args": dict(args) if args else {}}


def hello_frame(contract: str, token: Optional[str], client_name: str) -> Dict[str, Any]:
    """The handshake request (id 0)."""
    args: Dict[str, Any] = {"versions": PROTOCOL_VERSIONS, "contract": contract, "client": client_name}
    if token is not None:
        args["token"] = token
    return request_frame(0, "hello", args)


def read_welcome(frame: Mapping[str, Any]) -> t.Welcome:
    """The welcome from the answer to hello; the refusal raised."""
    f = read_frame(frame)
    if f.kind is Kind.CLOSING:
        assert f.closing is not None
        raise ConnectionLost(f.closing[1], f.closing[0])
    if f.kind in (Kind.DELIVERY, Kind.OTHER_PUSH):
        raise ProtocolError("a push before the welcome")
    if f.error is not None:
        raise f.error
    return t.build(t.Welcome, f.ok)


# ---- reconnection ----------------------------------------------------------

#: Losses after which the client connects again: the connection dropped,
#: the server shut down (it may be restarting), or the server stopped
#: hearing this client (a paused process). Not ``replaced`` (another
#: connection took this model over; taking it back would fight it),
#: ``protocol`` (the server is not speaking HVS) nor ``closed``.
RECONNECT_CODES = frozenset({"connection_lost", "shutting_down", "heartbeat_timeout"})

#: Refusals at a reconnecting hello that may pass on a later try.
TRANSIENT_HELLO_CODES = frozenset({"already_connected", "too_many_connections", "internal"})


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnection attempts: ``initial`` seconds, times
    ``multiplier`` after each failure, at most ``maximum``, each scaled by
    a random factor in [0.5, 1] so that many clients do not retry in step."""

    initial: float = 0.05
    maximum: float = 2.0
    multiplier: float = 2.0

    def delays(self, rng: Optional[random.Random] = None) -> Iterator[float]:
        """An endless series of delays."""
        r = rng or random.Random()
        d = self.initial
        while True:
            yield d * r.uniform(0.5, 1.0)
            d = min(d * self.multiplier, self.maximum)


class Retry(enum.Enum):
    """When a request whose answer was lost with the connection is sent
    again on the next connection (one never written is always sent)."""

    #: Reads, and writes whose repetition leaves the same state and answers
    #: without an error: resent.
    ALWAYS = "always"
    #: Writes that would be done twice (a message sent twice under two ids,
    #: a vector stored twice, a version bumped twice): resent only when the
    #: client is made with ``at_least_once=True``; otherwise
    #: :class:`ConnectionLost` with ``maybe_done=True``.
    AT_LEAST_ONCE = "at_least_once"
    #: Writes whose repetition would answer an error (``namespace_exists``,
    #: a ``version_conflict`` against itself, …): never resent.
    NEVER = "never"


def may_resend(retry: Retry, loss: ConnectionLost, at_least_once: bool) -> bool:
    """Whether a request cut off by ``loss`` goes again on a new connection."""
    if loss.code not in RECONNECT_CODES:
        return False
    if not loss.maybe_done:
        return True
    return retry is Retry.ALWAYS or (retry is Retry.AT_LEAST_ONCE and at_least_once)


def may_reconnect(loss: ConnectionLost) -> bool:
    """Whether the client connects again after ``loss``."""
    return loss.code in RECONNECT_CODES
