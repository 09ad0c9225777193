"""A Python client for HVS: connect as a model (with its contract), send
and receive messages with vectors, store, read back, correct and forget
vectors, search them, share spaces and agree, store blocks. The wire
protocol is docs/PROTOCOL.md; this package depends on ``msgpack`` only
(numpy is used when installed).

    import hvs_client
    with hvs_client.connect("contract.json", address="127.0.0.1:7411") as c:
        c.send("planner", "route clear")
        for d in c.receive():
            print(d.sender, d.text)
            c.ack(d)

Layout: :mod:`~hvs_client.protocol` (every operation: its arguments, its
answer, whether it is resent), :mod:`~hvs_client.codec` (frames, msgpack,
vectors, reconnection rules), :mod:`~hvs_client.client` (the blocking
:class:`Client`), :mod:`~hvs_client.aio` (the asyncio
:class:`AsyncClient`), :mod:`~hvs_client.types` (the answers),
:mod:`~hvs_client.errors`, :mod:`~hvs_client.filters`.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from . import filters
from .aio import AsyncClient, connect_async
from .client import Client, connect
from .codec import PROTOCOL_VERSIONS, Backoff, Retry, numpy_available
from .errors import ConnectionLost, HvsClientError, HvsError, ProtocolError, RequestTimeout, VersionConflict
from .types import (
    AccessAnswer,
    AckResult,
    Block,
    BlockHit,
    BroadcastResult,
    Consensus,
    DeletedVectors,
    Delivery,
    Hit,
    Mailbox,
    Message,
    Namespace,
    NamespaceStats,
    NamespaceSummary,
    RetrievedVectors,
    ScrollPage,
    SharedHit,
    State,
    Stats,
    StoredVector,
    Vector,
    VectorRecord,
    Welcome,
)

__version__ = "0.2.0"


def geometry(kind: str, dim: int = 0, curvature: float = 1.0, components: Any = None) -> Dict[str, Any]:
    """A geometry map for :meth:`Client.create_namespace`: ``euclidean``
    (``dim``), ``poincare``, ``hyperboloid``, ``sphere`` or ``de_sitter``
    (``dim``, ``curvature``), or ``product`` (``components``: a list of
    ``(geometry, weight)`` pairs)."""
    if kind == "euclidean":
        return {"kind": kind, "dim": int(dim)}
    if kind == "product":
        comps: Tuple[Any, ...] = tuple(components or ())
        return {"kind": kind, "components": [[dict(g), float(w)] for g, w in comps]}
    return {"kind": kind, "dim": int(dim), "curvature": float(curvature)}


__all__ = [
    "PROTOCOL_VERSIONS",
    "AccessAnswer",
    "AckResult",
    "AsyncClient",
    "Backoff",
    "Block",
    "BlockHit",
    "BroadcastResult",
    "Client",
    "ConnectionLost",
    "Consensus",
    "DeletedVectors",
    "Delivery",
    "Hit",
    "HvsClientError",
    "HvsError",
    "Mailbox",
    "Message",
    "Namespace",
    "NamespaceStats",
    "NamespaceSummary",
    "ProtocolError",
    "RequestTimeout",
    "RetrievedVectors",
    "Retry",
    "ScrollPage",
    "SharedHit",
    "State",
    "Stats",
    "StoredVector",
    "Vector",
    "VersionConflict",
    "VectorRecord",
    "Welcome",
    "connect",
    "connect_async",
    "filters",
    "geometry",
    "numpy_available",
]
