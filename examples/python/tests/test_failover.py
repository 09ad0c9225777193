"""Following a failover group's primary (README, "Following a failover
group"), against a real nats-server and three `hvs serve` in one group
(`--group g --lease-ttl-ms 1000 --durability replicated`):

- a client given a mirror's address and the group's list connects to the
  primary, and a mirror's `not_primary` refusal names the primary;
- a server that does not greet within 5 s is passed over;
- clients (blocking and asyncio) given every address keep writing while
  the primary is SIGKILLed: their next writes succeed on the new primary,
  and every vector they were told was stored is there (scroll).

The module starts one group; the kill test leaves it with two members."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import unittest
from pathlib import Path
from typing import List, Optional, Set

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from support import (  # noqa: E402
    REQUEST_TIMEOUT,
    NatsProcess,
    ServerProcess,
    contract,
    eventually,
    group_primary,
    point,
    start_group,
)

import hvs_client  # noqa: E402
from hvs_client import HvsError  # noqa: E402

# How long a client keeps looking for the primary: far more than a failover
# at a 1 s lease takes, so a slow machine does not fail the test.
FAILOVER_TIMEOUT = 60.0

_nats: Optional[NatsProcess] = None
_members: List[ServerProcess] = []


def setUpModule() -> None:
    global _nats, _members
    _nats = NatsProcess()
    _members = start_group(_nats)


def tearDownModule() -> None:
    for m in _members:
        m.stop()
        m.cleanup()
    if _nats is not None:
        _nats.stop()


class FailoverTest(unittest.TestCase):
    def addresses(self) -> List[str]:
        return [m.address for m in _members]

    def follower(self, path: str, address: str) -> hvs_client.Client:
        c = hvs_client.connect(
            path,
            address=address,
            servers=self.addresses(),
            timeout=REQUEST_TIMEOUT,
            failover_timeout=FAILOVER_TIMEOUT,
        )
        self.addCleanup(c.close)
        return c

    def test_a_client_given_a_mirror_connects_to_the_primary(self) -> None:
        primary = group_primary(_members)
        mirror = next(m for m in _members if m is not primary and m.proc.poll() is None)
        path = str(contract(_members[0], "hinted"))

        # Alone, the mirror refuses the hello and names the primary.
        with self.assertRaises(HvsError) as cm:
            hvs_client.connect(path, address=mirror.address, timeout=REQUEST_TIMEOUT)
        self.assertEqual((cm.exception.code, cm.exception.primary), ("not_primary", primary.address))
        self.assertNotIn("primary", cm.exception.details)

        c = self.follower(path, mirror.address)
        self.assertEqual(c.address, primary.address)
        self.assertGreater(c.ping(), 0)

        async_path = str(contract(_members[0], "hinted-async"))

        async def through_asyncio() -> str:
            async with await hvs_client.connect_async(
                async_path, address=mirror.address, servers=self.addresses(), timeout=REQUEST_TIMEOUT
            ) as a:
                await a.ping()
                return a.address

        self.assertEqual(asyncio.run(through_asyncio()), primary.address)

    def test_a_server_that_does_not_greet_is_passed_over(self) -> None:
        primary = group_primary(_members)
        # Accepts connections (the kernel does) and never answers a hello.
        silent = socket.socket()
        self.addCleanup(silent.close)
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        c = hvs_client.connect(
            str(contract(_members[0], "patient")),
            address=address,
            servers=[address, *self.addresses()],
            timeout=REQUEST_TIMEOUT,
            failover_timeout=FAILOVER_TIMEOUT,
        )
        self.addCleanup(c.close)
        self.assertEqual(c.address, primary.address)

    def test_writes_go_on_after_the_primary_is_killed_and_none_acknowledged_is_lost(self) -> None:
        old = group_primary(_members)
        blocking_path = str(contract(_members[0], "writer"))
        blocking = self.follower(blocking_path, _members[0].address)
        async_path = str(contract(_members[0], "async-writer"))
        acked: dict = {blocking.namespace: set()}
        after_kill = {"blocking": 0, "async": 0}
        killed = threading.Event()
        stop = threading.Event()
        failures: List[BaseException] = []
        lock = threading.Lock()

        def note(namespace: str, vid: str, who: str) -> None:
            with lock:
                acked.setdefault(namespace, set()).add(vid)
                if killed.is_set():
                    after_kill[who] += 1

        def write_blocking() -> None:
            k = 0
            try:
                while not stop.is_set():
                    k += 1
                    v = blocking.store_vector(blocking.namespace, point(k), metadata={"k": k})
                    note(blocking.namespace, v.id, "blocking")
            except BaseException as e:  # reported by the test's thread
                failures.append(e)

        async def write_async() -> None:
            async with await hvs_client.connect_async(
                async_path,
                address=_members[1].address,
                servers=self.addresses(),
                timeout=REQUEST_TIMEOUT,
                failover_timeout=FAILOVER_TIMEOUT,
            ) as a:
                k = 0
                while not stop.is_set():
                    k += 1
                    v = await a.store_vector(a.namespace, point(1000 + k), metadata={"k": k})
                    note(a.namespace, v.id, "async")

        def run_async() -> None:
            try:
                asyncio.run(write_async())
            except BaseException as e:
                failures.append(e)

        writers = [threading.Thread(target=write_blocking), threading.Thread(target=run_async)]
        for w in writers:
            w.start()
        try:
            # Some writes acknowledged by the first primary, from both.
            self.assertTrue(eventually(lambda: len(acked) == 2 and all(len(s) >= 5 for s in acked.values())))
            killed.set()
            old.kill()
            # Both clients' next writes are answered by the new primary.
            self.assertTrue(
                eventually(lambda: failures or min(after_kill.values()) >= 5, FAILOVER_TIMEOUT),
                f"writes after the kill: {after_kill}",
            )
        finally:
            stop.set()
            for w in writers:
                w.join(FAILOVER_TIMEOUT + REQUEST_TIMEOUT)
        self.assertEqual(failures, [])
        new = group_primary(_members)
        self.assertIsNot(new, old)
        self.assertEqual(blocking.address, new.address)
        self.assertGreaterEqual(blocking.reconnects, 1)

        # Every vector acknowledged, before or after the kill, is on the new
        # primary; each writer's namespace read as its model, on it alone.
        for path in (blocking_path, async_path):
            with hvs_client.connect(path, address=new.address, timeout=REQUEST_TIMEOUT) as reader:
                held: Set[str] = {v.id for v in reader.scroll_all(reader.namespace, page_size=1000)}
                self.assertEqual(acked[reader.namespace] - held, set(), f"acknowledged vectors of {reader.model} lost")

if __name__ == "__main__":
    unittest.main(verbosity=2)
