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
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Dict, List, Mapping, Optional, Tuple, Type, TypeVar, Union

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

T = TypeVar("T")

#: A vector as the client returns it: a ``numpy.ndarray`` of float64 when
#: numpy is in use (see the client's ``numpy`` option), else a list.
Vector = Union[List[float], "npt.NDArray[np.float64]"]

#: What turns a wire array of floats into a :data:`Vector`.
VectorReader = Callable[[Any], Any]

# Wire name -> attribute name, where they differ.
_RENAMED = {"from": "sender", "class": "block_class"}


def _as_list(v: Any) -> Any:
    return v


def build(cls: Type[T], value: Any, vector: VectorReader = _as_list) -> T:
    """A ``cls`` from a decoded wire map (unknown keys ignored). The fields
    the class names in ``_vector_fields`` go through ``vector``."""
    if not isinstance(value, Mapping):
        from .errors import ProtocolError

        raise ProtocolError(f"expected a map for {cls.__name__}, got {type(value).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: Dict[str, Any] = {n: None for n in names}
    for key, v in value.items():
        name = _RENAMED.get(key, key)
        if name in names:
            kwargs[name] = v
    for name in getattr(cls, "_vector_fields", ()):
        if kwargs.get(name) is not None:
            kwargs[name] = vector(kwargs[name])
    return cls(**kwargs)


def build_list(cls: Type[T], values: Any, vector: VectorReader = _as_list) -> List[T]:
    """A list of ``cls`` from a decoded wire array."""
    return [build(cls, v, vector) for v in (values or [])]


@dataclass
class Welcome:
    """The server's answer to ``hello``.

    ``read_only`` is true when the session cannot write: on a mirror of a
    failover group, or when the model connected while the server's store
    refused writes after a disk fault (its contract is then not stored:
    every write raises ``write_failed`` until the client connects again).
    ``read_only_reason`` says why (``None`` when it can write)."""

    version: int
    server: str
    model: str
    namespace: str
    heartbeat_interval_ms: int
    heartbeat_timeout_ms: int
    max_frame_bytes: int
    max_in_flight: int
    read_only: bool = False
    read_only_reason: Optional[str] = None

    def __post_init__(self) -> None:
        # A server that leaves the key out (the session can write, or an
        # older server) reads as None.
        self.read_only = bool(self.read_only)


@dataclass
class Message:
    """A stored message (``get_message``). ``sender`` is the wire's ``from``."""

    _vector_fields: ClassVar[Tuple[str, ...]] = ("vector",)

    id: str
    sender: str
    to: List[str]
    namespace: str
    payload: bytes
    vector: Vector = field(repr=False)
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
    query, ``score = 1 / (1 + distance)``, its rank from 0, the stored
    vector's ``region`` and ``metadata``, and its coordinates when asked
    for (``with_vector=True``; else ``None``)."""

    _vector_fields: ClassVar[Tuple[str, ...]] = ("vector",)

    id: str
    distance: float
    score: float
    rank: int
    region: Optional[str]
    metadata: Optional[Dict[str, Any]]
    vector: Optional[Vector] = field(repr=False)


@dataclass
class StoredVector:
    """A stored vector: ``store_vector``'s, ``retrieve_vector``'s and
    ``update_vector``'s answer, and the items of ``scroll`` pages.
    ``vector`` is ``None`` when it was not asked for (``with_vector=False``).
    ``version`` starts at 1 and goes up by one with each update."""

    _vector_fields: ClassVar[Tuple[str, ...]] = ("vector",)

    id: str
    namespace: str
    vector: Optional[Vector] = field(repr=False)
    region: Optional[str]
    metadata: Dict[str, Any]
    version: int
    timestamp_ms: int


#: The spec's name for a stored vector.
VectorRecord = StoredVector


@dataclass
class RetrievedVectors:
    """``retrieve_vectors``' answer: the vectors found, in the order asked,
    and the ids that were not found (not an error)."""

    vectors: List[StoredVector]
    missing: List[str]


@dataclass
class DeletedVectors:
    """``delete_vectors``' answer: the ids deleted now and those that were
    not there."""

    deleted: List[str]
    missing: List[str]


@dataclass
class ScrollPage:
    """One page of ``scroll``: vectors in id order, and ``next``, the
    ``after`` of the following page (``None`` when this is the last)."""

    vectors: List[StoredVector]
    next: Optional[str]


@dataclass
class NamespaceSummary:
    """One entry of ``list_namespaces``; ``datatype`` as in
    :class:`Namespace`."""

    name: str
    owner: str
    visibility: str
    geometry: Dict[str, Any]
    vectors: int
    datatype: Optional[str] = None


@dataclass
class Namespace:
    """A namespace and its access list. ``grants`` maps a model to
    ``{"read": bool, "write": bool}``; ``members`` maps a model to its
    declared capabilities; ``retention`` is the retention it was created
    with (``None``: the server's defaults); ``datatype`` is what its search
    graph stores (``f64``, ``f32``, ``f16`` or ``i8``: the one it was
    created with, or its geometry's default); ``graph`` the graph settings
    it was created with (``m``, ``ef_construction``; ``None``: the
    server's)."""

    name: str
    owner: str
    visibility: str
    network: str
    geometry: Dict[str, Any]
    grants: Dict[str, Dict[str, bool]]
    members: Dict[str, List[str]]
    retention: Optional[Dict[str, Any]] = None
    datatype: Optional[str] = None
    graph: Optional[Dict[str, int]] = None


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

    _vector_fields: ClassVar[Tuple[str, ...]] = ("vector",)

    id: str
    contributor: str
    key: str
    value: Any
    distance: float
    score: float
    vector: Optional[Vector] = field(repr=False)


@dataclass
class Consensus:
    """The weighted Fréchet mean of a shared space's contributions."""

    _vector_fields: ClassVar[Tuple[str, ...]] = ("mean",)

    mean: Vector
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
    ``data`` read it. ``block_class`` is the wire's ``class``. ``owner``
    stored it; ``read`` and ``write`` list the models (or ``"*"``) allowed
    besides the owner (``None`` from a server that does not say)."""

    id: str
    name: str
    block_class: str
    content: Dict[str, Any]
    readonly: bool
    version: int
    created_ms: int
    updated_ms: int
    expires_ms: Optional[int]
    owner: Optional[str]
    read: Optional[List[str]]
    write: Optional[List[str]]

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
    #: The graph is being built after the server's start: searches scan
    #: exactly until it is.
    building: bool = False


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
