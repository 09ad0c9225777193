"""The wire without a server: frames, vectors in and out (numpy or lists),
errors, and the rules for resending after a lost answer."""

from __future__ import annotations

import inspect
import random
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import support  # noqa: E402,F401 (puts the package on the path when not installed)

import hvs_client  # noqa: E402
from hvs_client import codec, protocol  # noqa: E402
from hvs_client import types as t  # noqa: E402
from hvs_client.codec import Retry  # noqa: E402
from hvs_client.errors import ConnectionLost, HvsError, ProtocolError, VersionConflict, error_from_wire  # noqa: E402

try:
    import numpy as np
except ImportError:  # the list path alone
    np = None  # type: ignore[assignment]


class FrameTest(unittest.TestCase):
    def test_a_frame_round_trips_and_big_ones_are_refused(self) -> None:
        data = codec.encode_frame(codec.request_frame(7, "ping", None), 1 << 20)
        n = codec.frame_length(data[:4], 1 << 20)
        self.assertEqual(codec.decode_body(data[4 : 4 + n]), {"id": 7, "op": "ping", "args": {}})
        with self.assertRaises(HvsError) as cm:
            codec.encode_frame({"x": b"x" * 100}, 50)
        self.assertEqual(cm.exception.code, "frame_too_large")
        with self.assertRaises(ProtocolError):
            codec.frame_length(b"\x80\x00\x00\x00", 1 << 20)
        with self.assertRaises(ProtocolError):
            codec.decode_body(b"\x93\x01\x02\x03")  # an array, not a map

    def test_frames_are_told_apart_by_their_keys(self) -> None:
        self.assertIs(codec.read_frame({"push": "delivery", "delivery": {}}).kind, codec.Kind.DELIVERY)
        closing = codec.read_frame({"push": "closing", "code": "replaced", "reason": "r"})
        self.assertEqual(closing.closing, ("replaced", "r"))
        self.assertIs(codec.read_frame({"id": None, "error": {"code": "bad_frame"}}).kind, codec.Kind.UNROUTED)
        ok = codec.read_frame({"id": 3, "ok": None})
        self.assertEqual((ok.kind, ok.id, ok.ok, ok.error), (codec.Kind.ANSWER, 3, None, None))
        with self.assertRaises(ProtocolError):
            codec.read_frame({"id": 3})

    def test_a_welcome_says_whether_the_session_is_read_only(self) -> None:
        base = {"version": 1, "server": "hvs/0", "model": "m", "namespace": "m"}
        plain = codec.read_welcome({"id": 0, "ok": base})
        self.assertEqual((plain.read_only, plain.read_only_reason), (False, None))
        reason = "No space left on device (os error 28)"
        ro = codec.read_welcome({"id": 0, "ok": {**base, "read_only": True, "read_only_reason": reason}})
        self.assertEqual((ro.read_only, ro.read_only_reason), (True, reason))

    def test_a_version_conflict_carries_the_current_version(self) -> None:
        e = error_from_wire({"code": "version_conflict", "message": "at 4", "current_version": 4})
        self.assertIsInstance(e, VersionConflict)
        self.assertEqual((e.code, e.current_version, e.details), ("version_conflict", 4, {"current_version": 4}))
        other = error_from_wire({"code": "limit_exceeded", "message": "m", "retry_after_ms": 250, "limit": "x"})
        self.assertEqual((type(other), other.retry_after_ms, other.details), (HvsError, 250, {"limit": "x"}))


class VectorTest(unittest.TestCase):
    def test_vectors_in(self) -> None:
        self.assertEqual(codec.encode_vector((1, 2.5)), [1.0, 2.5])
        self.assertIsNone(codec.encode_vector(None))
        with self.assertRaises(TypeError):
            codec.encode_vector("abc")
        if np is not None:
            self.assertEqual(codec.encode_vector(np.array([1, 2], dtype=np.int32)), [1.0, 2.0])
            with self.assertRaises(ValueError):
                codec.encode_vector(np.zeros((2, 2)))
            # numpy scalars anywhere else (metadata) go as plain numbers.
            data = codec.encode_frame({"m": {"w": np.float32(0.5), "v": np.arange(2)}}, 1 << 20)
            self.assertEqual(codec.decode_body(data[4:]), {"m": {"w": 0.5, "v": [0, 1]}})

    def test_vectors_out_as_lists_when_asked_or_without_numpy(self) -> None:
        read = codec.vector_reader(False)
        hit = t.build(t.Hit, {"id": "a", "distance": 0, "score": 1, "rank": 0, "vector": [1, 2]}, read)
        self.assertEqual((type(hit.vector), hit.vector), (list, [1.0, 2.0]))
        self.assertIsNone(t.build(t.Hit, {"id": "a"}, read).vector)
        saved = codec._np
        try:
            codec._np = None
            self.assertIs(codec.vector_reader(None), codec._float_list)
            with self.assertRaises(ImportError):
                codec.vector_reader(True)
        finally:
            codec._np = saved

    @unittest.skipIf(np is None, "numpy is not installed")
    def test_vectors_out_as_numpy_by_default(self) -> None:
        read = codec.vector_reader(None)
        v = t.build(t.StoredVector, {"id": "a", "vector": [1, 2, 3]}, read)
        self.assertIsInstance(v.vector, np.ndarray)
        self.assertEqual(v.vector.dtype, np.float64)
        page = protocol.scroll("ns").read({"vectors": [{"id": "a", "vector": [0.5]}], "next": None}, read)
        self.assertIsInstance(page.vectors[0].vector, np.ndarray)
        d = t.build(t.Delivery, {"id": "m", "from": "x", "vector": [1.0]}, read)
        self.assertEqual((d.sender, d.vector.tolist()), ("x", [1.0]))


