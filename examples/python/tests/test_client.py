"""The Python client against a real `hvs serve`, started here as a
subprocess on free loopback ports with a temporary data directory.

The server binary is $HVS_BIN if set, else the newer of target/release/hvs
and target/debug/hvs under the repository root. Run with
`python -m unittest discover -s examples/python/tests -v` (or pytest), or
`examples/python/run_tests.sh`, which installs the package first.
"""

from __future__ import annotations

import math
import signal
import socket
import struct
import sys
import threading
import time
import unittest
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import support  # noqa: E402,F401 (first: it may hide numpy, and finds the package)

try:
    import hvs_client
except ImportError:  # run from the source tree without installing
    sys.path.insert(0, str(HERE.parent))
    import hvs_client

import msgpack

from hvs_client import ConnectionLost, HvsError
from hvs_client import filters as F
from support import (
    AMBIENT,
    BASE_CONTRACT,
    REQUEST_TIMEOUT,
    ServerProcess,
    _ids,
    contract,
    eventually,
    free_port,
    h2,
    point,
)

SERVER: Optional[ServerProcess] = None


def setUpModule() -> None:
    global SERVER
    SERVER = ServerProcess()


def tearDownModule() -> None:
    global SERVER
    if SERVER is None:
        return
    code = SERVER.stop()
    log = SERVER.log()
    SERVER.cleanup()
    SERVER = None
    if code != 0:
        raise AssertionError(f"the server exited with {code} after SIGTERM:\n{log}")
    if "stopped cleanly" not in log:
        raise AssertionError(f"the server did not say it stopped cleanly:\n{log}")


