"""What the server answers with, as small dataclasses.

Each class reads the wire map of the same name in docs/PROTOCOL.md. Keys
the class does not know are ignored (later servers may add fields), and a
key the server leaves out reads as ``None``. Two wire names are Python
keywords and are renamed: a message's ``from`` is ``sender`` and a
block's ``class`` is ``block_class``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type, TypeVar

T = TypeVar("T")

# Wire name -> attribute name, where they differ.
_RENAMED = {"from": "sender", "class": "block_class"}


def build(cls: Type[T], value: Any) -> T:
    """A ``cls`` from a decoded wire map (unknown keys ignored)."""
    if not isinstance(value, Mapping):
        from .errors import ProtocolError

        raise ProtocolError(f"expected a map for {cls.__name__}, got {type(value).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {n: None for n in names}
    for key, v in value.items():
        name = _RENAMED.get(key, key)
        if name in names:
            kwargs[name] = v
    return cls(**kwargs)  # type: ignore[call-arg]


def build_list(cls: Type[T], values: Any) -> List[T]:
    """A list of ``cls`` from a decoded wire array."""
    return [build(cls, v) for v in (values or [])]


@dataclass
class Welcome:
    """The server's answer to ``hello``."""

    version: int
    server: str
    model: str
    namespace: str
    heartbeat_interval_ms: int
    heartbeat_timeout_ms: int
    max_frame_bytes: int
    max_in_flight: int


@dataclass
class Message:
    """A stored message (``get_message``). ``sender`` is the wire's ``from``."""

    id: str
    sender: str
    to: List[str]
    namespace: str
    payload: bytes
    vector: List[float] = field(repr=False)
    metadata: Dict[str, Any]
    sent_ms: int
    expires_ms: Optional[int]

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8 (undecodable bytes replaced)."""
        return bytes(self.payload or b"").decode("utf-8", errors="replace")


@dataclass
class Delivery(Message):
    """A message handed to its recipient (``receive`` or a push). Ack it by
    ``id`` before ``deadline_ms`` or it is delivered again with
    ``attempt + 1``."""

    attempt: int
    deadline_ms: int


@dataclass
class BroadcastResult:
    """``broadcast``'s answer: the message id, who got it, and who refused
    it as ``(model, code)`` pairs."""

    id: str
    recipients: List[str]
    refused: List[Tuple[str, str]]

    def __post_init__(self) -> None:
        self.recipients = list(self.recipients or [])
        self.refused = [tuple(r) for r in (self.refused or [])]  # type: ignore[misc]


@dataclass
class AckResult:
    """``ack``'s answer: the ids acked now and the ids the server did not
    know (already acked, or never delivered to this model)."""

    acked: List[str]
    unknown: List[str]


@dataclass
class Mailbox:
    """``mailbox``'s answer. ``dead_letters`` are maps
    ``{id, from, reason, attempts}``."""

    pending: int
    in_flight: int
    dead_lettered: int
    dead_letters: List[Dict[str, Any]]


@dataclass
class Hit:
    """A search result: the vector's id, its geodesic distance from the
    query, ``score = 1 / (1 + distance)`` and its rank from 0."""

    id: str
    distance: float
    score: float
    rank: int


@dataclass
class StoredVector:
    """``store_vector``'s answer."""

    id: str
    namespace: str
    vector: List[float]
    region: Optional[str]
    metadata: Dict[str, Any]
    version: int
    timestamp_ms: int


@dataclass
class Namespace:
    """A namespace and its access list. ``grants`` maps a model to
    ``{"read": bool, "write": bool}``; ``members`` maps a model to its
    declared capabilities."""

    name: str
    owner: str
    visibility: str
    network: str
    geometry: Dict[str, Any]
    grants: Dict[str, Dict[str, bool]]
    members: Dict[str, List[str]]


@dataclass
class AccessAnswer:
    """``check_access``'s answer; when not allowed, the refusal's code and
    the rule that refused."""

    allowed: bool
    code: Optional[str]
    reason: Optional[str]

    def __bool__(self) -> bool:
        return bool(self.allowed)


@dataclass
class SharedHit:
    """A contribution found by ``query_shared``."""

    id: str
    contributor: str
    key: str
    value: Any
    distance: float
    score: float


@dataclass
class Consensus:
    """The weighted Fréchet mean of a shared space's contributions."""

    mean: List[float]
    contributions: int
    contributors: int
    iterations: int
    converged: bool
    gradient_norm: float


@dataclass
class State:
    """A model's state (``score`` is set by ``find_similar_states`` only)."""

    model: str
    state: Any
    version: int
    score: Optional[float]


@dataclass
class Block:
    """A block. ``content`` is the wire map (``{"text": str}``,
    ``{"json": any}`` or ``{"bytes": bytes}``); ``text``, ``json`` and
    ``data`` read it. ``block_class`` is the wire's ``class``."""

    id: str
    name: str
    block_class: str
    content: Dict[str, Any]
    readonly: bool
    version: int
    created_ms: int
    updated_ms: int
    expires_ms: Optional[int]

    @property
    def text(self) -> Optional[str]:
        """The content when it is text."""
        return (self.content or {}).get("text")

    @property
    def json(self) -> Any:
        """The content when it is JSON (``None`` otherwise)."""
        return (self.content or {}).get("json")

    @property
    def data(self) -> Optional[bytes]:
        """The content when it is bytes."""
        return (self.content or {}).get("bytes")


@dataclass
class BlockHit:
    """A section of a block found by ``query_blocks``."""

    block_id: str
    name: str
    section: Optional[str]
    text: str
    distance: float
    score: float
    rank: int


@dataclass
class NamespaceStats:
    """One namespace in :class:`Stats`."""

    vectors: int
    in_graph: int
    fresh: int
    unreachable: int


@dataclass
class Stats:
    """``stats``' answer. ``models`` maps each known model to whether it is
    connected; ``mailbox_*`` are the caller's mailbox."""

    namespaces: Dict[str, NamespaceStats]
    bytes_on_disk: int
    last_change: int
    commits: int
    commit_requests: int
    connections: int
    models: Dict[str, bool]
    mailbox_pending: int
    mailbox_in_flight: int

    def __post_init__(self) -> None:
        self.namespaces = {
            name: (s if isinstance(s, NamespaceStats) else build(NamespaceStats, s))
            for name, s in (self.namespaces or {}).items()
        }