class ProtocolTest(unittest.TestCase):
    def test_optional_arguments_go_only_when_given(self) -> None:
        self.assertEqual(protocol.search("n", [1], k=3).args, {"namespace": "n", "vector": [1.0], "k": 3})
        args = protocol.update_vector("i", metadata={}, clear_region=True, if_version=2).args
        self.assertEqual(args, {"id": "i", "metadata": {}, "clear_region": True, "if_version": 2})
        self.assertEqual(protocol.list_blocks("cache").args, {"class": "cache"})
        self.assertEqual(protocol.update_block("b", read=["*"]).args, {"name": "b", "read": ["*"]})
        with self.assertRaises(ValueError):
            protocol.update_block("b")
        with self.assertRaises(ValueError):
            protocol.store_block("b", text="x", data=b"y")
        geometry = {"kind": "euclidean", "dim": 2}
        plain = protocol.create_namespace("n", geometry).args
        self.assertNotIn("retention", plain)
        kept = protocol.create_namespace("n", geometry, retention={"max_messages": 3, "discard": "new"})
        self.assertEqual(kept.args["retention"], {"max_messages": 3, "discard": "new"})
        info = kept.read({"name": "n", "retention": {"max_messages": 3}}, codec.vector_reader(False))
        self.assertEqual(info.retention, {"max_messages": 3})
        items = protocol.batch_store_vectors("n", [[1], {"vector": [2], "region": "r"}], metadata=[{"a": 1}, None]).args
        self.assertEqual(items["vectors"], [{"vector": [1.0], "metadata": {"a": 1}}, {"vector": [2.0], "region": "r"}])

    def test_sync_jobs_are_spec_maps(self) -> None:
        full = protocol.sync_full("j", "b", follow=False)
        self.assertEqual((full.op, full.retry), ("sync_create", Retry.NEVER))
        spec = {"name": "j", "source": "b", "mode": {"kind": "full"}, "strategy": "last_write_wins", "follow": False}
        self.assertEqual(full.args, spec)
        self.assertEqual(protocol.sync_create(spec).args, spec)
        partial = protocol.sync_partial("j", "b", "ns", regions=["r"], strategy="merge").args
        self.assertEqual(partial["mode"], {"kind": "partial", "namespaces": ["ns"], "regions": ["r"]})
        self.assertEqual((partial["strategy"], partial["follow"]), ("merge", True))
        selective = protocol.sync_selective("j", "b", {"eq": ["a", 1]}).args
        self.assertEqual(selective["mode"], {"kind": "selective", "filter": {"eq": ["a", 1]}})
        self.assertEqual(protocol.sync_conflicts("j").args, {"name": "j", "after": 0, "limit": 100})
        read = codec.vector_reader(False)
        self.assertEqual(protocol.sync_list().read({"jobs": [{"spec": spec}]}, read), [{"spec": spec}])
        self.assertEqual(protocol.sync_conflicts("j").read({"conflicts": []}, read), [])

    def test_answers_are_read_into_their_types(self) -> None:
        read = codec.vector_reader(False)
        got = protocol.retrieve_vectors(["a", "b"]).read({"vectors": [{"id": "a"}], "missing": ["b"]}, read)
        self.assertEqual(([v.id for v in got.vectors], got.missing), (["a"], ["b"]))
        self.assertIsNone(protocol.retrieve_vector("a").read(None, read))
        res = protocol.batch_search([{"namespace": "n", "vector": [0]}]).read({"results": [[{"id": "x"}], []]}, read)
        self.assertEqual([[h.id for h in r] for r in res], [["x"], []])
        listed = protocol.list_namespaces().read({"namespaces": [{"name": "n", "vectors": 2}]}, read)
        self.assertEqual((listed[0].name, listed[0].vectors), ("n", 2))
        self.assertEqual(protocol.delete_by_filter("n", {"eq": ["a", 1]}).read({"deleted": 3}, read), 3)

    def test_every_operation_is_a_method_of_both_clients_with_its_arguments(self) -> None:
        for build in protocol.OPERATIONS:
            for cls in (hvs_client.Client, hvs_client.AsyncClient):
                method = getattr(cls, build.__name__)
                params = list(inspect.signature(method).parameters)
                self.assertEqual(params, ["self", *inspect.signature(build).parameters], (cls, build.__name__))
            self.assertTrue(inspect.iscoroutinefunction(getattr(hvs_client.AsyncClient, build.__name__)))


