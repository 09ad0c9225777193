"""A search's ``ef`` and a namespace's ``datatype`` and ``graph`` through both clients,
against a real `hvs serve` (docs/PROTOCOL.md, ``search`` and
``create_namespace``)."""

from __future__ import annotations

import asyncio
import random
import sys
import unittest
from pathlib import Path
from typing import List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from support import REQUEST_TIMEOUT, _ids, contract, setUpModule, shared_server, tearDownModule  # noqa: E402,F401

import hvs_client  # noqa: E402
from hvs_client import HvsError  # noqa: E402

E3 = {"kind": "euclidean", "dim": 3}
S2 = {"kind": "sphere", "dim": 2, "curvature": 1.0}


def team() -> str:
    return f"chat-py-team-{next(_ids)}"


def points(n: int) -> List[List[float]]:
    rng = random.Random(15)
    return [[rng.uniform(-1.0, 1.0) for _ in range(3)] for _ in range(n)]


class IndexOptionsTest(unittest.TestCase):
    def setUp(self) -> None:
        server = shared_server()
        self.me = hvs_client.connect(str(contract(server, "ef")), address=server.address, timeout=REQUEST_TIMEOUT)

    def tearDown(self) -> None:
        self.me.close()

    def test_ef_is_sent_and_bounded(self) -> None:
        name = team()
        self.me.create_namespace(name, E3)
        self.me.batch_store_vectors(name, points(40))
        q = [0.1, -0.2, 0.3]
        exact = [h.id for h in self.me.search(name, q, k=5, exact=True)]
        for ef in (1, 5, 64, 10_000):
            self.assertEqual([h.id for h in self.me.search(name, q, k=5, ef=ef)], exact, ef)
        batch = self.me.batch_search([{"namespace": name, "vector": q, "k": 5, "ef": 32}])
        self.assertEqual([h.id for h in batch[0]], exact)
        for ef in (0, 10_001):
            with self.assertRaises(HvsError) as e:
                self.me.search(name, q, k=5, ef=ef)
            self.assertEqual(e.exception.code, "invalid_query", ef)
        with self.assertRaises(HvsError) as e:
            self.me.batch_search([{"namespace": name, "vector": q, "ef": 0}])
        self.assertEqual(e.exception.code, "invalid_query")

    def test_a_namespace_keeps_its_datatype(self) -> None:
        half = team()
        made = self.me.create_namespace(half, E3, datatype="f16")
        self.assertEqual(made.datatype, "f16")
        self.assertEqual(self.me.namespace_info(half).datatype, "f16")
        listed = {n.name: n.datatype for n in self.me.list_namespaces()}
        self.assertEqual(listed[half], "f16")
        plain = team()
        self.assertEqual(self.me.create_namespace(plain, E3).datatype, "f32")
        self.assertEqual(self.me.create_namespace(team(), S2, datatype="i8").datatype, "i8")
        for datatype, code in (("i8", "invalid_datatype"), ("f8", "bad_request")):
            with self.assertRaises(HvsError) as e:
                self.me.create_namespace(team(), E3, datatype=datatype)
            self.assertEqual(e.exception.code, code, datatype)

    def test_a_namespace_keeps_its_graph_settings(self) -> None:
        path = contract(shared_server(), "graph", resource_limits={"max_vectors_per_second": 1000})
        me = hvs_client.connect(str(path), address=shared_server().address, timeout=REQUEST_TIMEOUT)
        try:
            name = team()
            made = me.create_namespace(name, E3, graph={"m": 8, "ef_construction": 32})
            self.assertEqual(made.graph, {"m": 8, "ef_construction": 32})
            self.assertEqual(me.namespace_info(name).graph, {"m": 8, "ef_construction": 32})
            # Past the 256 vectors at which it gets its graph: answers as exact.
            me.batch_store_vectors(name, points(300))
            exact = [h.id for h in me.search(name, [0, 0, 0], k=5, exact=True)]
            self.assertEqual([h.id for h in me.search(name, [0, 0, 0], k=5, ef=1000)], exact)
            self.assertIsNone(me.create_namespace(team(), E3).graph)
            for graph, code in (({"m": 2}, "invalid_graph"), ({"M": 8}, "bad_request")):
                with self.assertRaises(HvsError) as e:
                    me.create_namespace(team(), E3, graph=graph)
                self.assertEqual(e.exception.code, code, graph)
        finally:
            me.close()

    def test_the_async_client_sends_both(self) -> None:
        path = str(contract(shared_server(), "ef-aio"))

        async def main() -> None:
            c = await hvs_client.connect_async(path, address=shared_server().address, timeout=REQUEST_TIMEOUT)
            try:
                name = team()
                made = await c.create_namespace(name, E3, datatype="f16")
                self.assertEqual(made.datatype, "f16")
                await c.batch_store_vectors(name, points(10))
                exact = [h.id for h in await c.search(name, [0, 0, 0], k=3, exact=True)]
                self.assertEqual([h.id for h in await c.search(name, [0, 0, 0], k=3, ef=3)], exact)
                with self.assertRaises(HvsError) as e:
                    await c.search(name, [0, 0, 0], k=3, ef=0)
                self.assertEqual(e.exception.code, "invalid_query")
            finally:
                await c.close()

        asyncio.run(main())


if __name__ == "__main__":
    unittest.main()
