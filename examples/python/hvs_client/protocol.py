"""Every operation of docs/PROTOCOL.md, once: the arguments it sends, how
its answer is read, and whether it may be sent again after the connection
dropped before its answer (:class:`~hvs_client.codec.Retry`).

Each function here returns a :class:`Call`; the blocking
:class:`~hvs_client.Client` runs it and returns its result, the
:class:`~hvs_client.AsyncClient` awaits it. The clients' methods are these
functions (same names, same arguments), so an operation is written here
and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Generic, Iterable, List, Mapping, Optional, Sequence, TypeVar, Union

from . import types as t
from .codec import Retry, VectorLike, encode_vector

T = TypeVar("T")

Payload = Union[bytes, bytearray, memoryview, str, None]
Ids = Union[str, t.Message, t.StoredVector, Iterable[Union[str, t.Message, t.StoredVector]]]
Filter = Mapping[str, Any]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request, ready to send: ``op`` and ``args`` go on the wire,
    ``read(ok, vector)`` makes the result from the answer's ``ok`` (with
    ``vector`` turning wire arrays into the client's vectors), ``retry``
    says whether it may go again after a lost answer."""

    op: str
    args: Dict[str, Any]
    read: Callable[[Any, t.VectorReader], T]
    retry: Retry


def _raw(ok: Any, vector: t.VectorReader) -> Any:
    return ok


def _nothing(ok: Any, vector: t.VectorReader) -> None:
    return None


def _field(key: str, conv: Callable[[Any], Any]) -> Callable[[Any, t.VectorReader], Any]:
    return lambda ok, vector: conv(ok[key])


def _one(cls: Any, optional: bool = False) -> Callable[[Any, t.VectorReader], Any]:
    def read(ok: Any, vector: t.VectorReader) -> Any:
        if optional and ok is None:
            return None
        return t.build(cls, ok, vector)

    return read


def _many(cls: Any, key: str) -> Callable[[Any, t.VectorReader], Any]:
    return lambda ok, vector: t.build_list(cls, (ok or {}).get(key), vector)


def _strings(key: str) -> Callable[[Any, t.VectorReader], List[str]]:
    return lambda ok, vector: [str(i) for i in ok[key]]


def _payload(p: Payload) -> bytes:
    if p is None:
        return b""
    if isinstance(p, str):
        return p.encode("utf-8")
    if isinstance(p, (bytes, bytearray, memoryview)):
        return bytes(p)
    raise TypeError(f"payload must be bytes or str, not {type(p).__name__}")


def id_list(ids: Ids) -> List[str]:
    """Ids from ids, messages, deliveries or stored vectors."""
    if isinstance(ids, (str, t.Message, t.StoredVector)):
        ids = [ids]
    return [i if isinstance(i, str) else str(getattr(i, "id", i)) for i in ids]


def outgoing(
    to: str = "",
    payload: Payload = None,
    vector: Optional[VectorLike] = None,
    embedding: Optional[VectorLike] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    ttl_ms: Optional[int] = None,
) -> Dict[str, Any]:
    """An outgoing message map (only the fields given)."""
    m: Dict[str, Any] = {"to": to, "payload": _payload(payload)}
    if vector is not None:
        m["vector"] = encode_vector(vector)
    if embedding is not None:
        m["embedding"] = encode_vector(embedding)
    if metadata:
        m["metadata"] = dict(metadata)
    if ttl_ms is not None:
        m["ttl_ms"] = int(ttl_ms)
    return m


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()


def _content(text: Optional[str], json: Any, data: Optional[bytes], required: bool = True) -> Optional[Dict[str, Any]]:
    given = [text is not None, json is not UNSET, data is not None]
    if sum(given) > 1 or (required and sum(given) == 0):
        raise ValueError("give exactly one of text=, json= or data=")
    if text is not None:
        return {"text": str(text)}
    if data is not None:
        return {"bytes": bytes(data)}
    if json is not UNSET:
        return {"json": json}
    return None


def _put(args: Dict[str, Any], **optional: Any) -> Dict[str, Any]:
    # Optional arguments go on the wire only when given, so a server that
    # predates them reads the request as before.
    for k, v in optional.items():
        if v is not None:
            args[k] = v
    return args


# ---- session ---------------------------------------------------------------


def ping() -> Call[int]:
    """Round trip to the server; returns its clock (ms since the epoch)."""
    return Call("ping", {}, _field("now_ms", int), Retry.ALWAYS)


def stats() -> Call[t.Stats]:
    """The server's storage and connection statistics and this model's
    mailbox counts."""
    return Call("stats", {}, _one(t.Stats), Retry.ALWAYS)


# ---- messages --------------------------------------------------------------


