"""The blocking client: one model's connection to an HVS server, kept up
across drops.

A background reader thread reads every frame the server sends: answers go
to the thread waiting for that request id (so several threads may call at
once and their requests are pipelined on the one socket), pushed
deliveries go to a queue read by :meth:`Client.next_delivery` and
:meth:`Client.deliveries`. A heartbeat thread sends ``ping`` when the
connection has been quiet for half the welcome's heartbeat interval.

When the connection drops, the next call (or a reader of pushes) connects
again with backoff, says hello with the same contract and token,
subscribes again if the client was subscribed, and resends the request if
:func:`hvs_client.codec.may_resend` allows it (see the README's
"Reconnection"). Given the other ``servers`` of a failover group, it
follows the group's primary instead (:class:`GroupServers`, the README's
"Following a failover group"). The operations themselves are
:mod:`hvs_client.protocol`.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import json as _json
import logging
import os
import queue
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, TypeVar, Union

from . import codec
from . import protocol as p
from . import types as t
from .codec import CLIENT_NAME, DEFAULT_MAX_FRAME, HARD_MAX_FRAME, PROTOCOL_VERSIONS, Backoff
from .errors import ConnectionLost, HvsClientError, HvsError, ProtocolError, RequestTimeout

if TYPE_CHECKING:
    from typing_extensions import Concatenate, ParamSpec

    P = ParamSpec("P")

__all__ = ["PROTOCOL_VERSIONS", "Client", "GroupServers", "connect"]

log = logging.getLogger("hvs_client")

T = TypeVar("T")


def parse_address(address: Union[str, Tuple[str, int]]) -> Tuple[str, int]:
    """``(host, port)`` from ``"host:port"`` (``[v6]:port`` too) or a pair."""
    if isinstance(address, tuple):
        return address[0], int(address[1])
    host, sep, port = str(address).rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


#: A server's address: ``"host:port"`` or ``(host, port)``.
Address = Union[str, Tuple[str, int]]

#: How long a client following a group waits for a server's welcome
#: before passing over it for the next (a paused server, say), in seconds.
HELLO_WAIT = 5.0

#: Refusals after which a client following a group sends the request again,
#: to the primary: the server is not (or no longer) the primary, a write was
#: committed but not confirmed replicated, NATS did not answer the server (a
#: node lost, a leader being elected), or the server is shutting down.
FAILOVER_CODES = frozenset({"not_primary", "not_replicated", "cluster_unavailable", "shutting_down"})

#: Losses that end even a following client's attempts: it was closed,
#: another connection took its model over (taking it back would fight it),
#: or the server does not speak HVS.
FINAL_LOSSES = frozenset({"closed", "replaced", "protocol"})


def is_failover(e: BaseException) -> bool:
    """Whether a client following a group tries again after ``e``: a lost
    or refused connection, no answer in time, or a refusal in
    :data:`FAILOVER_CODES`."""
    if isinstance(e, ConnectionLost):
        return e.code not in FINAL_LOSSES
    if isinstance(e, RequestTimeout):
        return True
    return isinstance(e, HvsError) and e.code in FAILOVER_CODES


class GroupServers:
    """The servers of a failover group a client follows, and which to try
    first: the one named by the last ``not_primary`` answer, else the last
    that took the hello, else ``address``, then the others in order.
    Shared by both clients; assignments only, so safe across threads."""

    def __init__(self, address: Address, servers: Iterable[Address]) -> None:
        self.servers: List[Tuple[str, int]] = []
        for a in [address, *servers]:
            hp = parse_address(a)
            if hp not in self.servers:
                self.servers.append(hp)
        self._first: Optional[Tuple[str, int]] = None

    def candidates(self) -> List[Tuple[str, int]]:
        """The servers to try, in order."""
        first = [] if self._first is None else [self._first]
        return first + [a for a in self.servers if a != self._first]

    def took(self, address: Tuple[str, int]) -> None:
        """``address`` took the hello: it is tried first from now on."""
        self._first = address

    def follow(self, e: BaseException, refused_by: Optional[Tuple[str, int]] = None) -> bool:
        """Tries first the primary ``e`` names (a ``not_primary`` answer's
        ``primary``), unless that is the server that refused; whether it
        named one."""
        primary = e.primary if isinstance(e, HvsError) and e.code == "not_primary" else None
        if not primary:
            return False
        try:
            named = parse_address(primary)
        except ValueError:
            return False
        if named == refused_by:
            return False
        self._first = named
        return True


def read_contract(contract: Union[str, "os.PathLike[str]", Mapping[str, Any]]) -> str:
    """A contract's text: the file's as it is, or a dict as JSON."""
    if isinstance(contract, Mapping):
        return _json.dumps(contract)
    with open(contract, "r", encoding="utf-8") as f:
        return f.read()


class _Waiter:
    __slots__ = ("event", "ok", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok: Any = None
        self.error: Optional[BaseException] = None


class _End:
    """Put in the delivery queue when connection ``generation`` ends."""

    __slots__ = ("generation",)

    def __init__(self, generation: int) -> None:
        self.generation = generation


class _Connection:
    """One socket after its handshake, with its reader and heartbeat
    threads. It never reconnects: the :class:`Client` replaces it."""

    def __init__(
        self,
        sock: socket.socket,
        welcome: t.Welcome,
        max_in: int,
        pushes: "queue.Queue[Any]",
        vector: t.VectorReader,
        generation: int,
        heartbeat: bool,
    ) -> None:
        self.sock = sock
        self.welcome = welcome
        self.max_in = max_in
        self.max_out = int(welcome.max_frame_bytes or DEFAULT_MAX_FRAME)
        self.generation = generation
        self.loss: Optional[ConnectionLost] = None
        self.closing_push: Optional[Tuple[str, str]] = None
        self._pushes = pushes
        self._vector = vector
        self._ids = itertools.count(1)
        self._id_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._state = threading.Lock()
        self._waiters: Dict[int, _Waiter] = {}
        self._leaving = False
        self._unrouted: Optional[HvsError] = None
        self._last_sent = time.monotonic()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name=f"hvs-reader-{welcome.model}", daemon=True)
        self._reader.start()
        self._heartbeat: Optional[threading.Thread] = None
        if heartbeat:
            interval = max(int(welcome.heartbeat_interval_ms or 30000), 100) / 1000.0
            self._heartbeat = threading.Thread(
                target=self._heartbeat_loop, args=(interval,), name=f"hvs-heartbeat-{welcome.model}", daemon=True
            )
            self._heartbeat.start()

    @classmethod
    def open(
        cls,
        address: Tuple[str, int],
        contract: str,
        token: Optional[str],
        client_name: str,
        timeout: float,
        max_frame_bytes: Optional[int],
        pushes: "queue.Queue[Any]",
        vector: t.VectorReader,
        generation: int,
        heartbeat: bool,
    ) -> "_Connection":
        """Connects and says hello; raises the server's refusal as
        :class:`HvsError`, an unreachable server as :class:`ConnectionLost`
        (``connect_failed``)."""
        host, port = address
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise ConnectionLost(f"cannot connect to {host}:{port}: {e}", "connect_failed") from e
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            max_in = min(max_frame_bytes or DEFAULT_MAX_FRAME, HARD_MAX_FRAME)
            try:
                sock.sendall(codec.encode_frame(codec.hello_frame(contract, token, client_name), DEFAULT_MAX_FRAME))
                welcome = codec.read_welcome(_read_frame(sock, max_in))
            except socket.timeout as e:
                raise RequestTimeout(f"no answer to hello within {timeout} s") from e
            except (OSError, EOFError) as e:
                raise ConnectionLost(f"at hello: {e}") from e
            if max_frame_bytes is None:
                max_in = min(max(int(welcome.max_frame_bytes or DEFAULT_MAX_FRAME), 1), HARD_MAX_FRAME)
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        return cls(sock, welcome, max_in, pushes, vector, generation, heartbeat)

    @property
    def alive(self) -> bool:
        return self.loss is None

    def request(self, op: str, args: Mapping[str, Any], timeout: float) -> Any:
        """Sends one request and waits for its ``ok``. A loss raises
        :class:`ConnectionLost` whose ``maybe_done`` says whether the
        request was written."""
        with self._id_lock:
            rid = next(self._ids)
        data = codec.encode_frame(codec.request_frame(rid, op, args), self.max_out)
        w = _Waiter()
        with self._state:
            if self.loss is not None:
                raise self.loss.copy(maybe_done=False)
            self._waiters[rid] = w
        try:
            self._send(data)
        except OSError as e:
            with self._state:
                self._waiters.pop(rid, None)
            # sendall failed before the frame's last byte: the server never
            # had the whole request.
            loss = self.loss or ConnectionLost(f"writing the request failed: {e}")
            self._fail_all(loss)
            raise loss.copy(maybe_done=False) from e
        if not w.event.wait(timeout):
            with self._state:
                self._waiters.pop(rid, None)
            if not w.event.is_set():
                raise RequestTimeout(f"no answer to {op!r} within {timeout} s")
        if w.error is not None:
            raise w.error
        return w.ok

    def abandon(self, why: HvsClientError) -> None:
        """Ends the connection because of ``why`` (its server is not the
        primary, or did not answer): a client following a group connects
        again."""
        self._fail_all(ConnectionLost(str(why), why.code))

    def close(self, timeout: float, say_bye: bool) -> None:
        """Says ``bye`` (when asked and still up), then closes."""
        self._leaving = True
        if say_bye and self.loss is None:
            try:
                self.request("bye", {}, timeout)
            except HvsClientError:
                pass
        self._fail_all(ConnectionLost("the client is closed", "closed"))
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout)
        self.sock.close()
        if self._heartbeat is not None and threading.current_thread() is not self._heartbeat:
            self._heartbeat.join(timeout)

    def _send(self, data: bytes) -> None:
        with self._write_lock:
            self.sock.sendall(data)
            self._last_sent = time.monotonic()

    def _read_loop(self) -> None:
        try:
            while True:
                f = codec.read_frame(_read_frame(self.sock, self.max_in))
                if f.kind is codec.Kind.DELIVERY:
                    self._pushes.put(t.build(t.Delivery, f.delivery, self._vector))
                elif f.kind is codec.Kind.CLOSING:
                    self.closing_push = f.closing
                    log.info("server closing the connection: %s: %s", *f.closing)  # type: ignore[misc]
                elif f.kind is codec.Kind.UNROUTED:
                    # The server could not read some request far enough to
                    # find its id; nobody can be told but the log.
                    self._unrouted = f.error
                    log.warning("the server could not read a request: %s", f.error)
                elif f.kind is codec.Kind.ANSWER:
                    self._answer(f.id, f.ok, f.error)
        except BaseException as e:  # the connection ends here, whatever ended it
            self._fail_all(self._loss_reason(e))

    def _loss_reason(self, e: BaseException) -> ConnectionLost:
        if self._leaving:
            return ConnectionLost("the client is closed", "closed")
        if self.closing_push is not None:
            code, reason = self.closing_push
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
            return  # a heartbeat's pong, or an answer that came after its timeout
        w.ok, w.error = ok, err
        w.event.set()

    def _fail_all(self, why: ConnectionLost) -> None:
        with self._state:
            if self.loss is not None:
                return
            self.loss = why
            waiters = list(self._waiters.values())
            self._waiters.clear()
        self._stop.set()
        for w in waiters:
            w.error = why.copy(maybe_done=True)
            w.event.set()
        self._pushes.put(_End(self.generation))
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _heartbeat_loop(self, interval: float) -> None:
        # Something is sent at least every `interval`: a ping whenever half
        # of it passed with nothing sent. Nobody waits for its answer.
        half = interval / 2
        while not self._stop.wait(half):
            if time.monotonic() - self._last_sent < half:
                continue
            with self._id_lock:
                rid = next(self._ids)
            try:
                self._send(codec.encode_frame(codec.request_frame(rid, "ping", {}), self.max_out))
            except (OSError, HvsClientError):
                return


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], min(n - got, 1 << 20))
        if k == 0:
            raise EOFError("the server closed the connection")
        got += k
    return bytes(buf)


def _read_frame(sock: socket.socket, max_in: int) -> Dict[str, Any]:
    n = codec.frame_length(_recv_exact(sock, 4), max_in)
    return codec.decode_body(_recv_exact(sock, n))


def _operation(build: "Callable[P, p.Call[T]]") -> "Callable[Concatenate[Client, P], T]":
    """A method of :class:`Client` that runs the protocol's ``build``."""

    def method(self: Client, /, *args: Any, **kwargs: Any) -> T:
        return self._run(build(*args, **kwargs))

    functools.update_wrapper(method, build)
    method.__qualname__ = f"Client.{build.__name__}"
    # help() and IDEs show the operation's arguments, without the Call.
    sig = inspect.signature(build)
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[this, *sig.parameters.values()], return_annotation=inspect.Signature.empty
    )
    del method.__wrapped__  # type: ignore[attr-defined]
    return method


