"""One connection to an HVS server, acting as one model.

A background reader thread reads every frame the server sends: answers go
to the thread waiting for that request id (so several threads may call at
once and their requests are pipelined on the one socket), pushed
deliveries go to a queue read by :meth:`Client.next_delivery` and
:meth:`Client.deliveries`. A heartbeat thread sends ``ping`` when the
connection has been quiet for half the welcome's heartbeat interval.
"""

from __future__ import annotations

import itertools
import json as _json
import logging
import os
import queue
import socket
import struct
import threading
import time
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import msgpack

from . import types as t
from .errors import ConnectionLost, HvsClientError, HvsError, ProtocolError, RequestTimeout

log = logging.getLogger("hvs_client")

#: Protocol versions this client speaks.
PROTOCOL_VERSIONS = [1]

#: The largest frame read before the welcome says otherwise (16 MiB, the
#: server's default).
DEFAULT_MAX_FRAME = 16 << 20

#: No frame larger than this is ever read, whatever the server announces.
HARD_MAX_FRAME = 1 << 30

#: The client's name sent in ``hello``.
CLIENT_NAME = "hvs-client-python/0.1.0"

_HEADER = struct.Struct(">I")

Payload = Union[bytes, bytearray, memoryview, str, None]
Vector = Sequence[float]


def _payload(p: Payload) -> bytes:
    if p is None:
        return b""
    if isinstance(p, str):
        return p.encode("utf-8")
    if isinstance(p, (bytes, bytearray, memoryview)):
        return bytes(p)
    raise TypeError(f"payload must be bytes or str, not {type(p).__name__}")


def _vector(v: Optional[Iterable[float]]) -> Optional[List[float]]:
    # float() of each coordinate: lists, tuples and numpy arrays all work.
    return None if v is None else [float(x) for x in v]


def _id_list(ids: Union[str, "t.Message", Iterable[Union[str, "t.Message"]]]) -> List[str]:
    if isinstance(ids, (str, t.Message)):
        ids = [ids]
    return [i.id if isinstance(i, t.Message) else str(i) for i in ids]


def _outgoing(
    to: str = "",
    payload: Payload = None,
    vector: Optional[Vector] = None,
    embedding: Optional[Vector] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    ttl_ms: Optional[int] = None,
) -> Dict[str, Any]:
    """An outgoing message map (only the fields given)."""
    m: Dict[str, Any] = {"to": to, "payload": _payload(payload)}
    if vector is not None:
        m["vector"] = _vector(vector)
    if embedding is not None:
        m["embedding"] = _vector(embedding)
    if metadata:
        m["metadata"] = dict(metadata)
    if ttl_ms is not None:
        m["ttl_ms"] = int(ttl_ms)
    return m


def _content(text: Optional[str], json: Any, data: Optional[bytes], has_json: bool) -> Dict[str, Any]:
    given = [text is not None, has_json, data is not None]
    if sum(given) != 1:
        raise ValueError("give exactly one of text=, json= or data=")
    if text is not None:
        return {"text": str(text)}
    if data is not None:
        return {"bytes": bytes(data)}
    return {"json": json}


def _address(address: Union[str, Tuple[str, int]]) -> Tuple[str, int]:
    if isinstance(address, tuple):
        return address[0], int(address[1])
    host, sep, port = str(address).rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


