"""The asyncio client: the same operations as :class:`hvs_client.Client`
(from :mod:`hvs_client.protocol`), awaited, on one connection per model.

    import asyncio, hvs_client

    async def main() -> None:
        async with await hvs_client.connect_async("contract.json") as c:
            await c.send("planner", "route clear")
            for d in await c.receive():
                await c.ack(d)

    asyncio.run(main())

A reader task routes answers to the awaiting coroutines by request id
(any number of tasks may call at once; their requests are pipelined) and
queues pushed deliveries for :meth:`AsyncClient.next_delivery`; a
heartbeat task pings when the connection was quiet. Reconnection, and
following a failover group's primary, follow the same rules as the
blocking client (:mod:`hvs_client.codec`, :class:`hvs_client.client.GroupServers`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
import os
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Coroutine, Dict, Iterable, Mapping, Optional, Tuple, TypeVar, Union

from . import codec
from . import protocol as p
from . import types as t
from .client import HELLO_WAIT, Address, GroupServers, is_failover, parse_address, read_contract
from .codec import CLIENT_NAME, DEFAULT_MAX_FRAME, HARD_MAX_FRAME, Backoff
from .errors import ConnectionLost, HvsClientError, HvsError, ProtocolError, RequestTimeout

if TYPE_CHECKING:
    from typing_extensions import Concatenate, ParamSpec

    P = ParamSpec("P")

__all__ = ["AsyncClient", "connect_async"]

log = logging.getLogger("hvs_client")

T = TypeVar("T")


class _End:
    """Put in the delivery queue when connection ``generation`` ends."""

    __slots__ = ("generation",)

    def __init__(self, generation: int) -> None:
        self.generation = generation


async def _read_frame(reader: asyncio.StreamReader, max_in: int) -> Dict[str, Any]:
    n = codec.frame_length(await reader.readexactly(4), max_in)
    return codec.decode_body(await reader.readexactly(n))


class _AsyncConnection:
    """One stream after its handshake, with its reader and heartbeat
    tasks. It never reconnects: the :class:`AsyncClient` replaces it."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        welcome: t.Welcome,
        max_in: int,
        pushes: "asyncio.Queue[Any]",
        vector: t.VectorReader,
        generation: int,
        heartbeat: bool,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.welcome = welcome
        self.max_in = max_in
        self.max_out = int(welcome.max_frame_bytes or DEFAULT_MAX_FRAME)
        self.generation = generation
        self.loss: Optional[ConnectionLost] = None
        self.closing_push: Optional[Tuple[str, str]] = None
        self._pushes = pushes
        self._vector = vector
        self._ids = itertools.count(1)
        self._waiters: Dict[int, "asyncio.Future[Any]"] = {}
        self._drain_lock = asyncio.Lock()
        self._leaving = False
        self._unrouted: Optional[HvsError] = None
        self._last_sent = time.monotonic()
        self._tasks = [asyncio.ensure_future(self._read_loop())]
        if heartbeat:
            interval = max(int(welcome.heartbeat_interval_ms or 30000), 100) / 1000.0
            self._tasks.append(asyncio.ensure_future(self._heartbeat_loop(interval)))

    @classmethod
    async def open(
        cls,
        address: Tuple[str, int],
        contract: str,
        token: Optional[str],
        client_name: str,
        timeout: float,
        max_frame_bytes: Optional[int],
        pushes: "asyncio.Queue[Any]",
        vector: t.VectorReader,
        generation: int,
        heartbeat: bool,
    ) -> "_AsyncConnection":
        """Connects and says hello (see :meth:`hvs_client.client._Connection.open`)."""
        host, port = address
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, asyncio.TimeoutError) as e:
            raise ConnectionLost(f"cannot connect to {host}:{port}: {e or 'timed out'}", "connect_failed") from e
        try:
            max_in = min(max_frame_bytes or DEFAULT_MAX_FRAME, HARD_MAX_FRAME)
            try:
                writer.write(codec.encode_frame(codec.hello_frame(contract, token, client_name), DEFAULT_MAX_FRAME))
                await writer.drain()
                welcome = codec.read_welcome(await asyncio.wait_for(_read_frame(reader, max_in), timeout))
            except asyncio.TimeoutError as e:
                raise RequestTimeout(f"no answer to hello within {timeout} s") from e
            except (OSError, asyncio.IncompleteReadError) as e:
                raise ConnectionLost(f"at hello: {e}") from e
            if max_frame_bytes is None:
                max_in = min(max(int(welcome.max_frame_bytes or DEFAULT_MAX_FRAME), 1), HARD_MAX_FRAME)
        except BaseException:
            writer.close()
            raise
        return cls(reader, writer, welcome, max_in, pushes, vector, generation, heartbeat)

    @property
    def alive(self) -> bool:
        return self.loss is None

    async def request(self, op: str, args: Mapping[str, Any], timeout: float) -> Any:
        """Sends one request and awaits its ``ok`` (a loss raises
        :class:`ConnectionLost` with ``maybe_done``)."""
        rid = next(self._ids)
        data = codec.encode_frame(codec.request_frame(rid, op, args), self.max_out)
        if self.loss is not None:
            raise self.loss.copy(maybe_done=False)
        fut: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        try:
            # write() queues the whole frame at once, so frames never interleave.
            self.writer.write(data)
            self._last_sent = time.monotonic()
            async with self._drain_lock:
                await self.writer.drain()
        except (OSError, RuntimeError) as e:
            self._waiters.pop(rid, None)
            loss = self.loss or ConnectionLost(f"writing the request failed: {e}")
            self._fail_all(loss)
            # The frame may sit whole in the transport's buffer; say so.
            raise loss.copy(maybe_done=True) from e
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(f"no answer to {op!r} within {timeout} s") from None
        finally:
            # Answered, timed out or cancelled: a late answer is dropped.
            self._waiters.pop(rid, None)

    def abandon(self, why: HvsClientError) -> None:
        """Ends the connection because of ``why`` (see
        :meth:`hvs_client.client._Connection.abandon`)."""
        self._fail_all(ConnectionLost(str(why), why.code))

    async def close(self, timeout: float, say_bye: bool) -> None:
        """Says ``bye`` (when asked and still up), then closes."""
        self._leaving = True
        if say_bye and self.loss is None:
            try:
                await self.request("bye", {}, timeout)
            except HvsClientError:
                pass
        self._fail_all(ConnectionLost("the client is closed", "closed"))
        for task in self._tasks:
            task.cancel()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), timeout)
        except (OSError, asyncio.TimeoutError, asyncio.CancelledError):
            pass

    async def _read_loop(self) -> None:
        try:
            while True:
                f = codec.read_frame(await _read_frame(self.reader, self.max_in))
                if f.kind is codec.Kind.DELIVERY:
                    self._pushes.put_nowait(t.build(t.Delivery, f.delivery, self._vector))
                elif f.kind is codec.Kind.CLOSING:
                    self.closing_push = f.closing
                    log.info("server closing the connection: %s: %s", *f.closing)  # type: ignore[misc]
                elif f.kind is codec.Kind.UNROUTED:
                    self._unrouted = f.error
                    log.warning("the server could not read a request: %s", f.error)
                elif f.kind is codec.Kind.ANSWER:
                    fut = self._waiters.pop(f.id, None) if isinstance(f.id, int) else None
                    if fut is not None and not fut.done():
                        if f.error is not None:
                            fut.set_exception(f.error)
                        else:
                            fut.set_result(f.ok)
        except asyncio.CancelledError:
            self._fail_all(ConnectionLost("the client is closed", "closed"))
            raise
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
        if isinstance(e, asyncio.IncompleteReadError):
            text = "the server closed the connection"
        if self._unrouted is not None:
            text = f"{text} (after the server's {self._unrouted})"
        return ConnectionLost(text)

    def _fail_all(self, why: ConnectionLost) -> None:
        if self.loss is not None:
            return
        self.loss = why
        waiters = list(self._waiters.values())
        self._waiters.clear()
        for fut in waiters:
            if not fut.done():
                fut.set_exception(why.copy(maybe_done=True))
        self._pushes.put_nowait(_End(self.generation))
        self.writer.close()

    async def _heartbeat_loop(self, interval: float) -> None:
        half = interval / 2
        while self.loss is None:
            await asyncio.sleep(half)
            if time.monotonic() - self._last_sent < half or self.loss is not None:
                continue
            try:
                self.writer.write(codec.encode_frame(codec.request_frame(next(self._ids), "ping", {}), self.max_out))
                self._last_sent = time.monotonic()
            except (OSError, RuntimeError, HvsClientError):
                return