def send(
    to: str,
    payload: Payload,
    vector: Optional[VectorLike] = None,
    embedding: Optional[VectorLike] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    ttl_ms: Optional[int] = None,
) -> Call[str]:
    """Sends a message to model ``to``; returns its id once the server has
    stored it. ``vector`` is a point of this model's space (projected onto
    it), ``embedding`` goes through the contract's encoder; with neither,
    the server's text encoder reads the payload. A ``str`` payload is sent
    as UTF-8. Not resent after a lost answer unless ``at_least_once``."""
    args = outgoing(to, payload, vector, embedding, metadata, ttl_ms)
    return Call("send", args, _field("id", str), Retry.AT_LEAST_ONCE)


def send_batch(messages: Iterable[Mapping[str, Any]]) -> Call[List[str]]:
    """Sends several messages at once, all or none; each is a dict with the
    keyword arguments of :meth:`send` (``to``, ``payload``, ``vector``,
    ``embedding``, ``metadata``, ``ttl_ms``). Returns their ids in order."""
    msgs = [outgoing(**dict(m)) for m in messages]
    return Call("send_batch", {"messages": msgs}, _strings("ids"), Retry.AT_LEAST_ONCE)


def broadcast(
    payload: Payload,
    vector: Optional[VectorLike] = None,
    namespace: Optional[str] = None,
    exclude: Optional[Iterable[str]] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    embedding: Optional[VectorLike] = None,
    ttl_ms: Optional[int] = None,
) -> Call[t.BroadcastResult]:
    """Sends one message to every connected model (or to the members of
    ``namespace``) except this one and ``exclude``. Needs the contract's
    ``permissions.broadcast``."""
    args = outgoing("", payload, vector, embedding, metadata, ttl_ms)
    del args["to"]
    _put(args, namespace=namespace, exclude=list(exclude) if exclude else None)
    return Call("broadcast", args, _one(t.BroadcastResult), Retry.AT_LEAST_ONCE)


def receive(max: int = 100) -> Call[List[t.Delivery]]:  # noqa: A002 (the protocol's name)
    """Up to ``max`` messages waiting for this model (an empty list when
    none are). Ack each before its ``deadline_ms``. Resent after a lost
    answer: the deliveries that answer carried stay in flight and come
    back at their deadline (``attempt + 1``), as at-least-once delivery
    promises anyway."""
    return Call("receive", {"max": int(max)}, _many(t.Delivery, "deliveries"), Retry.ALWAYS)


def ack(ids: Ids) -> Call[t.AckResult]:
    """Acknowledges messages (ids, or the deliveries themselves). Resent
    after a lost answer: an id acked by the lost attempt is then reported
    in ``unknown``."""
    return Call("ack", {"ids": id_list(ids)}, _one(t.AckResult), Retry.ALWAYS)


def release(ids: Ids) -> Call[int]:
    """Hands received messages back for redelivery now; returns how many."""
    return Call("release", {"ids": id_list(ids)}, _field("released", int), Retry.NEVER)


def mailbox() -> Call[t.Mailbox]:
    """This model's mailbox: waiting, in flight, dead letters."""
    return Call("mailbox", {}, _one(t.Mailbox), Retry.ALWAYS)


def get_message(id: str) -> Call[Optional[t.Message]]:  # noqa: A002
    """A stored message by id, or ``None``."""
    return Call("get_message", {"id": id}, _one(t.Message, optional=True), Retry.ALWAYS)


def subscribe() -> Call[None]:
    """From now on, messages for this model are pushed (and again after
    each reconnection, until :meth:`unsubscribe`)."""
    return Call("subscribe", {}, _nothing, Retry.ALWAYS)


def unsubscribe() -> Call[None]:
    """Stops the pushes (messages wait in the mailbox for :meth:`receive`)."""
    return Call("unsubscribe", {}, _nothing, Retry.ALWAYS)


# ---- namespaces ------------------------------------------------------------


def create_namespace(
    name: str,
    geometry: Mapping[str, Any],
    visibility: str = "private",
    retention: Optional[Mapping[str, Any]] = None,
    datatype: Optional[str] = None,
    graph: Optional[Mapping[str, int]] = None,
) -> Call[t.Namespace]:
    """Creates a namespace owned by this model. ``geometry`` is e.g.
    ``{"kind": "hyperboloid", "dim": 12, "curvature": 1.0}`` (see
    :func:`hvs_client.geometry`); ``visibility`` is ``private``, ``shared``
    or ``public``; ``retention`` (the server's defaults if not given) is a
    map of ``max_age_ms``, ``max_messages``, ``max_bytes``,
    ``keep_acked_ms`` and ``discard`` (``old`` or ``new``), each optional
    (docs/SEMANTICS.md, "Retention"); ``datatype`` is what its search
    graph stores, ``f64``, ``f32``, ``f16`` or ``i8`` (the geometry's
    default if not given: ``f32`` for euclidean and sphere, ``f64``
    otherwise; one the geometry cannot use is refused with
    ``invalid_datatype``; docs/STORAGE.md, "Vector storage"); ``graph``
    is how its search graph is built, ``{"m": 8, "ef_construction": 64}``,
    each optional (the server's 16 and 128 if not given; out of range is
    refused with ``invalid_graph``; docs/STORAGE.md, "Graph settings")."""
    args: Dict[str, Any] = {"name": name, "geometry": dict(geometry), "visibility": visibility}
    if retention is not None:
        args["retention"] = dict(retention)
    if graph is not None:
        args["graph"] = dict(graph)
    _put(args, datatype=datatype)
    return Call("create_namespace", args, _one(t.Namespace), Retry.NEVER)