class PackageTest(unittest.TestCase):
    def test_the_package_ships_its_type_marker_and_exports(self) -> None:
        self.assertTrue((Path(hvs_client.__file__).parent / "py.typed").is_file())
        for name in hvs_client.__all__:
            self.assertTrue(hasattr(hvs_client, name), name)


class RetryTest(unittest.TestCase):
    """The table in the README ("Reconnection"), as the protocol module
    declares it."""

    ALWAYS = {
        "ping", "stats", "receive", "ack", "mailbox", "get_message", "namespace_info", "grant_access",
        "check_access", "list_namespaces", "retrieve_vector", "retrieve_vectors", "delete_vector",
        "delete_vectors", "delete_by_filter", "search", "range_search", "batch_search", "count", "scroll",
        "join", "query_shared", "consensus", "register_state", "get_state", "find_similar_states",
        "query_blocks", "get_block", "delete_block", "list_blocks", "delete_namespace",
        "sync_list", "sync_status", "sync_pause", "sync_resume", "sync_conflicts", "cluster_status",
        "bridge_list", "bridge_status", "bridge_search",
    }  # fmt: skip
    AT_LEAST_ONCE = {
        "send", "send_batch", "broadcast", "store_vector", "batch_store_vectors", "update_vector",
        "contribute", "update_state", "update_block",
    }  # fmt: skip
    NEVER = {
        "release", "create_namespace", "store_block", "sync_create", "sync_delete", "bridge_create", "bridge_delete",
    }  # fmt: skip

    def sample(self, build: object) -> protocol.Call:  # type: ignore[type-arg]
        args = {
            "namespace": "n", "vector": [0], "name": "n", "geometry": {}, "model": "m", "id": "i", "ids": ["i"],
            "payload": "p", "to": "m", "messages": [], "max": 1, "vectors": [], "searches": [], "filter": {},
            "radius": 1.0, "space": "s", "key": "k", "schema": {}, "state": {}, "text": "t", "metadata": {},
            "spec": {}, "source": "b", "namespaces": ["n"], "networks": ["a", "b"], "policy": "strict",
            "capability": "c", "target": "t",
        }  # fmt: skip
        params = inspect.signature(build).parameters  # type: ignore[arg-type]
        given = {k: args[k] for k, p in params.items() if p.default is inspect.Parameter.empty}
        if "text" in params:  # blocks need content
            given["text"] = "t"
        return build(**given)  # type: ignore[operator, no-any-return]

    def test_each_operation_declares_when_it_is_resent(self) -> None:
        table = {Retry.ALWAYS: self.ALWAYS, Retry.AT_LEAST_ONCE: self.AT_LEAST_ONCE, Retry.NEVER: self.NEVER}
        for build in protocol.OPERATIONS:
            call = self.sample(build)
            self.assertIn(call.op, table[call.retry], f"{call.op} is {call.retry}")
        self.assertIs(protocol.update_vector("i", if_version=3).retry, Retry.NEVER)
        self.assertIs(protocol.call("anything").retry, Retry.NEVER)

    def test_what_is_resent_after_which_loss(self) -> None:
        lost = ConnectionLost("x", "connection_lost", maybe_done=True)
        unsent = ConnectionLost("x", "connection_lost", maybe_done=False)
        self.assertTrue(codec.may_resend(Retry.NEVER, unsent, False))
        self.assertFalse(codec.may_resend(Retry.NEVER, lost, True))
        self.assertFalse(codec.may_resend(Retry.AT_LEAST_ONCE, lost, False))
        self.assertTrue(codec.may_resend(Retry.AT_LEAST_ONCE, lost, True))
        self.assertTrue(codec.may_resend(Retry.ALWAYS, lost, False))
        for code in ("replaced", "closed", "protocol"):
            self.assertFalse(codec.may_resend(Retry.ALWAYS, ConnectionLost("x", code), False), code)
            self.assertFalse(codec.may_reconnect(ConnectionLost("x", code)), code)
        for code in ("connection_lost", "shutting_down", "heartbeat_timeout"):
            self.assertTrue(codec.may_reconnect(ConnectionLost("x", code)), code)

    def test_backoff_grows_to_its_maximum_with_jitter(self) -> None:
        delays = codec.Backoff(initial=0.1, maximum=1.0).delays(random.Random(1))
        got = [next(delays) for _ in range(8)]
        self.assertTrue(0.05 <= got[0] <= 0.1, got)
        self.assertTrue(all(0.5 <= d <= 1.0 for d in got[5:]), got)


if __name__ == "__main__":
    unittest.main(verbosity=2)