def _operation(
    build: "Callable[P, p.Call[T]]",
) -> "Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]":
    """A coroutine method of :class:`AsyncClient` that runs the protocol's
    ``build``."""

    async def method(self: AsyncClient, /, *args: Any, **kwargs: Any) -> T:
        return await self._run(build(*args, **kwargs))

    functools.update_wrapper(method, build)
    method.__qualname__ = f"AsyncClient.{build.__name__}"
    # help() and IDEs show the operation's arguments, without the Call.
    sig = inspect.signature(build)
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[this, *sig.parameters.values()], return_annotation=inspect.Signature.empty
    )
    del method.__wrapped__  # type: ignore[attr-defined]
    return method


async def connect_async(
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
) -> "AsyncClient":
    """Connects as :func:`hvs_client.connect` does (same arguments), for
    asyncio."""
    c = AsyncClient(
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
    await c.connect()
    return c


class AsyncClient:
    """A connected model, for asyncio: every operation of
    :class:`hvs_client.Client` as a coroutine method with the same name,
    arguments and results. Make one with :func:`connect_async` (or
    construct it and ``await client.connect()``); close it with
    :meth:`close` or ``async with``. Use it from the event loop it was
    connected on."""

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
        self._pushes: "Optional[asyncio.Queue[Any]]" = None
        self._reconnect_lock: Optional[asyncio.Lock] = None
        self._closed = False
        self._subscribed = False
        self._generation = 0
        self._conn: Optional[_AsyncConnection] = None
        #: What the server said at the latest handshake.
        self.welcome: t.Welcome

    async def connect(self) -> "AsyncClient":
        """Opens the first connection (raises as :func:`connect_async`)."""
        if self._conn is None:
            self._pushes = asyncio.Queue()
            self._reconnect_lock = asyncio.Lock()
            self._conn = await self._open()
            self.welcome = self._conn.welcome
        return self

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
        return None if self._conn is None else self._conn.closing_push

    @property
    def connected(self) -> bool:
        """Whether the connection is up now."""
        return self._conn is not None and self._conn.alive and not self._closed

    @property
    def uses_numpy(self) -> bool:
        """Whether answers' vectors are numpy arrays."""
        return self._vector is not codec._float_list

    async def _open(self) -> _AsyncConnection:
        """A new connection (see :meth:`hvs_client.Client._open`)."""
        if self.group is None:
            return await self._open_at(self._host_port, self.timeout)
        group = self.group
        began = time.monotonic()
        while True:
            last: Optional[HvsClientError] = None
            for address in group.candidates():
                try:
                    conn = await self._open_at(address, min(self.timeout, HELLO_WAIT))
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
            if self._closed:
                raise ConnectionLost("the client is closed", "closed")
            await asyncio.sleep(0.05)

    async def _open_at(self, address: Tuple[str, int], timeout: float) -> _AsyncConnection:
        assert self._pushes is not None
        self._generation += 1
        return await _AsyncConnection.open(
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

    async def _connection(self) -> _AsyncConnection:
        conn = self._conn
        if conn is None:
            raise ConnectionLost("not connected: await client.connect() first", "closed")
        if conn.alive:
            return conn
        assert self._reconnect_lock is not None
        async with self._reconnect_lock:
            if self._closed:
                raise ConnectionLost("the client is closed", "closed")
            conn = self._conn
            assert conn is not None
            if conn.alive:
                return conn
            loss = conn.loss
            assert loss is not None
            if not self._may_reconnect(loss):
                raise loss.copy(maybe_done=False)
            self._conn = await self._reopen(loss)
            await conn.close(1.0, say_bye=False)  # its stream and tasks
            self.welcome = self._conn.welcome
            self.reconnects += 1
            return self._conn

    def _may_reconnect(self, loss: ConnectionLost) -> bool:
        if not self.reconnect:
            return False
        return is_failover(loss) if self.group is not None else codec.may_reconnect(loss)

    async def _reopen(self, loss: ConnectionLost) -> _AsyncConnection:
        if self.group is not None:
            return await self._reopen_following(loss)
        deadline = time.monotonic() + self.reconnect_timeout
        last: BaseException = loss
        for delay in self.backoff.delays():
            if self._closed:
                raise ConnectionLost("the client is closed", "closed")
            conn: Optional[_AsyncConnection] = None
            try:
                conn = await self._open()
                if self._subscribed:
                    await conn.request("subscribe", {}, self.timeout)
                log.info("reconnected to %s as %s after %s", self.address, conn.welcome.model, loss)
                return conn
            except HvsError as e:
                if e.code not in codec.TRANSIENT_HELLO_CODES:
                    raise
                last = e
            except (ConnectionLost, RequestTimeout, ProtocolError) as e:
                last = e
            if conn is not None:
                await conn.close(1.0, say_bye=False)
            if time.monotonic() + delay > deadline:
                raise ConnectionLost(
                    f"{loss.reason}; no new connection within {self.reconnect_timeout} s (last: {last})", loss.code
                ) from last
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _reopen_following(self, loss: ConnectionLost) -> _AsyncConnection:
        conn = await self._open()  # tries the group's servers for failover_timeout
        try:
            if self._subscribed:
                await conn.request("subscribe", {}, self.timeout)
        except BaseException:
            await conn.close(1.0, say_bye=False)
            raise
        log.info("reconnected to %s as %s after %s", self.address, conn.welcome.model, loss)
        return conn

    async def _run(self, call: p.Call[T], timeout: Optional[float] = None) -> T:
        if self.group is not None:
            return await self._run_following(self.group, call, timeout)
        resends = 0
        while True:
            conn = await self._connection()
            try:
                ok = await conn.request(call.op, call.args, self.timeout if timeout is None else timeout)
            except ConnectionLost as loss:
                if (
                    not self.reconnect
                    or self._closed
                    or resends >= self.max_resends
                    or not codec.may_resend(call.retry, loss, self.at_least_once)
                ):
                    raise
                resends += 1
                log.info("resending %r after %s", call.op, loss)
                continue
            return call.read(ok, self._vector)

    async def _run_following(self, group: GroupServers, call: p.Call[T], timeout: Optional[float]) -> T:
        """Sends ``call`` until it is answered, again after each failover
        error for up to ``failover_timeout`` (see
        :meth:`hvs_client.Client._run_following`)."""
        began = time.monotonic()
        while True:
            conn: Optional[_AsyncConnection] = None
            try:
                conn = await self._connection()
                ok = await conn.request(call.op, call.args, self.timeout if timeout is None else timeout)
            except HvsClientError as e:
                if self._closed or not is_failover(e) or time.monotonic() - began >= self.failover_timeout:
                    raise
                if conn is not None:
                    conn.abandon(e)  # the next attempt connects again
                log.info("sending %r again after %s", call.op, e)
                if not group.follow(e):
                    await asyncio.sleep(0.05)
                continue
            return call.read(ok, self._vector)

    async def request(self, op: str, args: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None) -> Any:
        """Sends one request and awaits its answer's decoded ``ok``."""
        return await self._run(p.call(op, args), timeout)

    async def call(self, op: str, **args: Any) -> Any:
        """Any operation by name, with its arguments as keywords."""
        return await self.request(op, args)

    async def close(self, timeout: float = 5.0) -> None:
        """Says ``bye`` and closes the connection. Idempotent."""
        if self._closed or self._conn is None:
            self._closed = True
            return
        self._closed = True
        await self._conn.close(min(timeout, self.timeout), say_bye=True)

    async def __aenter__(self) -> "AsyncClient":
        return await self.connect()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed" if self._closed else "disconnected"
        model = self.welcome.model if self._conn is not None else "?"
        return f"<hvs_client.AsyncClient {model!r} at {self.address} {state}>"

    # ---- pushes --------------------------------------------------------

    async def subscribe(self) -> None:
        """Messages for this model are pushed from now on (and after each
        reconnection, until :meth:`unsubscribe`)."""
        self._subscribed = True
        await self._run(p.subscribe())

    async def unsubscribe(self) -> None:
        """Stops the pushes."""
        self._subscribed = False
        await self._run(p.unsubscribe())

    async def next_delivery(self, timeout: Optional[float] = None) -> Optional[t.Delivery]:
        """The next pushed delivery, waiting at most ``timeout`` seconds
        (``None``: as long as it takes); ``None`` on timeout. Reconnects
        when the connection drops; raises :class:`ConnectionLost` when it
        cannot."""
        assert self._pushes is not None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            try:
                if deadline is None:
                    item = await self._pushes.get()
                else:
                    item = await asyncio.wait_for(self._pushes.get(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                return None
            if isinstance(item, t.Delivery):
                return item
            assert isinstance(item, _End)
            if self._conn is not None and item.generation != self._conn.generation:
                continue
            self._pushes.put_nowait(item)
            if self._closed:
                raise ConnectionLost("the client is closed", "closed")
            await self._connection()

    async def deliveries(self, timeout: Optional[float] = None) -> AsyncIterator[t.Delivery]:
        """``async for`` over pushed deliveries; ends after ``timeout`` idle
        seconds (``None``: never) or :meth:`close`."""
        while True:
            try:
                d = await self.next_delivery(timeout)
            except ConnectionLost:
                if self._closed:
                    return
                raise
            if d is None:
                return
            yield d

    async def scroll_all(
        self,
        namespace: str,
        filter: Optional[p.Filter] = None,  # noqa: A002
        with_vector: bool = False,
        page_size: int = 100,
    ) -> AsyncIterator[t.StoredVector]:
        """``async for`` over every vector of the namespace in id order."""
        after: Optional[str] = None
        while True:
            page = await self.scroll(namespace, after, page_size, filter, with_vector)
            for v in page.vectors:
                yield v
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