def namespace_info(name: str) -> Call[t.Namespace]:
    """A namespace's owner, geometry, grants and members."""
    return Call("namespace_info", {"name": name}, _one(t.Namespace), Retry.ALWAYS)


def grant_access(namespace: str, model: str, read: bool = False, write: bool = False) -> Call[None]:
    """Grants ``model`` read and/or write access to a namespace this model
    owns."""
    args = {"namespace": namespace, "model": model, "read": bool(read), "write": bool(write)}
    return Call("grant_access", args, _nothing, Retry.ALWAYS)


def check_access(namespace: str, kind: str = "read") -> Call[t.AccessAnswer]:
    """Whether this model may ``read`` or ``write`` a namespace, and if
    not, the refusal's code and rule."""
    return Call("check_access", {"namespace": namespace, "kind": kind}, _one(t.AccessAnswer), Retry.ALWAYS)


def list_namespaces() -> Call[List[t.NamespaceSummary]]:
    """The namespaces this model may read."""
    return Call("list_namespaces", {}, _many(t.NamespaceSummary, "namespaces"), Retry.ALWAYS)


def delete_namespace(name: str) -> Call[bool]:
    """Deletes a namespace and its vectors (owner only; a model's home
    namespace cannot be deleted); whether it was there. Resent after a lost
    answer, so ``False`` may mean the lost attempt deleted it."""
    return Call("delete_namespace", {"name": name}, _field("deleted", bool), Retry.ALWAYS)


# ---- vectors ---------------------------------------------------------------


def store_vector(
    namespace: str,
    vector: VectorLike,
    region: Optional[str] = None,
    metadata: Optional[Mapping[str, Any]] = None,
) -> Call[t.StoredVector]:
    """Stores a point of the namespace's manifold with optional region and
    metadata; returns it with its id and version 1."""
    args = _put({"namespace": namespace, "vector": encode_vector(vector)}, region=region)
    if metadata is not None:
        args["metadata"] = dict(metadata)
    return Call("store_vector", args, _one(t.StoredVector), Retry.AT_LEAST_ONCE)


def _vector_item(item: Any, metadata: Optional[Mapping[str, Any]], region: Optional[str]) -> Dict[str, Any]:
    if isinstance(item, Mapping):
        out = _put({"vector": encode_vector(item["vector"])}, region=item.get("region"))
        if item.get("metadata") is not None:
            out["metadata"] = dict(item["metadata"])
        return out
    out = _put({"vector": encode_vector(item)}, region=region)
    if metadata is not None:
        out["metadata"] = dict(metadata)
    return out


def batch_store_vectors(
    namespace: str,
    vectors: Iterable[Any],
    metadata: Optional[Sequence[Optional[Mapping[str, Any]]]] = None,
    regions: Optional[Sequence[Optional[str]]] = None,
) -> Call[List[str]]:
    """Stores many vectors, all or none; returns their ids in order.
    ``vectors`` is a sequence of vectors (or a 2-D numpy array, one per
    row), with ``metadata`` and ``regions`` beside it, or a sequence of
    dicts ``{"vector", "region"?, "metadata"?}``."""
    items = list(vectors)
    for name, side in (("metadata", metadata), ("regions", regions)):
        if side is not None and len(side) != len(items):
            raise ValueError(f"{len(items)} vectors but {len(side)} {name}")
    out = [
        _vector_item(v, metadata[i] if metadata is not None else None, regions[i] if regions is not None else None)
        for i, v in enumerate(items)
    ]
    return Call("batch_store_vectors", {"namespace": namespace, "vectors": out}, _strings("ids"), Retry.AT_LEAST_ONCE)


def retrieve_vector(id: str, with_vector: bool = True) -> Call[Optional[t.StoredVector]]:  # noqa: A002
    """A stored vector by id, or ``None``; its coordinates unless
    ``with_vector=False``."""
    args = {"id": id, "with_vector": bool(with_vector)}
    return Call("retrieve_vector", args, _one(t.StoredVector, optional=True), Retry.ALWAYS)


def _retrieved(ok: Any, vector: t.VectorReader) -> t.RetrievedVectors:
    return t.RetrievedVectors(t.build_list(t.StoredVector, ok.get("vectors"), vector), [str(i) for i in ok.get("missing") or []])


