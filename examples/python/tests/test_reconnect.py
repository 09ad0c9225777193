"""Reconnection against a real `hvs serve`: through a proxy that cuts
connections (at once, or right after forwarding one request so that its
answer is lost), across server restarts, and the cases where the client
must not reconnect (`replaced`) or gives up (`reconnect_timeout`).

What is resent after a lost answer is the table in the README
("Reconnection"); these tests check each kind once: a read is resent, a
`send` is not (unless `at_least_once`), a request the client had not
written yet goes on the new connection."""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
import threading
import time
import unittest
from pathlib import Path
from typing import Any, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from support import REQUEST_TIMEOUT, ServerProcess, contract, eventually, setUpModule, shared_server, tearDownModule  # noqa: E402,F401

import msgpack  # noqa: E402

import hvs_client  # noqa: E402
from hvs_client import ConnectionLost, RequestTimeout  # noqa: E402


class FlakyProxy:
    """A TCP proxy to the server that can drop every connection through it
    (`cut`), drop one right after it forwarded a request with a given op,
    before the answer comes back (`cut_after`), or hold back what the
    server sends (`flowing` cleared)."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.pairs: List[List[socket.socket]] = []
        self.lock = threading.Lock()
        self.armed: Optional[str] = None
        self.cuts_after: List[str] = []
        # Connections whose answers are dropped from now on (a cut after a
        # request): marked before the request is forwarded, so its answer
        # can never slip through before the connection is closed.
        self.doomed: List[List[socket.socket]] = []
        self.closed = False
        self.flowing = threading.Event()
        self.flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            pair = [client, server]
            with self.lock:
                self.pairs.append(pair)
            threading.Thread(target=self._upstream, args=(pair,), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, pair), daemon=True).start()

    def _upstream(self, pair: List[socket.socket]) -> None:
        client, server = pair
        try:
            while True:
                header = _exact(client, 4)
                body = _exact(client, struct.unpack(">I", header)[0])
                op = msgpack.unpackb(body, raw=False).get("op")
                with self.lock:
                    hit = self.armed is not None and op == self.armed
                    if hit:
                        self.armed = None
                        self.cuts_after.append(op)
                        self.doomed.append(pair)
                server.sendall(header + body)
                if hit:
                    self._close(pair)
                    return
        except (OSError, EOFError):
            self._close(pair)

    def _pump(self, src: socket.socket, dst: socket.socket, pair: List[socket.socket]) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self.flowing.wait()
                with self.lock:
                    if pair in self.doomed:
                        break
                dst.sendall(data)
        except OSError:
            pass
        self._close(pair)

    def _close(self, pair: List[socket.socket]) -> None:
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self.lock:
            if pair in self.pairs:
                self.pairs.remove(pair)

    def cut(self) -> None:
        """Drops every connection through the proxy now."""
        with self.lock:
            pairs = list(self.pairs)
        for pair in pairs:
            self._close(pair)

    def cut_after(self, op: str) -> None:
        """Drops the connection that next forwards a request `op`, right
        after forwarding it (the server gets it; its answer is lost)."""
        with self.lock:
            self.armed = op

    def close(self) -> None:
        self.closed = True
        self.flowing.set()
        self.listener.close()
        self.cut()


def _exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


class ReconnectTest(unittest.TestCase):
    def setUp(self) -> None:
        self.server = shared_server()
        self.proxy = FlakyProxy(self.server.address)
        self.clients: List[hvs_client.Client] = []

    def tearDown(self) -> None:
        for c in self.clients:
            c.close()
        self.proxy.close()

    def connect(self, role: str, via_proxy: bool = True, **options: Any) -> hvs_client.Client:
        options.setdefault("timeout", REQUEST_TIMEOUT)
        address = self.proxy.address if via_proxy else self.server.address
        c = hvs_client.connect(str(contract(self.server, role)), address=address, **options)
        self.clients.append(c)
        return c

    def copies(self, c: hvs_client.Client, text: str, at_least: int, limit: float = 3.0) -> List[str]:
        """Ids of the messages with this text received by `c`, polling
        until `at_least` came (or `limit` seconds passed)."""
        got: List[str] = []

        def more() -> bool:
            for d in c.receive(100):
                c.ack(d)
                if d.text == text:
                    got.append(d.id)
            return len(got) >= at_least

        eventually(more, limit)
        return got

    def test_a_dropped_connection_is_made_again_on_the_next_call(self) -> None:
        alice = self.connect("alice")
        model = alice.model
        self.proxy.cut()
        self.assertGreater(alice.ping(), 0)
        self.assertEqual((alice.reconnects, alice.model), (1, model))
        self.assertTrue(alice.connected)

    def test_a_request_not_yet_written_goes_on_the_new_connection(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob", via_proxy=False)
        self.proxy.cut()
        self.assertTrue(eventually(lambda: not alice.connected))
        mid = alice.send(bob.model, "after the drop")
        self.assertEqual(self.copies(bob, "after the drop", 1), [mid])
        self.assertEqual(alice.reconnects, 1)

    def test_a_read_whose_answer_was_lost_is_resent(self) -> None:
        alice = self.connect("alice")
        self.proxy.cut_after("mailbox")
        box = alice.mailbox()
        self.assertEqual(box.pending, 0)
        self.assertEqual(self.proxy.cuts_after, ["mailbox"])
        self.assertEqual(alice.reconnects, 1)

    def test_a_send_whose_answer_was_lost_is_not_resent(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob", via_proxy=False)
        self.proxy.cut_after("send")
        with self.assertRaises(ConnectionLost) as cm:
            alice.send(bob.model, "maybe once")
        self.assertTrue(cm.exception.maybe_done)
        self.assertEqual(cm.exception.code, "connection_lost")
        # The server may or may not have stored it; never twice.
        self.assertLessEqual(len(self.copies(bob, "maybe once", 2, limit=2.0)), 1)
        # The next call reconnects.
        mid = alice.send(bob.model, "next")
        self.assertEqual(self.copies(bob, "next", 1), [mid])

    def test_at_least_once_resends_a_send_whose_answer_was_lost(self) -> None:
        alice = self.connect("alice", at_least_once=True)
        bob = self.connect("bob", via_proxy=False)
        self.proxy.cut_after("send")
        mid = alice.send(bob.model, "at least once")
        got = self.copies(bob, "at least once", 2, limit=2.0)
        self.assertIn(mid, got)
        self.assertLessEqual(len(got), 2)  # the lost attempt's copy, under another id

    def test_a_takeover_is_not_fought(self) -> None:
        path = contract(self.server, "twin")
        first = hvs_client.connect(str(path), address=self.server.address, timeout=REQUEST_TIMEOUT)
        second = hvs_client.connect(str(path), address=self.server.address, timeout=REQUEST_TIMEOUT)
        self.clients += [first, second]
        self.assertTrue(eventually(lambda: not first.connected))
        with self.assertRaises(ConnectionLost) as cm:
            first.ping()
        self.assertEqual(cm.exception.code, "replaced")
        self.assertEqual(first.reconnects, 0)
        self.assertGreater(second.ping(), 0)

    def test_a_silent_client_comes_back_after_its_heartbeat_timeout(self) -> None:
        hc = {"interval_seconds": 1, "timeout_seconds": 1}
        path = contract(self.server, "silent", health_check=hc)
        c = hvs_client.connect(str(path), address=self.server.address, timeout=REQUEST_TIMEOUT, heartbeat=False)
        self.clients.append(c)
        self.assertTrue(eventually(lambda: not c.connected))
        self.assertEqual(c.closing and c.closing[0], "heartbeat_timeout")
        self.assertGreater(c.ping(), 0)
        self.assertEqual(c.reconnects, 1)

    def test_a_request_timeout_is_not_a_loss(self) -> None:
        alice = self.connect("alice")
        self.proxy.flowing.clear()  # answers held back
        with self.assertRaises(RequestTimeout):
            alice.request("receive", {"max": 1}, timeout=0.2)
        self.proxy.flowing.set()
        self.assertGreater(alice.ping(), 0)
        self.assertEqual(alice.reconnects, 0)


class RestartTest(unittest.TestCase):
    """Each test with its own server, restarted or stopped under it."""

    def setUp(self) -> None:
        self.server = ServerProcess()

    def tearDown(self) -> None:
        self.server.stop()
        self.server.cleanup()

    def test_a_subscribed_client_is_subscribed_again_after_a_restart(self) -> None:
        address = self.server.address
        bob = hvs_client.connect(str(contract(self.server, "bob")), address=address, timeout=REQUEST_TIMEOUT)
        alice = hvs_client.connect(str(contract(self.server, "alice")), address=address, timeout=REQUEST_TIMEOUT)
        try:
            bob.subscribe()
            first = alice.send(bob.model, "before")
            d = bob.next_delivery(REQUEST_TIMEOUT)
            self.assertEqual(d and d.id, first)
            bob.ack(first)

            self.server.restart()
            # bob's push reader notices the drop and reconnects (with
            # backoff while the server starts), then subscribes again.
            mid = alice.send(bob.model, "after the restart")
            d = bob.next_delivery(REQUEST_TIMEOUT)
            self.assertIsNotNone(d)
            assert d is not None
            self.assertEqual((d.id, d.text), (mid, "after the restart"))
            bob.ack(d)
            self.assertEqual((alice.reconnects, bob.reconnects), (1, 1))
        finally:
            alice.close()
            bob.close()

    def test_reconnection_gives_up_after_reconnect_timeout(self) -> None:
        c = hvs_client.connect(
            str(contract(self.server, "alone")), address=self.server.address, timeout=REQUEST_TIMEOUT, reconnect_timeout=1.0
        )
        try:
            self.server.stop()
            started = time.monotonic()
            with self.assertRaises(ConnectionLost) as cm:
                c.ping()
            self.assertEqual(cm.exception.code, "shutting_down")
            self.assertIn("no new connection within", cm.exception.reason)
            self.assertLess(time.monotonic() - started, REQUEST_TIMEOUT)
        finally:
            c.close()

    def test_the_async_client_reconnects_and_subscribes_again(self) -> None:
        address = self.server.address
        bob_path, alice_path = str(contract(self.server, "bob")), str(contract(self.server, "alice"))
        server = self.server

        async def main() -> None:
            bob = await hvs_client.connect_async(bob_path, address=address, timeout=REQUEST_TIMEOUT)
            alice = await hvs_client.connect_async(alice_path, address=address, timeout=REQUEST_TIMEOUT)
            try:
                await bob.subscribe()
                await asyncio.get_running_loop().run_in_executor(None, server.restart)
                mid = await alice.send(bob.model, "async, after the restart")
                d = await bob.next_delivery(REQUEST_TIMEOUT)
                assert d is not None and d.id == mid, d
                await bob.ack(d)
                assert (alice.reconnects, bob.reconnects) == (1, 1), (alice.reconnects, bob.reconnects)
            finally:
                await alice.close()
                await bob.close()

        asyncio.run(main())


if __name__ == "__main__":
    unittest.main(verbosity=2)
