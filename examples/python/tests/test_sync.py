"""Sync jobs and the change feed through both clients (docs/PROTOCOL.md,
"Sync jobs and the change feed"), against a real `hvs serve` without a
cluster: every operation reaches the server and raises `no_cluster`, and a
spec the server cannot read raises `bad_request` before that. Jobs
themselves are tested with a cluster in tests/sync_cluster.rs."""

from __future__ import annotations

import asyncio
import sys
import unittest
from pathlib import Path
from typing import Any, Callable, List, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from support import REQUEST_TIMEOUT, contract, setUpModule, shared_server, tearDownModule  # noqa: E402,F401

import hvs_client  # noqa: E402
from hvs_client import HvsError  # noqa: E402
from hvs_client import filters as F  # noqa: E402

# Each operation with arguments, as (method name, args, kwargs).
CALLS: List[Tuple[str, Tuple[Any, ...], dict]] = [
    ("sync_create", ({"name": "j", "source": "b", "mode": {"kind": "full"}},), {}),
    ("sync_full", ("j", "b"), {"strategy": "keep_target", "follow": False}),
    ("sync_partial", ("j", "b", ["x", "y"]), {"regions": ["r"]}),
    ("sync_selective", ("j", "b", F.eq("topic", "rust")), {"namespaces": ["x"]}),
    ("sync_list", (), {}),
    ("sync_status", ("j",), {}),
    ("sync_pause", ("j",), {}),
    ("sync_resume", ("j",), {}),
    ("sync_delete", ("j",), {}),
    ("sync_conflicts", ("j",), {"after": 3, "limit": 5}),
    ("cluster_status", (), {}),
]

# Specs the server cannot read: refused as bad_request even without a cluster.
BAD_SPECS: List[Callable[[Any], Any]] = [
    lambda c: c.sync_full("j", "b", strategy="loudest"),
    lambda c: c.sync_create({"name": "j", "source": "b", "mode": {"kind": "everything"}}),
    lambda c: c.sync_create({"name": "j", "mode": {"kind": "full"}}),
]


class SyncTest(unittest.TestCase):
    def setUp(self) -> None:
        server = shared_server()
        self.client = hvs_client.connect(
            str(contract(server, "operator")), address=server.address, timeout=REQUEST_TIMEOUT
        )

    def tearDown(self) -> None:
        self.client.close()

    def test_every_sync_operation_says_no_cluster(self) -> None:
        for name, args, kwargs in CALLS:
            with self.subTest(name):
                with self.assertRaises(HvsError) as e:
                    getattr(self.client, name)(*args, **kwargs)
                self.assertEqual(e.exception.code, "no_cluster", e.exception)
        # The connection goes on.
        self.assertGreater(self.client.ping(), 0)

    def test_a_spec_the_server_cannot_read_is_a_bad_request(self) -> None:
        for i, bad in enumerate(BAD_SPECS):
            with self.subTest(i):
                with self.assertRaises(HvsError) as e:
                    bad(self.client)
                self.assertEqual(e.exception.code, "bad_request", e.exception)


class AsyncSyncTest(unittest.TestCase):
    def test_the_async_client_says_no_cluster_and_bad_request(self) -> None:
        path = str(contract(shared_server(), "async-operator"))
        address = shared_server().address

        async def main() -> None:
            async with await hvs_client.connect_async(path, address=address, timeout=REQUEST_TIMEOUT) as c:
                for name, args, kwargs in CALLS:
                    with self.assertRaises(HvsError) as e:
                        await getattr(c, name)(*args, **kwargs)
                    self.assertEqual(e.exception.code, "no_cluster", name)
                for bad in BAD_SPECS:
                    with self.assertRaises(HvsError) as e:
                        await bad(c)
                    self.assertEqual(e.exception.code, "bad_request")

        asyncio.run(main())


if __name__ == "__main__":
    unittest.main()
