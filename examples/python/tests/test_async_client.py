"""The AsyncClient against a real `hvs serve`: the same operations as the
blocking client, awaited, with pipelining across tasks and pushes read by
`async for`."""

from __future__ import annotations

import asyncio
import sys
import unittest
from pathlib import Path
from typing import Any, Awaitable, Callable, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from support import AMBIENT, REQUEST_TIMEOUT, contract, point, setUpModule, shared_server, tearDownModule  # noqa: E402,F401

import hvs_client  # noqa: E402
from hvs_client import ConnectionLost, HvsError  # noqa: E402
from hvs_client import filters as F  # noqa: E402

class AsyncClientTest(unittest.TestCase):
    def run_with(self, roles: List[str], body: Callable[..., Awaitable[None]], **options: Any) -> None:
        """Connects one AsyncClient per role, runs `body(*clients)`, closes them."""
        paths = [str(contract(shared_server(), r)) for r in roles]
        address = shared_server().address

        async def main() -> None:
            clients = [
                await hvs_client.connect_async(p, address=address, timeout=REQUEST_TIMEOUT, **options) for p in paths
            ]
            try:
                await body(*clients)
            finally:
                for c in clients:
                    await c.close()

        asyncio.run(main())

    def test_send_receive_ack_and_search(self) -> None:
        async def body(alice: hvs_client.AsyncClient, bob: hvs_client.AsyncClient) -> None:
            self.assertEqual(alice.welcome.namespace, alice.model)
            v = point(3)
            mid = await alice.send(bob.model, b"\x00hi", vector=v, metadata={"n": 1})
            got = await bob.receive(10)
            self.assertEqual([(d.id, d.payload, d.sender, d.attempt) for d in got], [(mid, b"\x00hi", alice.model, 1)])
            self.assertEqual(len(got[0].vector), AMBIENT)
            self.assertEqual((await bob.ack(got)).acked, [mid])
            self.assertEqual(await bob.receive(), [])
            hits = await alice.search(alice.namespace, v, k=1, filter=F.eq("from", alice.model))
            self.assertEqual(hits[0].id, mid)
            msg = await alice.get_message(mid)
            assert msg is not None
            self.assertEqual(msg.metadata["n"], 1)

        self.run_with(["alice", "bob"], body)

    def test_tasks_pipeline_on_one_connection_and_pushes_arrive_in_order(self) -> None:
        async def body(alice: hvs_client.AsyncClient, bob: hvs_client.AsyncClient) -> None:
            await bob.subscribe()
            ids = await asyncio.gather(*(alice.send(bob.model, f"m{i}") for i in range(20)))
            self.assertEqual(len(set(ids)), 20)
            seen: List[str] = []
            async for d in bob.deliveries(timeout=REQUEST_TIMEOUT):
                seen.append(d.id)
                await bob.ack(d)
                if len(seen) == 20:
                    break
            self.assertEqual(sorted(seen), sorted(ids))
            self.assertIsNone(await bob.next_delivery(timeout=0.2))
            await bob.unsubscribe()
            pings = await asyncio.gather(*(alice.ping() for _ in range(50)))
            self.assertTrue(all(p > 0 for p in pings))

        self.run_with(["alice", "bob"], body)

    def test_errors_are_typed_and_the_connection_goes_on(self) -> None:
        async def body(alice: hvs_client.AsyncClient, bob: hvs_client.AsyncClient) -> None:
            with self.assertRaises(HvsError) as cm:
                await bob.store_vector(alice.namespace, point(1))
            self.assertEqual(cm.exception.code, "permission_denied")
            with self.assertRaises(HvsError) as cm:
                await bob.call("no_such_op")
            self.assertEqual(cm.exception.code, "unknown_op")
            self.assertIn("now_ms", await bob.call("ping"))
            stats = await bob.stats()
            self.assertTrue(stats.models[bob.model])

        self.run_with(["alice", "bob"], body)

    def test_vectors_are_lists_when_numpy_is_off(self) -> None:
        async def body(alice: hvs_client.AsyncClient) -> None:
            self.assertFalse(alice.uses_numpy)
            mid = await alice.send(alice.model, "to myself", vector=point(5))
            d = (await alice.receive())[0]
            self.assertEqual((d.id, type(d.vector)), (mid, list))
            await alice.ack(d)

        self.run_with(["alice"], body, numpy=False)

    def test_a_cancelled_call_leaves_the_client_usable(self) -> None:
        async def body(alice: hvs_client.AsyncClient) -> None:
            task = asyncio.ensure_future(alice.receive(1))
            await asyncio.sleep(0)  # let it send
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            results = await asyncio.gather(alice.ping(), alice.receive(1), alice.mailbox())
            self.assertGreater(results[0], 0)
            self.assertEqual(results[1], [])

        self.run_with(["alice"], body)

    def test_after_close_calls_are_refused(self) -> None:
        async def body(alice: hvs_client.AsyncClient) -> None:
            await alice.close()
            self.assertFalse(alice.connected)
            with self.assertRaises(ConnectionLost) as cm:
                await alice.ping()
            self.assertEqual(cm.exception.code, "closed")

        self.run_with(["alice"], body)


if __name__ == "__main__":
    unittest.main(verbosity=2)