def connect(
    contract_path: Union[str, "os.PathLike[str]", Mapping[str, Any]],
    token: Optional[str] = None,
    address: Union[str, Tuple[str, int]] = "127.0.0.1:7411",
    timeout: float = 30.0,
    *,
    heartbeat: bool = True,
    max_frame_bytes: Optional[int] = None,
    client_name: str = CLIENT_NAME,
    numpy: Optional[bool] = None,
    reconnect: bool = True,
    reconnect_timeout: Optional[float] = None,
    backoff: Backoff = Backoff(),
    at_least_once: bool = False,
    max_resends: int = 3,
    servers: Iterable[Address] = (),
    failover_timeout: float = 30.0,
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

    ``numpy``: vectors in answers are numpy arrays (``True``), lists
    (``False``), or numpy arrays when numpy is installed (``None``, the
    default). Vectors given may be either, always.

    ``reconnect`` (default on): after the connection drops, connect again
    with ``backoff`` for up to ``reconnect_timeout`` seconds (default
    ``timeout``) and resend what is safe to resend, each request at most
    ``max_resends`` times. ``at_least_once=True`` also resends writes
    whose answer was lost (``send``, ``store_vector``, …), which may then
    be done twice. See the README's "Reconnection".

    ``servers``: the other servers of a failover group (``address`` among
    them or not). With any, the client follows the group's primary: it
    connects to the server that takes its hello (``address`` first, then
    the primary a ``not_primary`` refusal names, then the others; a server
    that does not greet within 5 s is passed over), and a request that
    meets a lost connection, a timeout, ``not_primary``,
    ``not_replicated``, ``cluster_unavailable`` or ``shutting_down`` is
    sent again, to the primary, for up to ``failover_timeout`` seconds —
    writes too, so a write may be carried out twice (``at_least_once`` and
    ``max_resends`` then play no part). See the README's "Following a
    failover group".

    Raises :class:`HvsError` when the server refuses (``invalid_contract``,
    ``unauthorized``, ``forbidden_claim``, ``unsupported_version``, …) and
    :class:`ConnectionLost` when the server cannot be reached (the first
    connection is not retried).
    """
    return Client(
        read_contract(contract_path),
        token=token,
        address=address,
        timeout=timeout,
        heartbeat=heartbeat,
        max_frame_bytes=max_frame_bytes,
        client_name=client_name,
        numpy=numpy,
        reconnect=reconnect,
        reconnect_timeout=reconnect_timeout,
        backoff=backoff,
        at_least_once=at_least_once,
        max_resends=max_resends,
        servers=servers,
        failover_timeout=failover_timeout,
    )


class Client:
    """A connected model. Thread-safe: any number of threads may call its
    methods at once. Use :func:`connect` to make one; close it with
    :meth:`close` or a ``with`` block.

    Every method raises :class:`HvsError` when the server refuses,
    :class:`ConnectionLost` when the connection is gone and the request
    could not be carried to a new one, and :class:`RequestTimeout` when no
    answer comes within the timeout.
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
        *,
        numpy: Optional[bool] = None,
        reconnect: bool = True,
        reconnect_timeout: Optional[float] = None,
        backoff: Backoff = Backoff(),
        at_least_once: bool = False,
        max_resends: int = 3,
        servers: Iterable[Address] = (),
        failover_timeout: float = 30.0,
    ) -> None:
        self.timeout = float(timeout)
        self.reconnect = bool(reconnect)
        self.reconnect_timeout = float(self.timeout if reconnect_timeout is None else reconnect_timeout)
        self.backoff = backoff
        self.at_least_once = bool(at_least_once)
        self.max_resends = int(max_resends)
        #: How many times the client connected again after a drop.
        self.reconnects = 0
        self._contract = contract_text
        self._token = token
        self._client_name = client_name
        self._max_frame_bytes = max_frame_bytes
        self._heartbeat = heartbeat
        self._vector = codec.vector_reader(numpy)
        self._host_port = parse_address(address)
        #: The server of the current connection (following a group: the
        #: primary that took the latest hello).
        self.address = f"{self._host_port[0]}:{self._host_port[1]}"
        servers = list(servers)
        #: The group followed (``None`` without ``servers``).
        self.group: Optional[GroupServers] = GroupServers(address, servers) if servers else None
        self.failover_timeout = float(failover_timeout)
        self._pushes: "queue.Queue[Any]" = queue.Queue()
        self._reconnect_lock = threading.Lock()
        self._closed_event = threading.Event()
        self._subscribed = False
        self._generation = 0
        self._conn = self._open()
        #: What the server said at the latest handshake.
        self.welcome: t.Welcome = self._conn.welcome

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
        """``(code, reason)`` of the server's ``closing`` push on the
        current connection, if it sent one."""
        return self._conn.closing_push

    @property
    def connected(self) -> bool:
        """Whether the connection is up now (a dropped one comes back on
        the next call when ``reconnect`` is on)."""
        return self._conn.alive and not self._closed_event.is_set()

    @property
    def uses_numpy(self) -> bool:
        """Whether answers' vectors are numpy arrays."""
        return self._vector is not codec._float_list

    def _open(self) -> _Connection:
        """A new connection: to ``address``, or, following a group, to
        whichever server takes the hello within ``failover_timeout``."""
        if self.group is None:
            return self._open_at(self._host_port, self.timeout)
        group = self.group
        began = time.monotonic()
        while True:
            last: Optional[HvsClientError] = None
            for address in group.candidates():
                try:
                    conn = self._open_at(address, min(self.timeout, HELLO_WAIT))
                except HvsClientError as e:
                    if not is_failover(e):
                        raise
                    last = e
                    if group.follow(e, address):
                        break  # the primary it named, first
                    continue
                group.took(address)
                self._host_port = address
                self.address = f"{address[0]}:{address[1]}"
                return conn
            if last is not None and time.monotonic() - began >= self.failover_timeout:
                raise last
            if self._closed_event.wait(0.05):
                raise ConnectionLost("the client is closed", "closed")

    def _open_at(self, address: Tuple[str, int], timeout: float) -> _Connection:
        self._generation += 1
        return _Connection.open(
            address,
            self._contract,
            self._token,
            self._client_name,
            timeout,
            self._max_frame_bytes,
            self._pushes,
            self._vector,
            self._generation,
            self._heartbeat,
        )

    def _may_reconnect(self, loss: ConnectionLost) -> bool:
        if not self.reconnect:
            return False
        return is_failover(loss) if self.group is not None else codec.may_reconnect(loss)

    def _connection(self) -> _Connection:
        """The live connection, connecting again if it dropped and that is
        allowed."""
        conn = self._conn
        if conn.alive:
            return conn
        with self._reconnect_lock:
            if self._closed_event.is_set():
                raise ConnectionLost("the client is closed", "closed")
            conn = self._conn
            if conn.alive:
                return conn
            loss = conn.loss
            assert loss is not None
            if not self._may_reconnect(loss):
                raise loss.copy(maybe_done=False)
            self._conn = self._reopen(loss)
            conn.close(1.0, say_bye=False)  # its socket and threads
            self.welcome = self._conn.welcome
            self.reconnects += 1
            return self._conn

    def _reopen(self, loss: ConnectionLost) -> _Connection:
        if self.group is not None:
            return self._reopen_following(loss)
        deadline = time.monotonic() + self.reconnect_timeout
        last: BaseException = loss
        for delay in self.backoff.delays():
            if self._closed_event.is_set():
                raise ConnectionLost("the client is closed", "closed")
            conn: Optional[_Connection] = None
            try:
                conn = self._open()
                if self._subscribed:
                    conn.request("subscribe", {}, self.timeout)
                log.info("reconnected to %s as %s after %s", self.address, conn.welcome.model, loss)
                return conn
            except HvsError as e:
                if e.code not in codec.TRANSIENT_HELLO_CODES:
                    raise
                last = e
            except (ConnectionLost, RequestTimeout, ProtocolError) as e:
                last = e
            if conn is not None:
                conn.close(1.0, say_bye=False)
            if time.monotonic() + delay > deadline:
                raise ConnectionLost(
                    f"{loss.reason}; no new connection within {self.reconnect_timeout} s (last: {last})", loss.code
                ) from last
            self._closed_event.wait(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _reopen_following(self, loss: ConnectionLost) -> _Connection:
        conn = self._open()  # tries the group's servers for failover_timeout
        try:
            if self._subscribed:
                conn.request("subscribe", {}, self.timeout)
        except BaseException:
            conn.close(1.0, say_bye=False)
            raise
        log.info("reconnected to %s as %s after %s", self.address, conn.welcome.model, loss)
        return conn

    def _run(self, call: p.Call[T], timeout: Optional[float] = None) -> T:
        if self.group is not None:
            return self._run_following(self.group, call, timeout)
        resends = 0
        while True:
            conn = self._connection()
            try:
                ok = conn.request(call.op, call.args, self.timeout if timeout is None else timeout)
            except ConnectionLost as loss:
                if (
                    not self.reconnect
                    or self._closed_event.is_set()
                    or resends >= self.max_resends
                    or not codec.may_resend(call.retry, loss, self.at_least_once)
                ):
                    raise
                resends += 1
                log.info("resending %r after %s", call.op, loss)
                continue
            return call.read(ok, self._vector)

    def _run_following(self, group: GroupServers, call: p.Call[T], timeout: Optional[float]) -> T:
        """Sends ``call`` until it is answered, again after each failover
        error (:func:`is_failover`) for up to ``failover_timeout``, whatever
        the operation: the primary may have changed under it."""
        began = time.monotonic()
        while True:
            conn: Optional[_Connection] = None
            try:
                conn = self._connection()
                ok = conn.request(call.op, call.args, self.timeout if timeout is None else timeout)
            except HvsClientError as e:
                if (
                    self._closed_event.is_set()
                    or not is_failover(e)
                    or time.monotonic() - began >= self.failover_timeout
                ):
                    raise
                if conn is not None:
                    conn.abandon(e)  # the next attempt connects again
                log.info("sending %r again after %s", call.op, e)
                if not group.follow(e) and self._closed_event.wait(0.05):
                    raise
                continue
            return call.read(ok, self._vector)

    def request(self, op: str, args: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None) -> Any:
        """Sends one request and waits for its answer: the decoded ``ok``
        value (maps are dicts, ``bin`` is bytes). Raises :class:`HvsError`
        for an error frame. Resent on a new connection only if it was never
        written (following a group: as every request is)."""
        return self._run(p.call(op, args), timeout)

    def call(self, op: str, **args: Any) -> Any:
        """Any operation by name, with its arguments as keywords; returns the
        decoded ``ok`` value as it is (dicts and lists). Byte strings are
        sent as msgpack ``bin``."""
        return self.request(op, args)

    def close(self, timeout: float = 5.0) -> None:
        """Says ``bye`` (the model is marked disconnected; its mailbox keeps
        its messages) and closes the connection. Idempotent."""
        if self._closed_event.is_set():
            return
        self._closed_event.set()
        with self._reconnect_lock:
            self._conn.close(min(timeout, self.timeout), say_bye=True)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed" if self._closed_event.is_set() else "disconnected"
        return f"<hvs_client.Client {self.welcome.model!r} at {self.address} {state}>"

    # ---- pushes --------------------------------------------------------

    def subscribe(self) -> None:
        """From now on, messages for this model are pushed; read them with
        :meth:`next_delivery` or :meth:`deliveries` (and ack them). Kept
        across reconnections until :meth:`unsubscribe`."""
        self._subscribed = True
        self._run(p.subscribe())

    def unsubscribe(self) -> None:
        """Stops the pushes (messages wait in the mailbox for :meth:`receive`)."""
        self._subscribed = False
        self._run(p.unsubscribe())

    def next_delivery(self, timeout: Optional[float] = None) -> Optional[t.Delivery]:
        """The next pushed delivery (after :meth:`subscribe`), waiting at
        most ``timeout`` seconds (``None``: as long as it takes); ``None``
        on timeout. When the connection drops it reconnects (and
        resubscribes) as a request would; raises :class:`ConnectionLost`
        when it cannot, once every delivery pushed before has been read."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._pushes.get(timeout=left)
            except queue.Empty:
                return None
            if isinstance(item, t.Delivery):
                return item
            assert isinstance(item, _End)
            if item.generation != self._conn.generation:
                continue  # an older connection's end: already replaced
            self._pushes.put(item)  # wake any other reader too
            if self._closed_event.is_set():
                raise ConnectionLost("the client is closed", "closed")
            self._connection()  # reconnects, or raises why it cannot

    def deliveries(self, timeout: Optional[float] = None) -> Iterator[t.Delivery]:
        """Iterates over pushed deliveries (after :meth:`subscribe`). Stops
        when ``timeout`` seconds pass with none (``None``: never) or after
        :meth:`close`; raises :class:`ConnectionLost` if the connection
        drops and cannot be made again."""
        while True:
            try:
                d = self.next_delivery(timeout)
            except ConnectionLost:
                if self._closed_event.is_set():
                    return
                raise
            if d is None:
                return
            yield d

    def scroll_all(
        self,
        namespace: str,
        filter: Optional[p.Filter] = None,  # noqa: A002
        with_vector: bool = False,
        page_size: int = 100,
    ) -> Iterator[t.StoredVector]:
        """Every vector of the namespace (matching ``filter``) in id order,
        fetched a page of ``page_size`` at a time with :meth:`scroll`."""
        after: Optional[str] = None
        while True:
            page = self.scroll(namespace, after, page_size, filter, with_vector)
            yield from page.vectors
            if page.next is None:
                return
            after = page.next

    # ---- operations (hvs_client.protocol: one function per operation) -----

    ping = _operation(p.ping)
    stats = _operation(p.stats)

    send = _operation(p.send)
    send_batch = _operation(p.send_batch)
    broadcast = _operation(p.broadcast)
    receive = _operation(p.receive)
    ack = _operation(p.ack)
    release = _operation(p.release)
    mailbox = _operation(p.mailbox)
    get_message = _operation(p.get_message)

    create_namespace = _operation(p.create_namespace)
    namespace_info = _operation(p.namespace_info)
    grant_access = _operation(p.grant_access)
    check_access = _operation(p.check_access)
    list_namespaces = _operation(p.list_namespaces)
    delete_namespace = _operation(p.delete_namespace)

    store_vector = _operation(p.store_vector)
    batch_store_vectors = _operation(p.batch_store_vectors)
    retrieve_vector = _operation(p.retrieve_vector)
    retrieve_vectors = _operation(p.retrieve_vectors)
    update_vector = _operation(p.update_vector)
    delete_vector = _operation(p.delete_vector)
    delete_vectors = _operation(p.delete_vectors)
    delete_by_filter = _operation(p.delete_by_filter)
    search = _operation(p.search)
    range_search = _operation(p.range_search)
    batch_search = _operation(p.batch_search)
    count = _operation(p.count)
    scroll = _operation(p.scroll)

    join = _operation(p.join)
    contribute = _operation(p.contribute)
    query_shared = _operation(p.query_shared)
    consensus = _operation(p.consensus)

    register_state = _operation(p.register_state)
    update_state = _operation(p.update_state)
    get_state = _operation(p.get_state)
    find_similar_states = _operation(p.find_similar_states)

    store_block = _operation(p.store_block)
    query_blocks = _operation(p.query_blocks)
    get_block = _operation(p.get_block)
    update_block = _operation(p.update_block)
    delete_block = _operation(p.delete_block)
    list_blocks = _operation(p.list_blocks)

    sync_create = _operation(p.sync_create)
    sync_full = _operation(p.sync_full)
    sync_partial = _operation(p.sync_partial)
    sync_selective = _operation(p.sync_selective)
    sync_list = _operation(p.sync_list)
    sync_status = _operation(p.sync_status)
    sync_pause = _operation(p.sync_pause)
    sync_resume = _operation(p.sync_resume)
    sync_delete = _operation(p.sync_delete)
    sync_conflicts = _operation(p.sync_conflicts)
    cluster_status = _operation(p.cluster_status)

    bridge_create = _operation(p.bridge_create)
    bridge_shared = _operation(p.bridge_shared)
    bridge_federated = _operation(p.bridge_federated)
    bridge_cross_manifold = _operation(p.bridge_cross_manifold)
    bridge_slow = _operation(p.bridge_slow)
    bridge_list = _operation(p.bridge_list)
    bridge_status = _operation(p.bridge_status)
    bridge_delete = _operation(p.bridge_delete)
    bridge_search = _operation(p.bridge_search)