class _Waiter:
    __slots__ = ("event", "ok", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok: Any = None
        self.error: Optional[BaseException] = None


# Put in the delivery queue when the connection ends, to wake readers.
_END = object()


def connect(
    contract_path: Union[str, "os.PathLike[str]", Mapping[str, Any]],
    token: Optional[str] = None,
    address: Union[str, Tuple[str, int]] = "127.0.0.1:7411",
    timeout: float = 30.0,
    *,
    heartbeat: bool = True,
    max_frame_bytes: Optional[int] = None,
    client_name: str = CLIENT_NAME,
) -> "Client":
    """Connects to the server at ``address`` and says hello as the model of
    the contract.

    ``contract_path`` is the contract file (its text is sent as it is), or
    a dict, sent as its JSON. ``token`` is the operator's token (needed when
    the server has a tokens file). ``timeout`` (seconds) bounds connecting,
    the handshake, and each request's wait for its answer.
    ``heartbeat=False`` sends no automatic pings (the server then
    disconnects a silent client after the welcome's
    ``heartbeat_timeout_ms``). ``max_frame_bytes`` caps the frames
    accepted from the server (default: the welcome's ``max_frame_bytes``).

    Raises :class:`HvsError` when the server refuses (``invalid_contract``,
    ``unauthorized``, ``forbidden_claim``, ``unsupported_version``, …) and
    :class:`ConnectionLost` when the server cannot be reached.
    """
    if isinstance(contract_path, Mapping):
        text = _json.dumps(contract_path)
    else:
        with open(contract_path, "r", encoding="utf-8") as f:
            text = f.read()
    return Client(
        text,
        token=token,
        address=address,
        timeout=timeout,
        heartbeat=heartbeat,
        max_frame_bytes=max_frame_bytes,
        client_name=client_name,
    )


class Client:
    """A connected model. Thread-safe: any number of threads may call its
    methods at once. Use :func:`connect` to make one; close it with
    :meth:`close` or a ``with`` block.

    Every method raises :class:`HvsError` when the server refuses,
    :class:`ConnectionLost` when the connection is gone and
    :class:`RequestTimeout` when no answer comes within the timeout.
    """

    def __init__(
        self,
        contract_text: str,
        token: Optional[str] = None,
        address: Union[str, Tuple[str, int]] = "127.0.0.1:7411",
        timeout: float = 30.0,
        heartbeat: bool = True,
        max_frame_bytes: Optional[int] = None,
        client_name: str = CLIENT_NAME,
    ) -> None:
        self.timeout = float(timeout)
        self._ids = itertools.count(1)
        self._id_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._state = threading.Lock()
        self._waiters: Dict[int, _Waiter] = {}
        self._lost: Optional[ConnectionLost] = None
        self._closed = False
        self._bye = False
        self._closing_push: Optional[Tuple[str, str]] = None
        self._unrouted: Optional[HvsError] = None
        self._pushes: "queue.Queue[Any]" = queue.Queue()
        self._last_sent = time.monotonic()
        self._stop = threading.Event()

        host, port = _address(address)
        self.address = f"{host}:{port}"
        try:
            sock = socket.create_connection((host, port), timeout=self.timeout)
        except OSError as e:
            raise ConnectionLost(f"cannot connect to {self.address}: {e}", "connect_failed") from e
        self._sock = sock
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._max_in = min(max_frame_bytes or DEFAULT_MAX_FRAME, HARD_MAX_FRAME)
            self._max_out = DEFAULT_MAX_FRAME
            self.welcome = self._handshake(contract_text, token, client_name)
            w = self.welcome
            self._max_out = int(w.max_frame_bytes or DEFAULT_MAX_FRAME)
            if max_frame_bytes is None:
                self._max_in = min(max(self._max_out, 1), HARD_MAX_FRAME)
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise

        self._reader = threading.Thread(target=self._read_loop, name=f"hvs-reader-{w.model}", daemon=True)
        self._reader.start()
        self._heartbeat: Optional[threading.Thread] = None
        if heartbeat:
            interval = max(int(w.heartbeat_interval_ms or 30000), 100) / 1000.0
            self._heartbeat = threading.Thread(
                target=self._heartbeat_loop, args=(interval,), name=f"hvs-heartbeat-{w.model}", daemon=True
            )
            self._heartbeat.start()

    # ---- the connection ------------------------------------------------

    @property
    def model(self) -> str:
        """The model this connection acts as."""
        return self.welcome.model

    @property
    def namespace(self) -> str:
        """The model's home namespace."""
        return self.welcome.namespace

    @property
    def closing(self) -> Optional[Tuple[str, str]]:
        """``(code, reason)`` of the server's ``closing`` push, if it sent one."""
        return self._closing_push

    @property
    def connected(self) -> bool:
        """Whether the connection is still up."""
        return self._lost is None and not self._closed

    def _next_id(self) -> int:
        with self._id_lock:
            return next(self._ids)

    def _encode(self, obj: Any) -> bytes:
        body = msgpack.packb(obj, use_bin_type=True)
        if len(body) > self._max_out:
            raise HvsError(
                "frame_too_large",
                f"the request is {len(body)} bytes; the server accepts at most {self._max_out}",
            )
        return _HEADER.pack(len(body)) + body

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self._sock.recv_into(view[got:], min(n - got, 1 << 20))
            if k == 0:
                raise EOFError("the server closed the connection")
            got += k
        return bytes(buf)

    def _read_frame(self) -> Any:
        (n,) = _HEADER.unpack(self._recv_exact(4))
        if n > self._max_in:
            raise ProtocolError(f"the server sent a frame of {n} bytes; at most {self._max_in} are accepted")
        body = self._recv_exact(n)
        try:
            frame = msgpack.unpackb(body, raw=False)
        except Exception as e:  # msgpack raises several types
            raise ProtocolError(f"unreadable frame: {e}") from e
        if not isinstance(frame, dict):
            raise ProtocolError(f"a frame that is not a map: {type(frame).__name__}")
        return frame

    def _handshake(self, contract: str, token: Optional[str], client_name: str) -> t.Welcome:
        args: Dict[str, Any] = {"versions": PROTOCOL_VERSIONS, "contract": contract, "client": client_name}
        if token is not None:
            args["token"] = token
        try:
            self._sock.sendall(self._encode({"id": 0, "op": "hello", "args": args}))
            frame = self._read_frame()
        except socket.timeout as e:
            raise RequestTimeout(f"no answer to hello within {self.timeout} s") from e
        except (OSError, EOFError) as e:
            raise ConnectionLost(f"at hello: {e}") from e
        if "push" in frame:
            if frame.get("push") == "closing":
                raise ConnectionLost(str(frame.get("reason")), str(frame.get("code")))
            raise ProtocolError("a push before the welcome")
        if "error" in frame:
            raise _error(frame["error"])
        if "ok" not in frame:
            raise ProtocolError("an answer to hello with neither ok nor error")
        return t.build(t.Welcome, frame["ok"])

    def _send_frame(self, data: bytes) -> None:
        with self._write_lock:
            self._sock.sendall(data)
            self._last_sent = time.monotonic()

    def _read_loop(self) -> None:
        why: ConnectionLost
        try:
            while True:
                frame = self._read_frame()
                if "push" in frame:
                    kind = frame.get("push")
                    if kind == "delivery":
                        self._pushes.put(t.build(t.Delivery, frame.get("delivery")))
                    elif kind == "closing":
                        self._closing_push = (str(frame.get("code")), str(frame.get("reason")))
                        log.info("server closing the connection: %s: %s", *self._closing_push)
                    else:
                        log.debug("ignoring an unknown push %r", kind)
                    continue
                rid = frame.get("id")
                if "error" in frame:
                    err = _error(frame["error"])
                    if rid is None:
                        # The server could not read some request far enough
                        # to find its id; nobody can be told but the log.
                        self._unrouted = err
                        log.warning("the server could not read a request: %s", err)
                        continue
                    self._answer(rid, None, err)
                elif "ok" in frame:
                    self._answer(rid, frame["ok"], None)
                else:
                    raise ProtocolError("a frame with neither push, error nor ok")
        except BaseException as e:  # the connection ends here, whatever ended it
            why = self._loss_reason(e)
        self._fail_all(why)

    def _loss_reason(self, e: BaseException) -> ConnectionLost:
        if self._closed or self._bye:
            return ConnectionLost("the client is closed", "closed")
        if self._closing_push is not None:
            code, reason = self._closing_push
            return ConnectionLost(reason, code)
        if isinstance(e, ProtocolError):
            return ConnectionLost(str(e), "protocol")
        text = str(e) or type(e).__name__
        if self._unrouted is not None:
            text = f"{text} (after the server's {self._unrouted})"
        return ConnectionLost(text)

    def _answer(self, rid: Any, ok: Any, err: Optional[BaseException]) -> None:
        with self._state:
            w = self._waiters.pop(rid, None) if isinstance(rid, int) else None
        if w is None:
            # A heartbeat's pong, or an answer that came after its timeout.
            return
        w.ok, w.error = ok, err
        w.event.set()

    def _fail_all(self, why: ConnectionLost) -> None:
        with self._state:
            if self._lost is None:
                self._lost = why
            waiters = list(self._waiters.values())
            self._waiters.clear()
        self._stop.set()
        for w in waiters:
            w.error = why
            w.event.set()
        self._pushes.put(_END)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _heartbeat_loop(self, interval: float) -> None:
        # Something is sent at least every `interval`: a ping whenever half
        # of it passed with nothing sent.
        half = interval / 2
        while not self._stop.wait(half):
            if time.monotonic() - self._last_sent < half:
                continue
            try:
                # Nobody waits for a heartbeat's answer; the reader drops it.
                self._send_frame(self._encode({"id": self._next_id(), "op": "ping", "args": {}}))
            except (OSError, HvsClientError):
                return

    # ---- requests ------------------------------------------------------

    def request(self, op: str, args: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None) -> Any:
        """Sends one request and waits for its answer: the decoded ``ok``
        value (maps are dicts, ``bin`` is bytes). Raises :class:`HvsError`
        for an error frame."""
        if self._closed:
            raise ConnectionLost("the client is closed", "closed")
        return self._request(op, args, timeout)

    def _request(self, op: str, args: Optional[Mapping[str, Any]], timeout: Optional[float]) -> Any:
        rid = self._next_id()
        data = self._encode({"id": rid, "op": op, "args": dict(args) if args else {}})
        w = _Waiter()
        with self._state:
            if self._lost is not None:
                raise _copy(self._lost)
            self._waiters[rid] = w
        try:
            self._send_frame(data)
        except OSError as e:
            with self._state:
                self._waiters.pop(rid, None)
            raise _copy(self._lost) if self._lost else ConnectionLost(f"writing the request failed: {e}") from e
        wait = self.timeout if timeout is None else timeout
        if not w.event.wait(wait):
            with self._state:
                self._waiters.pop(rid, None)
            if not w.event.is_set():
                raise RequestTimeout(f"no answer to {op!r} within {wait} s")
        if w.error is not None:
            raise _copy(w.error)
        return w.ok

    def call(self, op: str, **args: Any) -> Any:
        """Any operation by name, with its arguments as keywords; returns the
        decoded ``ok`` value as it is (dicts and lists). Byte strings are
        sent as msgpack ``bin``."""
        return self.request(op, args)

    def close(self, timeout: float = 5.0) -> None:
        """Says ``bye`` (the model is marked disconnected; its mailbox keeps
        its messages) and closes the connection. Idempotent."""
        with self._state:
            if self._closed:
                return
            alive = self._lost is None
        self._bye = True
        self._stop.set()
        if alive:
            try:
                self._request("bye", None, min(timeout, self.timeout))
            except HvsClientError:
                pass
        self._closed = True
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.join(timeout)
        self._sock.close()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed"
        return f"<hvs_client.Client {self.welcome.model!r} at {self.address} {state}>"

    # ---- session -------------------------------------------------------

    def ping(self) -> int:
        """Round trip to the server; returns its clock (ms since the epoch)."""
        return int(self.request("ping")["now_ms"])

    def stats(self) -> t.Stats:
        """The server's storage and connection statistics and this model's
        mailbox counts."""
        return t.build(t.Stats, self.request("stats"))

    # ---- messages ------------------------------------------------------

    def send(
        self,
        to: str,
        payload: Payload,
        vector: Optional[Vector] = None,
        embedding: Optional[Vector] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        ttl_ms: Optional[int] = None,
    ) -> str:
        """Sends a message to model ``to``; returns its id once the server
        has stored it. ``vector`` is a point of this model's space (projected
        onto it), ``embedding`` goes through the contract's encoder; with
        neither, the server's text encoder reads the payload. A ``str``
        payload is sent as UTF-8."""
        ok = self.request("send", _outgoing(to, payload, vector, embedding, metadata, ttl_ms))
        return str(ok["id"])

    def send_batch(self, messages: Iterable[Mapping[str, Any]]) -> List[str]:
        """Sends several messages at once, all or none; each is a dict with
        the keyword arguments of :meth:`send` (``to``, ``payload``,
        ``vector``, ``embedding``, ``metadata``, ``ttl_ms``). Returns their
        ids in order."""
        msgs = [_outgoing(**dict(m)) for m in messages]
        return [str(i) for i in self.request("send_batch", {"messages": msgs})["ids"]]

    def broadcast(
        self,
        payload: Payload,
        vector: Optional[Vector] = None,
        namespace: Optional[str] = None,
        exclude: Optional[Iterable[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        embedding: Optional[Vector] = None,
        ttl_ms: Optional[int] = None,
    ) -> t.BroadcastResult:
        """Sends one message to every connected model (or to the members of
        ``namespace``) except this one and ``exclude``. Needs the contract's
        ``permissions.broadcast``."""
        args = _outgoing("", payload, vector, embedding, metadata, ttl_ms)
        del args["to"]
        if namespace is not None:
            args["namespace"] = namespace
        if exclude:
            args["exclude"] = list(exclude)
        return t.build(t.BroadcastResult, self.request("broadcast", args))

    def receive(self, max: int = 100) -> List[t.Delivery]:  # noqa: A002 (the protocol's name)
        """Up to ``max`` messages waiting for this model (an empty list when
        none are). Ack each before its ``deadline_ms``."""
        ok = self.request("receive", {"max": int(max)})
        return t.build_list(t.Delivery, ok.get("deliveries"))

    def ack(self, ids: Union[str, t.Message, Iterable[Union[str, t.Message]]]) -> t.AckResult:
        """Acknowledges messages (ids, or the deliveries themselves)."""
        return t.build(t.AckResult, self.request("ack", {"ids": _id_list(ids)}))

    def release(self, ids: Union[str, t.Message, Iterable[Union[str, t.Message]]]) -> int:
        """Hands received messages back for redelivery now; returns how many."""
        return int(self.request("release", {"ids": _id_list(ids)})["released"])

    def mailbox(self) -> t.Mailbox:
        """This model's mailbox: waiting, in flight, dead letters."""
        return t.build(t.Mailbox, self.request("mailbox"))

    def get_message(self, id: str) -> Optional[t.Message]:  # noqa: A002
        """A stored message by id, or ``None``."""
        ok = self.request("get_message", {"id": id})
        return None if ok is None else t.build(t.Message, ok)

    def subscribe(self) -> None:
        """From now on, messages for this model are pushed; read them with
        :meth:`next_delivery` or :meth:`deliveries` (and ack them)."""
        self.request("subscribe")

    def unsubscribe(self) -> None:
        """Stops the pushes (messages wait in the mailbox for :meth:`receive`)."""
        self.request("unsubscribe")

    def next_delivery(self, timeout: Optional[float] = None) -> Optional[t.Delivery]:
        """The next pushed delivery (after :meth:`subscribe`), waiting at
        most ``timeout`` seconds (``None``: as long as it takes); ``None``
        on timeout. Raises :class:`ConnectionLost` once the connection is
        gone and every delivery pushed before has been read."""
        try:
            item = self._pushes.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self._pushes.put(_END)  # wake any other reader too
            raise _copy(self._lost) if self._lost else ConnectionLost("the connection is closed", "closed")
        return item

    def deliveries(self, timeout: Optional[float] = None) -> Iterator[t.Delivery]:
        """Iterates over pushed deliveries (after :meth:`subscribe`). Stops
        when ``timeout`` seconds pass with none (``None``: never) or after
        :meth:`close`; raises :class:`ConnectionLost` if the connection
        drops."""
        while True:
            try:
                d = self.next_delivery(timeout)
            except ConnectionLost:
                if self._closed or self._bye:
                    return
                raise
            if d is None:
                return
            yield d

    # ---- namespaces and vectors ------------------------------------------

    def create_namespace(
        self, name: str, geometry: Mapping[str, Any], visibility: str = "private"
    ) -> t.Namespace:
        """Creates a namespace owned by this model. ``geometry`` is e.g.
        ``{"kind": "hyperboloid", "dim": 12, "curvature": 1.0}`` (see
        :func:`hvs_client.geometry`); ``visibility`` is ``private``,
        ``shared`` or ``public``."""
        args = {"name": name, "geometry": dict(geometry), "visibility": visibility}
        return t.build(t.Namespace, self.request("create_namespace", args))

    def namespace_info(self, name: str) -> t.Namespace:
        """A namespace's owner, geometry, grants and members."""
        return t.build(t.Namespace, self.request("namespace_info", {"name": name}))

    def grant_access(self, namespace: str, model: str, read: bool = False, write: bool = False) -> None:
        """Lets ``model`` read and/or write a namespace this model owns."""
        self.request("grant_access", {"namespace": namespace, "model": model, "read": read, "write": write})

    def check_access(self, namespace: str, kind: str = "read") -> t.AccessAnswer:
        """Whether this model may ``read`` or ``write`` a namespace (truthy
        when allowed)."""
        return t.build(t.AccessAnswer, self.request("check_access", {"namespace": namespace, "kind": kind}))

    def store_vector(
        self,
        namespace: str,
        vector: Vector,
        region: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> t.StoredVector:
        """Stores a point (it must lie on the namespace's manifold)."""
        args: Dict[str, Any] = {"namespace": namespace, "vector": _vector(vector)}
        if region is not None:
            args["region"] = region
        if metadata:
            args["metadata"] = dict(metadata)
        return t.build(t.StoredVector, self.request("store_vector", args))

    def search(
        self,
        namespace: str,
        vector: Vector,
        k: int = 10,
        filter: Optional[Mapping[str, Any]] = None,  # noqa: A002 (the protocol's name)
        region: Optional[str] = None,
        offset: int = 0,
        exact: bool = False,
    ) -> List[t.Hit]:
        """The ``k`` vectors of ``namespace`` nearest to ``vector``, nearest
        first. ``filter`` is a metadata filter (see :mod:`hvs_client.filters`)."""
        args: Dict[str, Any] = {
            "namespace": namespace,
            "vector": _vector(vector),
            "k": int(k),
            "offset": int(offset),
            "exact": bool(exact),
        }
        if filter is not None:
            args["filter"] = filter
        if region is not None:
            args["region"] = region
        return t.build_list(t.Hit, self.request("search", args).get("hits"))

    # ---- shared spaces ---------------------------------------------------

    def join(self, space: str, capabilities: Iterable[str] = ()) -> None:
        """Joins a shared space, declaring what this model can do."""
        self.request("join", {"space": space, "capabilities": list(capabilities)})

    def contribute(self, space: str, key: str, vector: Vector, value: Any = None) -> str:
        """Contributes a point (and any JSON-like value) under ``key``; a
        later contribution with the same key replaces it. Returns its id."""
        args = {"space": space, "key": key, "vector": _vector(vector), "value": value}
        return str(self.request("contribute", args)["id"])

    def query_shared(self, space: str, vector: Vector, k: int = 10) -> List[t.SharedHit]:
        """The ``k`` contributions nearest to ``vector``."""
        ok = self.request("query_shared", {"space": space, "vector": _vector(vector), "k": int(k)})
        return t.build_list(t.SharedHit, ok.get("hits"))

    def consensus(self, space: str, weights: Optional[Mapping[str, float]] = None) -> t.Consensus:
        """The weighted Fréchet mean of the space's contributions (weights by
        contributor, default 1 each)."""
        args: Dict[str, Any] = {"space": space}
        if weights is not None:
            args["weights"] = {str(m): float(w) for m, w in weights.items()}
        return t.build(t.Consensus, self.request("consensus", args))

    # ---- model state -----------------------------------------------------

    def register_state(self, schema: Any) -> None:
        """Registers this model's state schema."""
        self.request("register_state", {"schema": schema})

    def update_state(self, state: Any) -> int:
        """Replaces this model's state; returns its version."""
        return int(self.request("update_state", {"state": state})["version"])

    def get_state(self, model: str) -> Optional[t.State]:
        """A model's state, or ``None``."""
        ok = self.request("get_state", {"model": model})
        return None if ok is None else t.build(t.State, ok)

    def find_similar_states(self, state: Any, k: int = 10) -> List[t.State]:
        """The ``k`` model states most like ``state`` (each with its ``score``)."""
        ok = self.request("find_similar_states", {"state": state, "k": int(k)})
        return t.build_list(t.State, ok.get("states"))

    # ---- blocks ----------------------------------------------------------

    def store_block(
        self,
        name: str,
        text: Optional[str] = None,
        json: Any = _UNSET,
        data: Optional[bytes] = None,
        persist: bool = True,
    ) -> t.Block:
        """Stores a block of text, JSON or bytes (exactly one of them).
        ``persist=False`` makes a cache block that expires."""
        content = _content(text, None if json is _UNSET else json, data, json is not _UNSET)
        ok = self.request("store_block", {"name": name, "content": content, "persist": bool(persist)})
        return t.build(t.Block, ok)

    def query_blocks(self, text: str, k: int = 10) -> List[t.BlockHit]:
        """The block sections nearest in meaning to ``text``."""
        ok = self.request("query_blocks", {"text": text, "k": int(k)})
        return t.build_list(t.BlockHit, ok.get("hits"))

    def get_block(self, name: str) -> Optional[t.Block]:
        """A block by name, or ``None``."""
        ok = self.request("get_block", {"name": name})
        return None if ok is None else t.build(t.Block, ok)

    def update_block(
        self, name: str, text: Optional[str] = None, json: Any = _UNSET, data: Optional[bytes] = None
    ) -> t.Block:
        """Replaces a block's content (exactly one of text, json, data);
        returns the block, one version on."""
        content = _content(text, None if json is _UNSET else json, data, json is not _UNSET)
        return t.build(t.Block, self.request("update_block", {"name": name, "content": content}))

    def delete_block(self, name: str) -> bool:
        """Deletes a block; whether it was there."""
        return bool(self.request("delete_block", {"name": name})["deleted"])


def _copy(e: BaseException) -> BaseException:
    # One loss is raised in many threads: each gets its own exception.
    if isinstance(e, ConnectionLost):
        return ConnectionLost(e.reason, e.code)
    return e


def _error(e: Any) -> HvsError:
    if not isinstance(e, Mapping):
        return HvsError("protocol", f"an unreadable error: {e!r}")
    retry = e.get("retry_after_ms")
    return HvsError(str(e.get("code")), str(e.get("message", "")), None if retry is None else int(retry))