def retrieve_vectors(ids: Ids, with_vector: bool = True) -> Call[t.RetrievedVectors]:
    """Many stored vectors: those found in the order asked, and the ids not
    found (not an error)."""
    args = {"ids": id_list(ids), "with_vector": bool(with_vector)}
    return Call("retrieve_vectors", args, _retrieved, Retry.ALWAYS)


def update_vector(
    id: str,  # noqa: A002
    vector: Optional[VectorLike] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    region: Optional[str] = None,
    clear_region: bool = False,
    if_version: Optional[int] = None,
) -> Call[t.StoredVector]:
    """Replaces a vector's coordinates and/or metadata and/or region
    (``clear_region=True`` removes it); returns it one version on. With
    ``if_version`` the update is a compare-and-set: another current version
    raises :class:`~hvs_client.VersionConflict` carrying it. A missing id
    is ``HvsError("vector_not_found")``. Never resent with ``if_version``
    (a lost answer would make the retry conflict with itself); without it,
    resent only when ``at_least_once``."""
    args = _put({"id": id}, vector=encode_vector(vector), region=region)
    if metadata is not None:
        args["metadata"] = dict(metadata)
    if clear_region:
        args["clear_region"] = True
    if if_version is not None:
        args["if_version"] = int(if_version)
    retry = Retry.NEVER if if_version is not None else Retry.AT_LEAST_ONCE
    return Call("update_vector", args, _one(t.StoredVector), retry)


def delete_vector(id: str) -> Call[bool]:  # noqa: A002
    """Deletes a vector; whether it was there. Resent after a lost answer,
    so ``False`` may mean the lost attempt deleted it."""
    return Call("delete_vector", {"id": id}, _field("deleted", bool), Retry.ALWAYS)


def _deleted(ok: Any, vector: t.VectorReader) -> t.DeletedVectors:
    return t.DeletedVectors([str(i) for i in ok.get("deleted") or []], [str(i) for i in ok.get("missing") or []])


def delete_vectors(ids: Ids) -> Call[t.DeletedVectors]:
    """Deletes vectors: those deleted now and those not there (resent after
    a lost answer; an id the lost attempt deleted is then ``missing``)."""
    return Call("delete_vectors", {"ids": id_list(ids)}, _deleted, Retry.ALWAYS)


def delete_by_filter(namespace: str, filter: Filter) -> Call[int]:  # noqa: A002
    """Deletes every vector of the namespace that matches ``filter``
    (required); returns how many (resent after a lost answer; the count is
    then the retry's)."""
    args = {"namespace": namespace, "filter": dict(filter)}
    return Call("delete_by_filter", args, _field("deleted", int), Retry.ALWAYS)


def search_args(
    namespace: str,
    vector: VectorLike,
    k: int = 10,
    filter: Optional[Filter] = None,  # noqa: A002
    region: Optional[str] = None,
    offset: int = 0,
    exact: bool = False,
    with_vector: bool = False,
    ef: Optional[int] = None,
) -> Dict[str, Any]:
    """The wire arguments of one search (also an item of ``batch_search``)."""
    args: Dict[str, Any] = {"namespace": namespace, "vector": encode_vector(vector), "k": int(k)}
    if filter is not None:
        args["filter"] = dict(filter)
    _put(args, region=region)
    if offset:
        args["offset"] = int(offset)
    if exact:
        args["exact"] = True
    if ef is not None:
        args["ef"] = int(ef)
    if with_vector:
        args["with_vector"] = True
    return args


def search(
    namespace: str,
    vector: VectorLike,
    k: int = 10,
    filter: Optional[Filter] = None,  # noqa: A002
    region: Optional[str] = None,
    offset: int = 0,
    exact: bool = False,
    with_vector: bool = False,
    ef: Optional[int] = None,
) -> Call[List[t.Hit]]:
    """The ``k`` stored vectors nearest to ``vector`` (after skipping
    ``offset``), each with its metadata and region, and its coordinates
    when ``with_vector``; ``filter`` on metadata (:mod:`hvs_client.filters`),
    ``region`` to one region, ``exact`` for a brute-force scan; ``ef`` the
    candidates the graph search keeps (1 to 10,000, else
    ``invalid_query``; at least ``k + offset`` is used; the server's
    default, 64, if not given; exact searches ignore it)."""
    args = search_args(namespace, vector, k, filter, region, offset, exact, with_vector, ef)
    return Call("search", args, _many(t.Hit, "hits"), Retry.ALWAYS)


def range_search(
    namespace: str,
    vector: VectorLike,
    radius: float,
    limit: int = 100,
    filter: Optional[Filter] = None,  # noqa: A002
    region: Optional[str] = None,
    with_vector: bool = False,
) -> Call[List[t.Hit]]:
    """Every stored vector within geodesic distance ``radius`` of
    ``vector``, nearest first, at most ``limit``."""
    args: Dict[str, Any] = {
        "namespace": namespace,
        "vector": encode_vector(vector),
        "radius": float(radius),
        "limit": int(limit),
    }
    if filter is not None:
        args["filter"] = dict(filter)
    _put(args, region=region)
    if with_vector:
        args["with_vector"] = True
    return Call("range_search", args, _many(t.Hit, "hits"), Retry.ALWAYS)


