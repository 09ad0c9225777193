"""Bridges through both clients (docs/PROTOCOL.md, "Bridges";
docs/BRIDGES.md), against a real `hvs serve` without a cluster: a
cross-manifold bridge from a Poincaré disc to a hyperboloid carries the
disc's vectors and answers a query in the disc's coordinates with the
exact nearest there; it is listed, then deleted (`unknown_bridge` after);
a federated or slow bridge raises `no_cluster`; a spec the server cannot read
raises `bad_request`. Federated and slow bridges are tested with a
cluster in tests/bridge_cluster.rs and tests/bridge_slow.rs."""

from __future__ import annotations

import asyncio
import math
import random
import sys
import unittest
from pathlib import Path
from typing import List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from support import REQUEST_TIMEOUT, contract, eventually, setUpModule, shared_server, tearDownModule  # noqa: E402,F401

import hvs_client  # noqa: E402
from hvs_client import HvsError  # noqa: E402


def disc_distance(x: List[float], y: List[float]) -> float:
    """Distance on the Poincaré disc of curvature -1."""
    d2 = sum((a - b) ** 2 for a, b in zip(x, y))
    nx, ny = sum(a * a for a in x), sum(b * b for b in y)
    return math.acosh(1.0 + 2.0 * d2 / ((1.0 - nx) * (1.0 - ny)))


def disc_point(r: random.Random) -> List[float]:
    while True:
        p = [r.uniform(-0.9, 0.9), r.uniform(-0.9, 0.9)]
        if p[0] ** 2 + p[1] ** 2 < 0.81:
            return p


class BridgeTest(unittest.TestCase):
    def setUp(self) -> None:
        server = shared_server()
        self.client = hvs_client.connect(
            str(contract(server, "bridger")), address=server.address, timeout=REQUEST_TIMEOUT
        )

    def tearDown(self) -> None:
        self.client.close()

    def test_a_cross_manifold_bridge_carries_vectors_and_answers_in_the_source_coordinates(self) -> None:
        c = self.client
        suffix = c.model.rsplit("-", 1)[-1]
        disc, hyper = f"chat-py-team-disc-{suffix}", f"chat-py-team-hyper-{suffix}"
        c.create_namespace(disc, hvs_client.geometry("poincare", 2))
        c.create_namespace(hyper, hvs_client.geometry("hyperboloid", 2))
        r = random.Random(5)
        points = [disc_point(r) for _ in range(20)]
        ids = c.batch_store_vectors(disc, points)
        name = f"py-b2h-{suffix}"

        status = c.bridge_cross_manifold(name, disc, hyper)
        self.assertEqual(status["spec"]["kind"], {"type": "cross_manifold", "from": disc, "to": hyper})
        done = eventually(lambda: c.bridge_status(name)["carried"] == 20)
        self.assertTrue(done, c.bridge_status(name))
        self.assertEqual(c.count(hyper), 20)

        q = disc_point(r)
        answer = c.bridge_search(name, q, k=5)
        want = sorted(zip(ids, points), key=lambda ip: disc_distance(q, ip[1]))[:5]
        self.assertEqual([h["metadata"]["hvs.source"] for h in answer["hits"]], [i for i, _ in want])
        for hit, (_, p) in zip(answer["hits"], want):
            self.assertAlmostEqual(hit["distance"], disc_distance(q, p), places=9)
            self.assertEqual(hit["namespace"], hyper)
        self.assertEqual(answer["missing"], [])

        self.assertIn(name, [b["spec"]["name"] for b in c.bridge_list()])
        self.assertEqual(c.bridge_delete(name)["spec"]["name"], name)
        with self.assertRaises(HvsError) as e:
            c.bridge_status(name)
        self.assertEqual(e.exception.code, "unknown_bridge")

    def test_refusals_carry_their_codes(self) -> None:
        with self.assertRaises(HvsError) as e:
            self.client.bridge_federated("f", "docs", "search")
        self.assertEqual(e.exception.code, "no_cluster")
        with self.assertRaises(HvsError) as e:
            self.client.bridge_slow("s", "elsewhere", "docs", 1000, target="copy", chunk_vectors=10)
        self.assertEqual(e.exception.code, "no_cluster")
        with self.assertRaises(HvsError) as e:
            self.client.bridge_create({"name": "x", "kind": {"type": "wormhole"}})
        self.assertEqual(e.exception.code, "bad_request")
        with self.assertRaises(HvsError) as e:
            self.client.bridge_shared("s", ["only-one"], "strict")
        self.assertEqual(e.exception.code, "bad_request")
        # The connection goes on.
        self.assertGreater(self.client.ping(), 0)


class AsyncBridgeTest(unittest.TestCase):
    def test_the_async_client_lists_and_refuses(self) -> None:
        path = str(contract(shared_server(), "async-bridger"))
        address = shared_server().address

        async def main() -> None:
            async with await hvs_client.connect_async(path, address=address, timeout=REQUEST_TIMEOUT) as c:
                self.assertIsInstance(await c.bridge_list(), list)
                with self.assertRaises(HvsError) as e:
                    await c.bridge_status("nope")
                self.assertEqual(e.exception.code, "unknown_bridge")
                with self.assertRaises(HvsError) as e:
                    await c.bridge_search("nope", [0.0, 0.0])
                self.assertEqual(e.exception.code, "unknown_bridge")
                with self.assertRaises(HvsError) as e:
                    await c.bridge_slow("s", "elsewhere", "docs", 1000)
                self.assertEqual(e.exception.code, "no_cluster")

        asyncio.run(main())


if __name__ == "__main__":
    unittest.main()
