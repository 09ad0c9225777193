"""A Python client for HVS: connect as a model (with its contract), send
and receive messages with vectors, search, share spaces and agree, store
blocks. The wire protocol is docs/PROTOCOL.md; this package depends on
``msgpack`` only.

    import hvs_client
    with hvs_client.connect("contract.json", address="127.0.0.1:7411") as c:
        c.send("planner", "route clear")
        for d in c.receive():
            print(d.sender, d.text)
            c.ack(d)
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from . import filters
from .client import PROTOCOL_VERSIONS, Client, connect
from .errors import ConnectionLost, HvsClientError, HvsError, ProtocolError, RequestTimeout
from .types import (
    AccessAnswer,
    AckResult,
    Block,
    BlockHit,
    BroadcastResult,
    Consensus,
    Delivery,
    Hit,
    Mailbox,
    Message,
    Namespace,
    NamespaceStats,
    SharedHit,
    State,
    Stats,
    StoredVector,
    Welcome,
)

__version__ = "0.1.0"


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
    "Block",
    "BlockHit",
    "BroadcastResult",
    "Client",
    "ConnectionLost",
    "Consensus",
    "Delivery",
    "Hit",
    "HvsClientError",
    "HvsError",
    "Mailbox",
    "Message",
    "Namespace",
    "NamespaceStats",
    "ProtocolError",
    "RequestTimeout",
    "SharedHit",
    "State",
    "Stats",
    "StoredVector",
    "Welcome",
    "connect",
    "filters",
    "geometry",
]