def _results(ok: Any, vector: t.VectorReader) -> List[List[t.Hit]]:
    return [t.build_list(t.Hit, hits, vector) for hits in ok.get("results") or []]


def batch_search(searches: Iterable[Mapping[str, Any]]) -> Call[List[List[t.Hit]]]:
    """Several searches in one request: each a dict with the keyword
    arguments of :meth:`search` (``namespace``, ``vector``, ``k``,
    ``filter``, ``ef``, …). One list of hits per search, in order; any refusal
    fails the whole request."""
    items = [search_args(**dict(s)) for s in searches]
    return Call("batch_search", {"searches": items}, _results, Retry.ALWAYS)


def count(namespace: str, filter: Optional[Filter] = None) -> Call[int]:  # noqa: A002
    """How many vectors the namespace holds (matching ``filter``)."""
    args: Dict[str, Any] = {"namespace": namespace}
    if filter is not None:
        args["filter"] = dict(filter)
    return Call("count", args, _field("count", int), Retry.ALWAYS)


def _page(ok: Any, vector: t.VectorReader) -> t.ScrollPage:
    nxt = ok.get("next")
    return t.ScrollPage(t.build_list(t.StoredVector, ok.get("vectors"), vector), None if nxt is None else str(nxt))


def scroll(
    namespace: str,
    after: Optional[str] = None,
    limit: int = 100,
    filter: Optional[Filter] = None,  # noqa: A002
    with_vector: bool = False,
) -> Call[t.ScrollPage]:
    """One page of the namespace's vectors in id order, after the id
    ``after``: pass the page's ``next`` as ``after`` for the following one
    (``next`` is ``None`` on the last). A vector present for the whole
    scroll is returned exactly once. See also ``scroll_all``."""
    args = _put({"namespace": namespace, "limit": int(limit)}, after=after)
    if filter is not None:
        args["filter"] = dict(filter)
    if with_vector:
        args["with_vector"] = True
    return Call("scroll", args, _page, Retry.ALWAYS)


# ---- shared spaces ---------------------------------------------------------


def join(space: str, capabilities: Iterable[str] = ()) -> Call[None]:
    """Joins a shared space, declaring what this model can do."""
    return Call("join", {"space": space, "capabilities": list(capabilities)}, _nothing, Retry.ALWAYS)


def contribute(space: str, key: str, vector: VectorLike, value: Any = None) -> Call[str]:
    """Contributes a point (and any JSON-like value) under ``key``; a later
    contribution with the same key replaces it. Returns its id."""
    args = {"space": space, "key": key, "vector": encode_vector(vector), "value": value}
    return Call("contribute", args, _field("id", str), Retry.AT_LEAST_ONCE)


def query_shared(space: str, vector: VectorLike, k: int = 10, with_vector: bool = False) -> Call[List[t.SharedHit]]:
    """The ``k`` contributions nearest to ``vector`` (their points too when
    ``with_vector``)."""
    args: Dict[str, Any] = {"space": space, "vector": encode_vector(vector), "k": int(k)}
    if with_vector:
        args["with_vector"] = True
    return Call("query_shared", args, _many(t.SharedHit, "hits"), Retry.ALWAYS)


def consensus(space: str, weights: Optional[Mapping[str, float]] = None) -> Call[t.Consensus]:
    """The weighted Fréchet mean of the space's contributions (weights by
    contributor, default 1 each)."""
    args: Dict[str, Any] = {"space": space}
    if weights is not None:
        args["weights"] = {str(m): float(w) for m, w in weights.items()}
    return Call("consensus", args, _one(t.Consensus), Retry.ALWAYS)


# ---- model state -----------------------------------------------------------


def register_state(schema: Any) -> Call[None]:
    """Registers this model's state schema."""
    return Call("register_state", {"schema": schema}, _nothing, Retry.ALWAYS)


def update_state(state: Any) -> Call[int]:
    """Replaces this model's state; returns its version."""
    return Call("update_state", {"state": state}, _field("version", int), Retry.AT_LEAST_ONCE)


def get_state(model: str) -> Call[Optional[t.State]]:
    """A model's state, or ``None``."""
    return Call("get_state", {"model": model}, _one(t.State, optional=True), Retry.ALWAYS)


def find_similar_states(state: Any, k: int = 10) -> Call[List[t.State]]:
    """The ``k`` model states most like ``state`` (each with its ``score``)."""
    return Call("find_similar_states", {"state": state, "k": int(k)}, _many(t.State, "states"), Retry.ALWAYS)


# ---- blocks ----------------------------------------------------------------