class ClientTest(unittest.TestCase):
    """Each test connects new models and closes them at the end."""

    def setUp(self) -> None:
        assert SERVER is not None
        self.server = SERVER
        self.clients: List[hvs_client.Client] = []

    def tearDown(self) -> None:
        for c in self.clients:
            c.close()

    def connect(
        self, role: str, heartbeat: bool = True, reconnect: bool = True, **changes: Any
    ) -> hvs_client.Client:
        path = contract(self.server, role, **changes)
        c = hvs_client.connect(
            str(path), address=self.server.address, timeout=REQUEST_TIMEOUT, heartbeat=heartbeat, reconnect=reconnect
        )
        self.clients.append(c)
        return c

    def receive_until(self, c: hvs_client.Client, n: int) -> List[hvs_client.Delivery]:
        """Receives until n deliveries came (or the time is up)."""
        got: List[hvs_client.Delivery] = []

        def more():
            got.extend(c.receive(100))
            return len(got) >= n

        eventually(more)
        return got

    # ---- the handshake ------------------------------------------------

    def test_hello_answers_with_a_welcome(self) -> None:
        c = self.connect("hello")
        w = c.welcome
        self.assertEqual(w.version, 1)
        self.assertEqual(w.model, c.model)
        self.assertTrue(c.model.startswith("chat-py-hello-"))
        self.assertEqual(w.namespace, c.model)
        self.assertTrue(w.server.startswith("hvs/"), w.server)
        # text_chat_model.json's health_check: every 15 s, 3 s of grace.
        self.assertEqual((w.heartbeat_interval_ms, w.heartbeat_timeout_ms), (15000, 18000))
        self.assertGreater(w.max_frame_bytes, 0)
        self.assertGreater(w.max_in_flight, 0)
        self.assertGreater(c.ping(), 0)
        self.assertTrue(c.connected)

    def test_an_invalid_contract_is_refused_at_hello(self) -> None:
        with self.assertRaises(HvsError) as cm:
            hvs_client.connect({"model": 3}, address=self.server.address, timeout=REQUEST_TIMEOUT)
        self.assertEqual(cm.exception.code, "invalid_contract")

    def test_no_server_is_connection_lost(self) -> None:
        with self.assertRaises(ConnectionLost) as cm:
            hvs_client.connect(str(BASE_CONTRACT), address=f"127.0.0.1:{free_port()}", timeout=5)
        self.assertEqual(cm.exception.code, "connect_failed")

    # ---- messages -----------------------------------------------------

    def test_send_receive_ack_round_trip_with_payload_and_vector(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        payload = b"\x00route clear\xff"
        v = point(1)
        mid = alice.send(bob.model, payload, vector=v, metadata={"priority": 2, "tags": ["a", "b"]})
        self.assertIsInstance(mid, str)

        got = self.receive_until(bob, 1)
        self.assertEqual(len(got), 1, got)
        d = got[0]
        self.assertEqual(d.id, mid)
        self.assertEqual(d.payload, payload)
        self.assertEqual(d.sender, alice.model)
        self.assertEqual(d.to, [bob.model])
        self.assertEqual(d.namespace, alice.namespace)
        self.assertEqual(d.metadata["priority"], 2)
        self.assertEqual(d.metadata["tags"], ["a", "b"])
        self.assertEqual(d.attempt, 1)
        self.assertGreaterEqual(d.deadline_ms, d.sent_ms)
        self.assertEqual(len(d.vector), AMBIENT)
        for x, y in zip(d.vector, v):
            self.assertAlmostEqual(x, y, places=9)
        self.assertEqual(bob.mailbox().in_flight, 1)

        ack = bob.ack(d)
        self.assertEqual(ack.acked, [mid])
        self.assertEqual(bob.receive(), [])
        # Acking twice is not an error.
        self.assertNotIn(mid, bob.ack([mid]).acked)
        box = bob.mailbox()
        self.assertEqual((box.pending, box.in_flight), (0, 0))

        stored = alice.get_message(mid)
        self.assertIsNotNone(stored)
        self.assertEqual(stored.payload, payload)

    def test_text_payload_without_vector_uses_the_text_encoder(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        mid = alice.send(bob.model, "héllo in words", ttl_ms=600_000)
        d = self.receive_until(bob, 1)[0]
        self.assertEqual(d.id, mid)
        self.assertEqual(d.text, "héllo in words")
        self.assertEqual(len(d.vector), AMBIENT)
        self.assertIsNotNone(d.expires_ms)
        bob.ack(d)

    def test_subscribe_pushes_deliveries_in_order(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        bob.subscribe()
        ids = alice.send_batch([{"to": bob.model, "payload": f"m{i}", "vector": point(10 + i)} for i in range(3)])
        self.assertEqual(len(ids), 3)
        pushed = []
        for _ in ids:
            d = bob.next_delivery(timeout=REQUEST_TIMEOUT)
            self.assertIsNotNone(d, "a pushed delivery")
            pushed.append(d)
        self.assertEqual([d.id for d in pushed], ids)
        self.assertEqual([d.text for d in pushed], ["m0", "m1", "m2"])
        bob.ack(pushed)

        # The iterator form.
        mid = alice.send(bob.model, "one more")
        seen = []
        for d in bob.deliveries(timeout=REQUEST_TIMEOUT):
            seen.append(d.id)
            bob.ack(d)
            break
        self.assertEqual(seen, [mid])
        # Nothing else arrives: the iterator ends after its idle timeout.
        self.assertEqual(list(bob.deliveries(timeout=0.5)), [])
        bob.unsubscribe()

    def test_close_ends_a_delivery_iterator_in_another_thread(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        bob.subscribe()
        seen: List[str] = []
        failures: List[BaseException] = []

        def listen() -> None:
            try:
                for d in bob.deliveries():
                    bob.ack(d)
                    seen.append(d.id)
            except BaseException as e:  # reported below
                failures.append(e)

        th = threading.Thread(target=listen)
        th.start()
        mid = alice.send(bob.model, "are you there")
        self.assertTrue(eventually(lambda: seen))
        bob.close()
        th.join(REQUEST_TIMEOUT)
        self.assertFalse(th.is_alive())
        self.assertEqual((seen, failures), ([mid], []))

    def test_release_hands_a_message_back(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        mid = alice.send(bob.model, "again")
        first = self.receive_until(bob, 1)
        self.assertEqual([d.attempt for d in first], [1])
        self.assertEqual(bob.release(first), 1)
        second = self.receive_until(bob, 1)
        self.assertEqual([(d.id, d.attempt) for d in second], [(mid, 2)])
        bob.ack(second)

    def test_broadcast_reaches_each_other_model_exactly_once(self) -> None:
        alice = self.connect("alice", permissions={"broadcast": True})
        bob, carol = self.connect("bob"), self.connect("carol")
        r = alice.broadcast("to everyone", metadata={"kind": "news"})
        self.assertIn(bob.model, r.recipients)
        self.assertIn(carol.model, r.recipients)
        self.assertNotIn(alice.model, r.recipients)
        self.assertEqual(r.refused, [])
        for c in (bob, carol):
            got = self.receive_until(c, 1)
            copies = [d for d in got if d.id == r.id]
            self.assertEqual(len(copies), 1, got)
            self.assertEqual(copies[0].text, "to everyone")
            self.assertEqual(copies[0].sender, alice.model)
            c.ack(copies)
            # Nothing more, once acked.
            self.assertEqual([d for d in c.receive() if d.id == r.id], [])
        self.assertEqual(alice.receive(), [])

        # Leaving one out.
        r2 = alice.broadcast(b"not for carol", exclude=[carol.model])
        self.assertIn(bob.model, r2.recipients)
        self.assertNotIn(carol.model, r2.recipients)
        self.assertEqual([d.id for d in self.receive_until(bob, 1)], [r2.id])
        self.assertEqual(carol.receive(), [])

        # The base contract does not allow broadcasting.
        with self.assertRaises(HvsError) as cm:
            bob.broadcast("me too")
        self.assertEqual(cm.exception.code, "permission_denied")

    def test_threads_pipeline_requests_on_one_connection(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        results: Dict[int, List[str]] = {}
        errors: List[BaseException] = []

        def work(n: int) -> None:
            try:
                ids = []
                for i in range(10):
                    alice.ping()
                    ids.append(alice.send(bob.model, f"{n}-{i}", vector=point(100 * n + i)))
                results[n] = ids
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(4 * REQUEST_TIMEOUT)
        self.assertEqual(errors, [])
        sent = [i for n in range(4) for i in results[n]]
        self.assertEqual(len(set(sent)), 40)
        got = self.receive_until(bob, 40)
        self.assertEqual(sorted(d.id for d in got), sorted(sent))
        # Each thread's messages arrive in the order it sent them.
        for n in range(4):
            mine = [d.id for d in got if d.text.startswith(f"{n}-")]
            self.assertEqual(mine, results[n])
        bob.ack(got)

    def test_a_rate_limit_says_when_to_retry(self) -> None:
        alice = self.connect("alice", resource_limits={"max_vectors_per_second": 1})
        bob = self.connect("bob")
        err: Optional[HvsError] = None
        for i in range(20):
            try:
                alice.send(bob.model, f"{i}", vector=point(i))
            except HvsError as e:
                err = e
                break
        self.assertIsNotNone(err, "a limit_exceeded refusal")
        self.assertEqual(err.code, "limit_exceeded")
        self.assertIsInstance(err.retry_after_ms, int)
        self.assertGreater(err.retry_after_ms, 0)
        alice.ping()

    # ---- vectors and search -------------------------------------------

    def test_search_finds_a_sent_messages_vector(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        v = point(7)
        mid = alice.send(bob.model, "somewhere", vector=v)
        alice.send(bob.model, "elsewhere", vector=point(8))
        hits = alice.search(alice.namespace, v, k=2)
        self.assertEqual(hits[0].id, mid)
        self.assertLess(hits[0].distance, 1e-6)
        self.assertAlmostEqual(hits[0].score, 1.0 / (1.0 + hits[0].distance))
        self.assertEqual([h.rank for h in hits], list(range(len(hits))))
        # Messages are indexed with their sender in the metadata. Alice's
        # namespace is private, yet bob finds there what she said to him
        # without a grant (PROTOCOL.md); carol, who got nothing, is refused.
        hits = bob.search(alice.namespace, v, k=5, filter=F.eq("from", alice.model), exact=True)
        self.assertEqual(hits[0].id, mid)
        self.assertEqual(len(hits), 2)
        carol = self.connect("carol")
        with self.assertRaises(HvsError) as cm:
            carol.search(alice.namespace, v, k=1)
        self.assertEqual(cm.exception.code, "permission_denied")

    def test_stored_vectors_are_searched_with_filters(self) -> None:
        alice = self.connect("alice")
        a = alice.store_vector(alice.namespace, point(20), metadata={"tag": "a", "n": 1})
        b = alice.store_vector(alice.namespace, point(21), region="north", metadata={"tag": "b", "n": 5})
        self.assertEqual(b.region, "north")
        self.assertEqual(b.version, 1)
        self.assertEqual(a.metadata["tag"], "a")
        hits = alice.search(alice.namespace, point(20), k=10, filter=F.eq("tag", "b"))
        self.assertEqual([h.id for h in hits], [b.id])
        hits = alice.search(alice.namespace, point(20), k=10, filter=F.range_("n", max=2))
        self.assertEqual([h.id for h in hits], [a.id])
        hits = alice.search(alice.namespace, point(20), k=10, region="north")
        self.assertEqual([h.id for h in hits], [b.id])
        hits = alice.search(alice.namespace, point(20), k=1, offset=1, exact=True)
        self.assertEqual([h.id for h in hits], [b.id])
        self.assertEqual(hits[0].rank, 1)
        stats = alice.stats()
        self.assertEqual(stats.namespaces[alice.namespace].vectors, 2)
        self.assertTrue(stats.models[alice.model])

    def test_vectors_come_back_as_numpy_arrays_or_lists_as_asked(self) -> None:
        lists = self.connect("lists")
        lists_c = hvs_client.connect(
            str(contract(self.server, "lists2")), address=self.server.address, timeout=REQUEST_TIMEOUT, numpy=False
        )
        self.clients.append(lists_c)
        for c in (lists, lists_c):
            stored = c.store_vector(c.namespace, point(40))
            msg = c.get_message(c.send(c.model, "me", vector=point(41)))
            assert msg is not None
            if c.uses_numpy:
                import numpy as np

                self.assertIsInstance(stored.vector, np.ndarray)
                self.assertIsInstance(msg.vector, np.ndarray)
                # numpy in, too.
                self.assertEqual(c.search(c.namespace, np.asarray(point(40)), k=1)[0].id, stored.id)
            else:
                self.assertEqual((type(stored.vector), type(msg.vector)), (list, list))
                self.assertEqual(c.search(c.namespace, point(40), k=1)[0].id, stored.id)
            c.ack(c.receive())
        self.assertFalse(lists_c.uses_numpy)
        self.assertEqual(lists.uses_numpy, hvs_client.numpy_available())

    # ---- shared spaces ------------------------------------------------

    def test_shared_space_join_contribute_consensus(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        space = f"chat-py-team-{next(_ids)}"
        ns = alice.create_namespace(space, hvs_client.geometry("hyperboloid", 2), visibility="shared")
        self.assertEqual((ns.name, ns.owner, ns.visibility), (space, alice.model, "shared"))
        self.assertEqual(ns.geometry["kind"], "hyperboloid")
        alice.join(space, ["planning"])
        bob.join(space, ["routing"])
        info = bob.namespace_info(space)
        self.assertEqual(info.members[alice.model], ["planning"])
        self.assertEqual(info.members[bob.model], ["routing"])
        self.assertTrue(alice.check_access(space, "write"))

        alice.contribute(space, "a", h2(0.4, 0.0), "east")
        bid = bob.contribute(space, "b", h2(0.4, math.pi), {"side": "west"})
        self.assertIsInstance(bid, str)
        c = bob.consensus(space)
        self.assertEqual((c.contributions, c.contributors), (2, 2))
        self.assertTrue(c.converged)
        # Two points symmetric about the origin: their mean is the origin.
        for x, y in zip(c.mean, [1.0, 0.0, 0.0]):
            self.assertAlmostEqual(x, y, places=6)
        # Weighted towards alice, the mean moves her way.
        w = bob.consensus(space, weights={alice.model: 3.0, bob.model: 1.0})
        self.assertGreater(w.mean[1], 0.0)

        hits = alice.query_shared(space, h2(0.4, math.pi), k=2)
        self.assertEqual(hits[0].id, bid)
        self.assertEqual((hits[0].contributor, hits[0].key, hits[0].value), (bob.model, "b", {"side": "west"}))
        self.assertEqual(hits[1].value, "east")

    # ---- state --------------------------------------------------------

    def test_model_state(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        alice.register_state({"type": "object", "properties": {"mood": {"type": "string"}}})
        v1 = alice.update_state({"mood": "calm", "load": 0.2})
        v2 = alice.update_state({"mood": "busy", "load": 0.9})
        self.assertGreater(v2, v1)
        s = bob.get_state(alice.model)
        self.assertIsNotNone(s)
        self.assertEqual((s.model, s.state["mood"], s.version), (alice.model, "busy", v2))
        self.assertIsNone(bob.get_state(bob.model))
        similar = bob.find_similar_states({"mood": "busy", "load": 0.9}, k=5)
        self.assertIn(alice.model, [x.model for x in similar])
        self.assertTrue(all(x.score is not None for x in similar))

    # ---- blocks -------------------------------------------------------

    def test_blocks_store_query_get_update_delete(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        n = next(_ids)
        name = f"py-notes-{n}"
        text = "the drawbridge over the marmalade canal is closed for repairs"
        b = alice.store_block(name, text=text)
        self.assertEqual((b.name, b.text, b.version, b.readonly), (name, text, 1, False))
        self.assertEqual(b.block_class, "shared_knowledge")

        hits = bob.query_blocks("drawbridge marmalade canal closed", k=3)
        self.assertTrue(hits, "a hit")
        self.assertEqual(hits[0].name, name)
        self.assertEqual(hits[0].block_id, b.id)
        again = bob.get_block(name)
        self.assertEqual((again.id, again.text), (b.id, text))
        self.assertIsNone(bob.get_block(f"py-absent-{n}"))

        j = alice.store_block(f"py-json-{n}", json={"route": ["a", "b"], "open": False})
        self.assertEqual(alice.get_block(j.name).json, {"route": ["a", "b"], "open": False})
        raw = alice.store_block(f"py-bytes-{n}", data=b"\x00\x01\xfe", persist=False)
        self.assertEqual(alice.get_block(raw.name).data, b"\x00\x01\xfe")
        self.assertNotEqual(raw.block_class, "shared_knowledge")

        up = alice.update_block(name, text="the drawbridge is open again")
        self.assertEqual((up.id, up.version, up.text), (b.id, 2, "the drawbridge is open again"))
        self.assertTrue(alice.delete_block(name))
        self.assertIsNone(alice.get_block(name))
        with self.assertRaises(ValueError):
            alice.store_block("nothing")

    # ---- errors -------------------------------------------------------

    def test_a_refusal_is_an_hvs_error_and_the_connection_goes_on(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        with self.assertRaises(HvsError) as cm:
            bob.store_vector(alice.namespace, point(3))
        self.assertEqual(cm.exception.code, "permission_denied")
        self.assertIn(alice.namespace, cm.exception.message)
        self.assertIsNone(cm.exception.retry_after_ms)
        # Still usable.
        self.assertGreater(bob.ping(), 0)
        denied = bob.check_access(alice.namespace, "write")
        self.assertFalse(denied)
        self.assertEqual(denied.code, "permission_denied")
        self.assertFalse(bob.check_access(alice.namespace, "read"))
        alice.grant_access(alice.namespace, bob.model, read=True)
        self.assertTrue(bob.check_access(alice.namespace, "read"))
        self.assertFalse(bob.check_access(alice.namespace, "write"))
        self.assertEqual(alice.namespace_info(alice.namespace).grants[bob.model], {"read": True, "write": False})
        mid = alice.send(bob.model, "still here")
        self.assertEqual([d.id for d in self.receive_until(bob, 1)], [mid])

    def test_unknown_ops_and_bad_arguments_get_stable_codes(self) -> None:
        c = self.connect("odd")
        with self.assertRaises(HvsError) as cm:
            c.call("no_such_op", x=1)
        self.assertEqual(cm.exception.code, "unknown_op")
        with self.assertRaises(HvsError) as cm:
            c.call("receive", max="lots")
        self.assertEqual(cm.exception.code, "bad_request")
        with self.assertRaises(HvsError) as cm:
            c.call("hello", versions=[1], contract="{}")
        self.assertEqual(cm.exception.code, "already_greeted")
        # The generic call returns the decoded answer.
        self.assertIn("now_ms", c.call("ping"))
        self.assertEqual(c.call("receive", max=5), {"deliveries": []})

    def test_a_request_over_the_frame_limit_is_refused_before_sending(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        big = b"x" * (alice.welcome.max_frame_bytes + 1)
        with self.assertRaises(HvsError) as cm:
            alice.send(bob.model, big)
        self.assertEqual(cm.exception.code, "frame_too_large")
        self.assertGreater(alice.ping(), 0)

    # ---- heartbeats and closing ---------------------------------------

    def test_heartbeats_keep_a_quiet_client_connected(self) -> None:
        hc = {"interval_seconds": 1, "timeout_seconds": 1}
        c = self.connect("quiet", health_check=hc)
        self.assertEqual((c.welcome.heartbeat_interval_ms, c.welcome.heartbeat_timeout_ms), (1000, 2000))
        time.sleep(4.0)  # twice the server's patience, saying nothing ourselves
        self.assertGreater(c.ping(), 0)
        self.assertTrue(c.stats().models[c.model])

    def test_a_silent_client_is_told_and_gets_connection_lost(self) -> None:
        # Without reconnection (test_reconnect.py has the default).
        hc = {"interval_seconds": 1, "timeout_seconds": 1}
        c = self.connect("silent", heartbeat=False, reconnect=False, health_check=hc)
        with self.assertRaises(ConnectionLost) as cm:
            c.next_delivery(timeout=REQUEST_TIMEOUT)
        self.assertEqual(cm.exception.code, "heartbeat_timeout")
        self.assertEqual(c.closing[0], "heartbeat_timeout")
        with self.assertRaises(ConnectionLost) as cm:
            c.ping()
        self.assertEqual(cm.exception.code, "heartbeat_timeout")
        self.assertFalse(c.connected)

    def test_close_says_bye(self) -> None:
        watcher = self.connect("watcher")
        path = contract(self.server, "leaving")
        with hvs_client.connect(str(path), address=self.server.address, timeout=REQUEST_TIMEOUT) as c:
            model = c.model
            self.assertTrue(watcher.stats().models[model])
        self.assertFalse(c.connected)
        with self.assertRaises(ConnectionLost) as cm:
            c.ping()
        self.assertEqual(cm.exception.code, "closed")
        self.assertTrue(eventually(lambda: not watcher.stats().models[model]))
        # Messages for it wait in its mailbox.
        mid = watcher.send(model, "for later")
        with hvs_client.connect(str(path), address=self.server.address, timeout=REQUEST_TIMEOUT) as again:
            self.assertEqual([d.id for d in self.receive_until(again, 1)], [mid])
        c.close()  # idempotent


class ShutdownTest(unittest.TestCase):
    """SIGTERM: a connected client is told `shutting_down`, and the server
    exits 0."""

    def test_sigterm_closes_clients_and_exits_zero(self) -> None:
        server = ServerProcess()
        try:
            c = hvs_client.connect(
                str(contract(server, "last")), address=server.address, timeout=REQUEST_TIMEOUT, reconnect=False
            )
            c.subscribe()
            server.proc.send_signal(signal.SIGTERM)
            with self.assertRaises(ConnectionLost) as cm:
                c.next_delivery(timeout=REQUEST_TIMEOUT)
            self.assertEqual(cm.exception.code, "shutting_down")
            with self.assertRaises(ConnectionLost):
                c.ping()
            c.close()
            self.assertEqual(server.stop(), 0, server.log())
            self.assertIn("stopped cleanly", server.log())
        finally:
            server.stop()
            server.cleanup()


class UntrustedServerTest(unittest.TestCase):
    """The client never believes a frame length past its limit: a fake
    server announces 1 KiB frames, then sends a header claiming 2 GiB."""

    def test_an_oversized_frame_is_a_protocol_error_not_an_allocation(self) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        go = threading.Event()

        def fake() -> None:
            conn, _ = listener.accept()
            with conn:
                (n,) = struct.unpack(">I", conn.recv(4))
                body = b""
                while len(body) < n:
                    body += conn.recv(n - len(body))
                hello = msgpack.unpackb(body, raw=False)
                welcome = {
                    "version": 1,
                    "server": "fake/0",
                    "model": "m",
                    "namespace": "m",
                    "heartbeat_interval_ms": 60000,
                    "heartbeat_timeout_ms": 120000,
                    "max_frame_bytes": 1024,
                    "max_in_flight": 4,
                }
                ok = msgpack.packb({"id": hello["id"], "ok": welcome}, use_bin_type=True)
                conn.sendall(struct.pack(">I", len(ok)) + ok)
                go.wait(10)
                conn.sendall(struct.pack(">I", 2**31) + b"\x80")
                time.sleep(1)

        th = threading.Thread(target=fake, daemon=True)
        th.start()
        try:
            c = hvs_client.connect({"model": {"id": "m"}}, address=f"127.0.0.1:{port}", timeout=10)
            self.assertEqual(c.welcome.max_frame_bytes, 1024)
            go.set()
            with self.assertRaises(ConnectionLost) as cm:
                c.next_delivery(timeout=10)
            self.assertEqual(cm.exception.code, "protocol")
            self.assertIn("2147483648", cm.exception.reason)
            c.close()
        finally:
            listener.close()
            th.join(5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
