"""The vector database over the wire (issue 11, /work/shared-spec-new-ops.md
→ docs/PROTOCOL.md): every new operation through the typed methods of both
clients, against a real `hvs serve`. Until the server implements them these
fail with `unknown_op`; they are not skipped."""

from __future__ import annotations

import asyncio
import sys
import unittest
from pathlib import Path
from typing import Any, List, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from support import REQUEST_TIMEOUT, _ids, contract, h2, setUpModule, shared_server, tearDownModule  # noqa: E402,F401

import hvs_client  # noqa: E402
from hvs_client import HvsError, VersionConflict  # noqa: E402
from hvs_client import filters as F  # noqa: E402

MISSING = "00000000-0000-7000-8000-000000000000"
E3 = {"kind": "euclidean", "dim": 3}

def floats(v: Any) -> List[float]:
    """A vector (list or numpy array) as a list of floats."""
    return [float(x) for x in v]


class VectorApiTest(unittest.TestCase):
    def setUp(self) -> None:
        self.server = shared_server()
        self.clients: List[hvs_client.Client] = []

    def tearDown(self) -> None:
        for c in self.clients:
            c.close()

    def connect(self, role: str, **options: Any) -> hvs_client.Client:
        c = hvs_client.connect(
            str(contract(self.server, role)), address=self.server.address, timeout=REQUEST_TIMEOUT, **options
        )
        self.clients.append(c)
        return c

    def space(self, owner: hvs_client.Client) -> str:
        """A new euclidean namespace of dimension 3 owned by `owner`."""
        name = f"chat-py-team-{next(_ids)}"
        owner.create_namespace(name, E3)
        return name

    def assertVector(self, got: Any, want: Sequence[float]) -> None:
        self.assertIsNotNone(got)
        self.assertEqual(len(got), len(want))
        for x, y in zip(floats(got), want):
            self.assertAlmostEqual(x, y, places=9)

    # ---- store, retrieve ------------------------------------------------

    def test_retrieve_vector_and_vectors(self) -> None:
        alice = self.connect("alice")
        ns = self.space(alice)
        a = alice.store_vector(ns, [0.0, 1.0, 2.0], region="north", metadata={"tag": "a"})
        b = alice.store_vector(ns, (3, 4, 5), metadata={"tag": "b"})

        got = alice.retrieve_vector(a.id)
        assert got is not None
        self.assertEqual((got.id, got.namespace, got.region, got.metadata, got.version), (a.id, ns, "north", {"tag": "a"}, 1))
        self.assertVector(got.vector, [0.0, 1.0, 2.0])
        self.assertEqual(got.timestamp_ms, a.timestamp_ms)
        bare = alice.retrieve_vector(b.id, with_vector=False)
        assert bare is not None
        self.assertIsNone(bare.vector)
        self.assertEqual(bare.metadata, {"tag": "b"})
        self.assertIsNone(alice.retrieve_vector(MISSING))

        many = alice.retrieve_vectors([b.id, MISSING, a])
        self.assertEqual([v.id for v in many.vectors], [b.id, a.id])
        self.assertEqual(many.missing, [MISSING])
        self.assertVector(many.vectors[0].vector, [3, 4, 5])
        self.assertIsNone(alice.retrieve_vectors([a.id], with_vector=False).vectors[0].vector)

    def test_batch_store_is_all_or_nothing_and_in_order(self) -> None:
        alice = self.connect("alice")
        ns = self.space(alice)
        ids = alice.batch_store_vectors(ns, [[1, 0, 0], [0, 1, 0]], metadata=[{"i": 0}, {"i": 1}], regions=["r0", None])
        self.assertEqual(len(ids), 2)
        more = alice.batch_store_vectors(ns, [{"vector": [0, 0, 1], "region": "r2", "metadata": {"i": 2}}])
        got = alice.retrieve_vectors(ids + more)
        self.assertEqual([v.metadata["i"] for v in got.vectors], [0, 1, 2])
        self.assertEqual([v.region for v in got.vectors], ["r0", None, "r2"])
        with self.assertRaises(HvsError) as cm:
            alice.batch_store_vectors(ns, [[2, 2, 2], [1, 1]])
        self.assertEqual(cm.exception.code, "dimension_mismatch")
        self.assertEqual(alice.count(ns), 3)
        with self.assertRaises(ValueError):
            alice.batch_store_vectors(ns, [[1, 1, 1]], metadata=[{}, {}])

    def test_numpy_arrays_go_in_and_come_out(self) -> None:
        try:
            import numpy as np
        except ImportError:
            self.skipTest("numpy is not installed (the list path is tested without it)")
        alice = self.connect("alice")
        self.assertTrue(alice.uses_numpy)
        ns = self.space(alice)
        ids = alice.batch_store_vectors(ns, np.eye(3))
        v = alice.store_vector(ns, np.array([1.0, 2.0, 3.0], dtype=np.float32), metadata={"w": np.float32(0.5)})
        self.assertIsInstance(v.vector, np.ndarray)
        self.assertEqual(v.metadata, {"w": 0.5})
        got = alice.retrieve_vectors(ids)
        np.testing.assert_allclose(np.stack([g.vector for g in got.vectors]), np.eye(3))
        hits = alice.search(ns, np.zeros(3), k=1, exact=True, with_vector=True)
        self.assertIsInstance(hits[0].vector, np.ndarray)
        with self.assertRaises(ValueError):
            alice.store_vector(ns, np.zeros((2, 3)))

    def test_numpy_false_returns_lists(self) -> None:
        alice = self.connect("alice", numpy=False)
        self.assertFalse(alice.uses_numpy)
        ns = self.space(alice)
        v = alice.store_vector(ns, [1, 2, 3])
        got = alice.retrieve_vector(v.id)
        assert got is not None
        self.assertEqual(type(got.vector), list)
        self.assertEqual(got.vector, [1.0, 2.0, 3.0])
        hits = alice.search(ns, [1, 2, 3], k=1, exact=True, with_vector=True)
        self.assertEqual(type(hits[0].vector), list)

    # ---- update -----------------------------------------------------------

    def test_update_vector_bumps_the_version_and_compare_and_set_conflicts(self) -> None:
        alice = self.connect("alice")
        ns = self.space(alice)
        v = alice.store_vector(ns, [0, 0, 0], region="north", metadata={"n": 1})
        up = alice.update_vector(v.id, metadata={"n": 2}, if_version=1)
        self.assertEqual((up.id, up.version, up.metadata, up.region), (v.id, 2, {"n": 2}, "north"))
        self.assertVector(up.vector, [0, 0, 0])

        with self.assertRaises(VersionConflict) as cm:
            alice.update_vector(v.id, vector=[1, 1, 1], if_version=1)
        self.assertEqual(cm.exception.code, "version_conflict")
        self.assertEqual(cm.exception.current_version, 2)
        self.assertIsInstance(cm.exception, HvsError)
        still = alice.retrieve_vector(v.id)
        assert still is not None
        self.assertEqual(still.version, 2)
        self.assertVector(still.vector, [0, 0, 0])

        moved = alice.update_vector(v.id, vector=[1, 1, 1])
        self.assertEqual((moved.version, moved.metadata), (3, {"n": 2}))
        self.assertVector(moved.vector, [1, 1, 1])
        cleared = alice.update_vector(v.id, clear_region=True, if_version=3)
        self.assertEqual((cleared.version, cleared.region), (4, None))
        self.assertEqual(alice.search(ns, [1, 1, 1], k=1, exact=True)[0].id, v.id)

        with self.assertRaises(HvsError) as missing:
            alice.update_vector(MISSING, metadata={})
        self.assertEqual(missing.exception.code, "vector_not_found")

    # ---- delete -------------------------------------------------------

    def test_deletes_one_many_and_by_filter(self) -> None:
        alice = self.connect("alice")
        ns = self.space(alice)
        ids = alice.batch_store_vectors(
            ns, [[i, 0, 0] for i in range(5)], metadata=[{"even": i % 2 == 0, "i": i} for i in range(5)]
        )
        self.assertTrue(alice.delete_vector(ids[0]))
        self.assertFalse(alice.delete_vector(ids[0]))
        self.assertIsNone(alice.retrieve_vector(ids[0]))
        d = alice.delete_vectors([ids[1], ids[0]])
        self.assertEqual((d.deleted, d.missing), ([ids[1]], [ids[0]]))
        self.assertEqual(alice.count(ns), 3)
        self.assertEqual(alice.delete_by_filter(ns, F.eq("even", True)), 2)
        self.assertEqual([v.id for v in alice.scroll_all(ns)], [ids[3]])
        self.assertEqual(alice.delete_by_filter(ns, F.eq("even", True)), 0)

    def test_writes_to_anothers_namespace_are_refused(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        ns = self.space(alice)
        v = alice.store_vector(ns, [1, 2, 3])
        alice.grant_access(ns, bob.model, read=True)
        self.assertEqual(bob.retrieve_vector(v.id).id, v.id)  # type: ignore[union-attr]
        for attempt in (
            lambda: bob.update_vector(v.id, metadata={"x": 1}),
            lambda: bob.delete_vector(v.id),
            lambda: bob.delete_vectors([v.id]),
            lambda: bob.delete_by_filter(ns, F.eq("x", 1)),
            lambda: bob.batch_store_vectors(ns, [[0, 0, 0]]),
        ):
            with self.assertRaises(HvsError) as cm:
                attempt()
            self.assertEqual(cm.exception.code, "permission_denied")
        self.assertEqual(alice.count(ns), 1)

    # ---- search ---------------------------------------------------------

    def test_hits_carry_metadata_region_and_the_vector_on_request(self) -> None:
        alice = self.connect("alice")
        ns = self.space(alice)
        a = alice.store_vector(ns, [0, 0, 0], region="north", metadata={"tag": "a"})
        b = alice.store_vector(ns, [1, 0, 0], metadata={"tag": "b"})
        c = alice.store_vector(ns, [0, 3, 0], region="south", metadata={"tag": "b"})

        hits = alice.search(ns, [0, 0, 0], k=2, exact=True)
        self.assertEqual([(h.id, h.rank) for h in hits], [(a.id, 0), (b.id, 1)])
        self.assertEqual((hits[0].metadata, hits[0].region, hits[0].vector), ({"tag": "a"}, "north", None))
        self.assertAlmostEqual(hits[1].distance, 1.0)
        self.assertAlmostEqual(hits[1].score, 0.5)
        hits = alice.search(ns, [0, 0, 0], k=5, exact=True, with_vector=True, filter=F.eq("tag", "b"))
        self.assertEqual([h.id for h in hits], [b.id, c.id])
        self.assertVector(hits[1].vector, [0, 3, 0])
        self.assertEqual(hits[1].region, "south")

        near = alice.range_search(ns, [0, 0, 0], radius=1.5)
        self.assertEqual([h.id for h in near], [a.id, b.id])
        self.assertEqual(near[1].metadata, {"tag": "b"})
        self.assertEqual([h.id for h in alice.range_search(ns, [0, 0, 0], radius=10, limit=1)], [a.id])
        within = alice.range_search(ns, [0, 0, 0], radius=10, filter=F.eq("tag", "b"), with_vector=True)
        self.assertEqual([h.id for h in within], [b.id, c.id])
        self.assertVector(within[0].vector, [1, 0, 0])
        self.assertTrue(all(h.distance <= 10 for h in within))

        results = alice.batch_search(
            [
                {"namespace": ns, "vector": [0, 3, 0], "k": 1, "exact": True},
                {"namespace": ns, "vector": [0, 0, 0], "k": 3, "exact": True, "region": "north", "with_vector": True},
            ]
        )
        self.assertEqual([[h.id for h in r] for r in results], [[c.id], [a.id]])
        self.assertVector(results[1][0].vector, [0, 0, 0])
        with self.assertRaises(HvsError) as cm:
            alice.batch_search([{"namespace": ns, "vector": [0, 0, 0]}, {"namespace": ns, "vector": [0, 0]}])
        self.assertEqual(cm.exception.code, "dimension_mismatch")

    def test_message_hits_carry_their_metadata(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        mid = alice.send(bob.model, "where is the drawbridge", metadata={"topic": "route"})
        msg = alice.get_message(mid)
        assert msg is not None
        hits = alice.search(alice.namespace, msg.vector, k=1, filter=F.eq("from", alice.model))
        self.assertEqual(hits[0].id, mid)
        assert hits[0].metadata is not None
        self.assertEqual(hits[0].metadata.get("topic"), "route")
        self.assertEqual(hits[0].metadata.get("from"), alice.model)

    # ---- count, scroll ----------------------------------------------

    def test_count_and_scroll_in_id_order_across_pages(self) -> None:
        alice = self.connect("alice")
        ns = self.space(alice)
        ids = alice.batch_store_vectors(ns, [[i, 0, 0] for i in range(7)], metadata=[{"i": i} for i in range(7)])
        self.assertEqual(alice.count(ns), 7)
        self.assertEqual(alice.count(ns, F.range_("i", min=5)), 2)

        seen: List[str] = []
        page = alice.scroll(ns, limit=3)
        pages = 1
        seen += [v.id for v in page.vectors]
        self.assertTrue(all(v.vector is None for v in page.vectors))
        while page.next is not None:
            page = alice.scroll(ns, after=page.next, limit=3, with_vector=True)
            pages += 1
            seen += [v.id for v in page.vectors]
        self.assertEqual(seen, sorted(ids))
        self.assertEqual(len(set(seen)), 7)
        self.assertGreaterEqual(pages, 3)
        self.assertEqual([v.metadata["i"] for v in alice.scroll_all(ns, filter=F.eq("i", 4))], [4])
        self.assertEqual([v.id for v in alice.scroll_all(ns, page_size=2)], sorted(ids))

    def test_scroll_returns_each_vector_present_throughout_exactly_once(self) -> None:
        alice = self.connect("alice")
        ns = self.space(alice)
        ids = alice.batch_store_vectors(ns, [[i, 1, 0] for i in range(6)])
        page = alice.scroll(ns, limit=2)
        seen = [v.id for v in page.vectors]
        # Writes between pages: new vectors, and a deleted one not yet seen.
        alice.batch_store_vectors(ns, [[9, 9, 9], [8, 8, 8]])
        alice.delete_vector(ids[5])
        while page.next is not None:
            page = alice.scroll(ns, after=page.next, limit=2)
            seen += [v.id for v in page.vectors]
        # Present for the whole scroll: exactly once. (The deleted one and
        # the new ones were not, so either way is right for them.)
        for i in ids[:5]:
            self.assertEqual(seen.count(i), 1, i)
        self.assertEqual(len(seen), len(set(seen)))

    # ---- namespaces ---------------------------------------------------

    def test_list_namespaces_shows_what_the_caller_may_read(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        ns = self.space(alice)
        alice.batch_store_vectors(ns, [[1, 1, 1], [2, 2, 2]])
        mine = {n.name: n for n in alice.list_namespaces()}
        self.assertIn(alice.namespace, mine)
        self.assertEqual((mine[ns].owner, mine[ns].visibility, mine[ns].geometry, mine[ns].vectors), (alice.model, "private", E3, 2))
        self.assertNotIn(ns, {n.name for n in bob.list_namespaces()})
        alice.grant_access(ns, bob.model, read=True)
        self.assertIn(ns, {n.name for n in bob.list_namespaces()})

    def test_delete_namespace_is_for_its_owner_and_never_a_home(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        ns = self.space(alice)
        alice.store_vector(ns, [1, 1, 1])
        with self.assertRaises(HvsError) as cm:
            bob.delete_namespace(ns)
        self.assertEqual(cm.exception.code, "permission_denied")
        with self.assertRaises(HvsError):
            alice.delete_namespace(alice.namespace)
        self.assertTrue(alice.delete_namespace(ns))
        self.assertFalse(alice.delete_namespace(ns))
        self.assertNotIn(ns, {n.name for n in alice.list_namespaces()})
        with self.assertRaises(HvsError) as gone:
            alice.count(ns)
        self.assertEqual(gone.exception.code, "unknown_namespace")
        self.assertGreater(alice.ping(), 0)

    # ---- shared spaces and blocks -------------------------------------

    def test_query_shared_returns_points_on_request(self) -> None:
        alice = self.connect("alice")
        space = f"chat-py-team-{next(_ids)}"
        alice.create_namespace(space, hvs_client.geometry("hyperboloid", 2), visibility="shared")
        alice.join(space)
        alice.contribute(space, "k", h2(0.3, 1.0), "v")
        hit = alice.query_shared(space, h2(0.3, 1.0), k=1, with_vector=True)[0]
        self.assertEqual((hit.key, hit.value), ("k", "v"))
        self.assertVector(hit.vector, h2(0.3, 1.0))
        self.assertIsNone(alice.query_shared(space, h2(0.3, 1.0), k=1)[0].vector)

    def test_blocks_have_owners_and_access_lists(self) -> None:
        alice, bob = self.connect("alice"), self.connect("bob")
        n = next(_ids)
        open_block = alice.store_block(f"py-open-{n}", text="anyone may read this")
        self.assertEqual((open_block.owner, open_block.read, open_block.write), (alice.model, ["*"], []))
        with self.assertRaises(HvsError) as cm:
            bob.update_block(open_block.name, text="bob was here")
        self.assertEqual(cm.exception.code, "permission_denied")
        with self.assertRaises(HvsError) as cm:
            bob.delete_block(open_block.name)
        self.assertEqual(cm.exception.code, "permission_denied")

        shared = alice.store_block(f"py-shared-{n}", json={"k": 1}, write=[bob.model])
        up = bob.update_block(shared.name, json={"k": 2})
        self.assertEqual((up.version, up.json), (2, {"k": 2}))
        with self.assertRaises(HvsError) as cm:
            bob.update_block(shared.name, read=[bob.model])  # lists: owner only
        self.assertEqual(cm.exception.code, "permission_denied")
        private = alice.update_block(shared.name, read=[], write=[])
        self.assertEqual((private.read, private.write, private.version), ([], [], 2))
        try:  # unreadable now: not found, or refused
            self.assertIsNone(bob.get_block(shared.name))
        except HvsError as e:
            self.assertEqual(e.code, "permission_denied")

        frozen = alice.store_block(f"py-frozen-{n}", text="fixed", readonly=True)
        self.assertTrue(frozen.readonly)
        with self.assertRaises(HvsError) as cm:
            alice.update_block(frozen.name, text="changed")
        self.assertEqual(cm.exception.code, "read_only_block")

        self.assertFalse(alice.delete_block(f"py-absent-{n}"))
        cache = alice.store_block(f"py-cache-{n}", text="soon gone", persist=False)
        listed = {b.name for b in bob.list_blocks()}
        self.assertIn(open_block.name, listed)
        self.assertNotIn(shared.name, listed)
        by_class = {b.name for b in alice.list_blocks(cache.block_class)}
        self.assertIn(cache.name, by_class)
        self.assertNotIn(open_block.name, by_class)


class AsyncVectorApiTest(unittest.TestCase):
    """The same operations through the AsyncClient."""

    def test_the_async_client_covers_the_vector_api(self) -> None:
        path = str(contract(shared_server(), "async"))
        address = shared_server().address

        async def main() -> None:
            async with await hvs_client.connect_async(path, address=address, timeout=REQUEST_TIMEOUT) as c:
                ns = f"chat-py-team-{next(_ids)}"
                await c.create_namespace(ns, E3)
                ids = await c.batch_store_vectors(ns, [[0, 0, 0], [1, 0, 0], [0, 2, 0]], metadata=[{"i": i} for i in range(3)])
                v = await c.retrieve_vector(ids[1])
                assert v is not None and floats(v.vector) == [1.0, 0.0, 0.0]
                up = await c.update_vector(ids[1], metadata={"i": 10}, if_version=1)
                assert up.version == 2
                try:
                    await c.update_vector(ids[1], metadata={"i": 11}, if_version=1)
                    raise AssertionError("no version_conflict")
                except VersionConflict as e:
                    assert e.current_version == 2
                hits = await c.search(ns, [0, 0, 0], k=2, exact=True, with_vector=True)
                assert [h.id for h in hits] == ids[:2] and hits[1].metadata == {"i": 10}
                assert [h.id for h in await c.range_search(ns, [0, 0, 0], 1.5)] == ids[:2]
                assert [[h.id for h in r] for r in await c.batch_search([{"namespace": ns, "vector": [0, 2, 0], "k": 1, "exact": True}])] == [[ids[2]]]
                self.assertEqual(await c.count(ns, F.range_("i", min=2)), 2)  # i=2 and the updated i=10
                seen = [x.id async for x in c.scroll_all(ns, page_size=2)]
                assert seen == sorted(ids), seen
                assert (await c.retrieve_vectors([ids[0], MISSING])).missing == [MISSING]
                assert (await c.delete_vectors([ids[0], MISSING])).deleted == [ids[0]]
                assert await c.delete_vector(ids[1]) is True
                assert await c.delete_by_filter(ns, F.eq("i", 2)) == 1
                assert ns in {n.name for n in await c.list_namespaces()}
                assert await c.delete_namespace(ns) is True

        asyncio.run(main())


if __name__ == "__main__":
    unittest.main(verbosity=2)