def store_block(
    name: str,
    text: Optional[str] = None,
    json: Any = UNSET,
    data: Optional[bytes] = None,
    persist: bool = True,
    readonly: bool = False,
    read: Optional[Iterable[str]] = None,
    write: Optional[Iterable[str]] = None,
) -> Call[t.Block]:
    """Stores a block of text, JSON or bytes (exactly one of them).
    ``persist=False`` makes a cache block that expires; ``readonly`` makes
    it unchangeable; ``read`` and ``write`` list the models (or ``"*"``)
    allowed besides the owner (server defaults: read ``["*"]``, write
    ``[]``)."""
    args: Dict[str, Any] = {"name": name, "content": _content(text, json, data), "persist": bool(persist)}
    if readonly:
        args["readonly"] = True
    _put(args, read=None if read is None else list(read), write=None if write is None else list(write))
    return Call("store_block", args, _one(t.Block), Retry.NEVER)


def query_blocks(text: str, k: int = 10) -> Call[List[t.BlockHit]]:
    """The block sections nearest in meaning to ``text``."""
    return Call("query_blocks", {"text": text, "k": int(k)}, _many(t.BlockHit, "hits"), Retry.ALWAYS)


def get_block(name: str) -> Call[Optional[t.Block]]:
    """A block by name, or ``None``."""
    return Call("get_block", {"name": name}, _one(t.Block, optional=True), Retry.ALWAYS)


def update_block(
    name: str,
    text: Optional[str] = None,
    json: Any = UNSET,
    data: Optional[bytes] = None,
    read: Optional[Iterable[str]] = None,
    write: Optional[Iterable[str]] = None,
) -> Call[t.Block]:
    """Replaces a block's content (at most one of text, json, data; a new
    content is one version on) and/or its ``read``/``write`` lists (owner
    only)."""
    args: Dict[str, Any] = {"name": name}
    content = _content(text, json, data, required=read is None and write is None)
    _put(args, content=content, read=None if read is None else list(read), write=None if write is None else list(write))
    return Call("update_block", args, _one(t.Block), Retry.AT_LEAST_ONCE)


def delete_block(name: str) -> Call[bool]:
    """Deletes a block; whether it was there (resent after a lost answer,
    so ``False`` may mean the lost attempt deleted it)."""
    return Call("delete_block", {"name": name}, _field("deleted", bool), Retry.ALWAYS)


def list_blocks(block_class: Optional[str] = None) -> Call[List[t.Block]]:
    """The blocks this model may read, of one class (``shared_knowledge``,
    ``cache``, …) or all."""
    args = _put({}, **{"class": block_class})
    return Call("list_blocks", args, _many(t.Block, "blocks"), Retry.ALWAYS)


# ---- sync jobs and the change feed (operators only; docs/SYNC.md) ---------
#
# Refused with ``permission_denied`` unless the server has no tokens or the
# connection's token has the namespace glob ``"*"``; on an instance without
# a cluster every one raises ``HvsError("no_cluster")``. Answers are the
# server's maps as decoded (a job's status: ``{spec, state, applied,
# unchanged, skipped, refused, conflicts: {kept_target, took_source,
# combined}, position, pending, lag_ms, last_error}``).

#: The conflict strategies a sync job may use (docs/SYNC.md).
STRATEGIES = ("last_write_wins", "highest_version", "merge", "geometric_mean", "keep_target")


def _names(names: Iterable[str]) -> List[str]:
    # A lone string is one name, not its letters.
    return [names] if isinstance(names, str) else [str(n) for n in names]


def _sync_spec(name: str, source: str, mode: Dict[str, Any], strategy: str, follow: bool) -> Dict[str, Any]:
    return {"name": name, "source": source, "mode": mode, "strategy": strategy, "follow": bool(follow)}


def sync_create(spec: Mapping[str, Any]) -> Call[Dict[str, Any]]:
    """Creates and starts a sync job on the server's instance from a spec
    map ``{name, source, mode, strategy?, follow?}`` (``mode``:
    ``{"kind": "full"}``, ``{"kind": "partial", "namespaces": [..],
    "regions"?: [..]}`` or ``{"kind": "selective", "filter": filter,
    "namespaces"?: [..]}``); returns the job's status map. A spec the
    server cannot read or refuses (an unknown strategy, a partial sync
    without namespaces, a name taken, this instance as the source) raises
    ``HvsError("bad_request")``. Never resent after a lost answer: the
    repeat would find the job it created."""
    return Call("sync_create", dict(spec), _raw, Retry.NEVER)


def sync_full(name: str, source: str, strategy: str = "last_write_wins", follow: bool = True) -> Call[Dict[str, Any]]:
    """A sync job copying every namespace of instance ``source`` into this
    one, deletions included; ``follow=False`` catches up once and stops.
    Returns its status map (see :meth:`sync_create`)."""
    return sync_create(_sync_spec(name, source, {"kind": "full"}, strategy, follow))


def sync_partial(
    name: str,
    source: str,
    namespaces: Iterable[str],
    regions: Iterable[str] = (),
    strategy: str = "last_write_wins",
    follow: bool = True,
) -> Call[Dict[str, Any]]:
    """A sync job copying the named namespaces of ``source`` (at least
    one), only vectors of ``regions`` when given. Returns its status map
    (see :meth:`sync_create`)."""
    mode: Dict[str, Any] = {"kind": "partial", "namespaces": _names(namespaces)}
    if regions:
        mode["regions"] = _names(regions)
    return sync_create(_sync_spec(name, source, mode, strategy, follow))


def sync_selective(
    name: str,
    source: str,
    filter: Filter,  # noqa: A002
    namespaces: Iterable[str] = (),
    strategy: str = "last_write_wins",
    follow: bool = True,
) -> Call[Dict[str, Any]]:
    """A sync job copying the vectors of ``source`` whose metadata matches
    ``filter`` (:mod:`hvs_client.filters`), in ``namespaces`` when given,
    else in all. Returns its status map (see :meth:`sync_create`)."""
    mode: Dict[str, Any] = {"kind": "selective", "filter": dict(filter)}
    if namespaces:
        mode["namespaces"] = _names(namespaces)
    return sync_create(_sync_spec(name, source, mode, strategy, follow))


def sync_list() -> Call[List[Dict[str, Any]]]:
    """Every sync job's status map on the instance, by name."""
    return Call("sync_list", {}, lambda ok, vector: list(ok["jobs"]), Retry.ALWAYS)


def sync_status(name: str) -> Call[Dict[str, Any]]:
    """One job's status map; an unknown job raises
    ``HvsError("unknown_sync_job")``."""
    return Call("sync_status", {"name": name}, _raw, Retry.ALWAYS)


def sync_pause(name: str) -> Call[Dict[str, Any]]:
    """Pauses a job (it resumes where it stopped); its status map. Pausing
    a paused job changes nothing."""
    return Call("sync_pause", {"name": name}, _raw, Retry.ALWAYS)


def sync_resume(name: str) -> Call[Dict[str, Any]]:
    """Resumes a paused job; its status map. Resuming a running job
    changes nothing."""
    return Call("sync_resume", {"name": name}, _raw, Retry.ALWAYS)


def sync_delete(name: str) -> Call[Dict[str, Any]]:
    """Stops a job and forgets it; its status map from before. Never resent
    after a lost answer: the repeat would raise ``unknown_sync_job``."""
    return Call("sync_delete", {"name": name}, _raw, Retry.NEVER)


def sync_conflicts(name: str, after: int = 0, limit: int = 100) -> Call[List[Dict[str, Any]]]:
    """The conflicts a job met, oldest first, each ``{seq, at_ms, vector,
    namespace, detail}``: those after audit sequence number ``after``, at
    most ``limit`` (the server answers at most 10,000). Page with the last
    one's ``seq``."""
    args = {"name": name, "after": int(after), "limit": int(limit)}
    return Call("sync_conflicts", args, lambda ok, vector: list(ok["conflicts"]), Retry.ALWAYS)


def cluster_status() -> Call[Dict[str, Any]]:
    """How far this instance's change feed is published: ``{instance,
    stream, connected, published, last_change, lag, last_error}``."""
    return Call("cluster_status", {}, _raw, Retry.ALWAYS)


# ---- bridges (docs/BRIDGES.md) ---------------------------------------------
#
# Creating, listing and deleting bridges are operators' operations (refused
# with ``permission_denied`` unless the server has no tokens or the
# connection's token has the namespace glob ``"*"``). A bridge's status map:
# ``{spec: {name, kind: {type, ...}}, searches, partial, carried, refused,
# position, last_error}``, and for a slow bridge ``slow: {state, chunks,
# vectors, bytes, active_ms, bytes_per_second, cursor, copied,
# source_digest, target_digest, digest_match}``.

#: The isolation policies a shared bridge may set.
ISOLATIONS = ("strict", "shared", "federated")


def bridge_create(spec: Mapping[str, Any]) -> Call[Dict[str, Any]]:
    """Creates and starts a bridge from a spec map ``{name, kind}``
    (``kind``: ``{"type": "shared", "networks": [..], "policy": ..}``,
    ``{"type": "federated", "namespace": .., "capability": ..,
    "timeout_ms"?: ..}``, ``{"type": "cross_manifold", "from": ..,
    "to": ..}`` or ``{"type": "slow", "source": .., "namespace": ..,
    "target"?: .., "bytes_per_second": .., "chunk_vectors"?: ..}``);
    returns its status map. A federated or slow bridge on an instance
    without a cluster raises ``HvsError("no_cluster")``. Never resent after
    a lost answer: the repeat would find the bridge it created."""
    return Call("bridge_create", dict(spec), _raw, Retry.NEVER)


def bridge_shared(name: str, networks: Iterable[str], policy: str) -> Call[Dict[str, Any]]:
    """A shared bridge: ``policy`` (``strict``, ``shared`` or ``federated``)
    between every pair of ``networks`` (models' regions, at least two)."""
    kind = {"type": "shared", "networks": _names(networks), "policy": policy}
    return bridge_create({"name": name, "kind": kind})


def bridge_federated(name: str, namespace: str, capability: str, timeout_ms: int = 2000) -> Call[Dict[str, Any]]:
    """A federated bridge: searches of ``namespace`` go to every instance
    of the cluster started with ``--capability`` ``capability``."""
    kind = {"type": "federated", "namespace": namespace, "capability": capability, "timeout_ms": int(timeout_ms)}
    return bridge_create({"name": name, "kind": kind})


def bridge_cross_manifold(name: str, source: str, target: str) -> Call[Dict[str, Any]]:
    """A cross-manifold bridge: the vectors of namespace ``source`` carried
    into namespace ``target`` (another geometry of the same dimension)."""
    kind = {"type": "cross_manifold", "from": source, "to": target}
    return bridge_create({"name": name, "kind": kind})


def bridge_slow(
    name: str,
    source: str,
    namespace: str,
    bytes_per_second: int,
    target: Optional[str] = None,
    chunk_vectors: int = 256,
) -> Call[Dict[str, Any]]:
    """A slow bridge: namespace ``namespace`` of instance ``source`` copied
    into ``target`` here (default: the same name) in chunks of
    ``chunk_vectors``, at most ``bytes_per_second`` on average; its
    ``slow`` map says how far it is (``state``: running, done, failed)."""
    kind: Dict[str, Any] = {
        "type": "slow",
        "source": source,
        "namespace": namespace,
        "bytes_per_second": int(bytes_per_second),
        "chunk_vectors": int(chunk_vectors),
    }
    if target is not None:
        kind["target"] = target
    return bridge_create({"name": name, "kind": kind})


def bridge_list() -> Call[List[Dict[str, Any]]]:
    """Every bridge's status map on the instance, by name."""
    return Call("bridge_list", {}, lambda ok, vector: list(ok["bridges"]), Retry.ALWAYS)


def bridge_status(name: str) -> Call[Dict[str, Any]]:
    """One bridge's status map; an unknown bridge raises
    ``HvsError("unknown_bridge")``."""
    return Call("bridge_status", {"name": name}, _raw, Retry.ALWAYS)


def bridge_delete(name: str) -> Call[Dict[str, Any]]:
    """Stops a bridge and forgets it; its status map from before. Never
    resent after a lost answer."""
    return Call("bridge_delete", {"name": name}, _raw, Retry.NEVER)


def bridge_search(
    name: str,
    vector: VectorLike,
    k: int = 10,
    filter: Optional[Filter] = None,  # noqa: A002
) -> Call[Dict[str, Any]]:
    """Searches through a federated or cross-manifold bridge: ``{hits:
    [{id, instance, namespace, distance, vector, metadata}], answered,
    missing, refused}``; a non-empty ``missing`` marks a partial answer."""
    args: Dict[str, Any] = {"name": name, "vector": encode_vector(vector), "k": int(k)}
    if filter is not None:
        args["filter"] = dict(filter)
    return Call("bridge_search", args, _raw, Retry.ALWAYS)


def call(op: str, args: Optional[Mapping[str, Any]] = None) -> Call[Any]:
    """Any operation by name; its answer's ``ok`` as decoded (dicts and
    lists). Never resent after a lost answer: the client cannot know what
    it does."""
    return Call(op, dict(args) if args else {}, _raw, Retry.NEVER)


#: Every operation above, for the clients' method tables (by its wire name;
#: ``sync_full``, ``sync_partial`` and ``sync_selective`` send ``sync_create``;
#: ``bridge_shared``, ``bridge_federated`` and ``bridge_cross_manifold`` send
#: ``bridge_create``).
OPERATIONS = (
    ping, stats,
    send, send_batch, broadcast, receive, ack, release, mailbox, get_message,
    create_namespace, namespace_info, grant_access, check_access, list_namespaces, delete_namespace,
    store_vector, batch_store_vectors, retrieve_vector, retrieve_vectors, update_vector,
    delete_vector, delete_vectors, delete_by_filter, search, range_search, batch_search, count, scroll,
    join, contribute, query_shared, consensus,
    register_state, update_state, get_state, find_similar_states,
    store_block, query_blocks, get_block, update_block, delete_block, list_blocks,
    sync_create, sync_full, sync_partial, sync_selective, sync_list, sync_status, sync_pause, sync_resume,
    sync_delete, sync_conflicts, cluster_status,
    bridge_create, bridge_shared, bridge_federated, bridge_cross_manifold, bridge_list, bridge_status,
    bridge_delete, bridge_search,
)  # fmt: skip
