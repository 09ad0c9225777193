"""What the tests share: a real `hvs serve` on free loopback ports with a
temporary data directory (restartable on the same port and data), contract
files for new models, points of the test geometries, and polling with a
deadline; for failover tests, a real `nats-server` with JetStream and
`hvs serve` processes in one failover group.

The server binary is $HVS_BIN if set, else the newer of target/release/hvs
and target/debug/hvs under the repository root.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TypeVar

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

if os.environ.get("HVS_PY_WITHOUT_NUMPY"):
    # The path of a user without numpy: `import numpy` raises ImportError.
    sys.modules["numpy"] = None  # type: ignore[assignment]

try:
    import hvs_client  # noqa: F401 (installed, or else the source tree)
except ImportError:  # run from the source tree without installing
    sys.path.insert(0, str(HERE.parent))
# Generous: the debug binary on a busy 2-core machine is slow.
REQUEST_TIMEOUT = 60.0
STARTUP_TIMEOUT = 120.0
BASE_CONTRACT = REPO / "examples" / "contracts" / "text_chat_model.json"
# text_chat_model.json binds its model to the sphere S^256: points have 257
# coordinates.
AMBIENT = 257


def find_binary() -> Path:
    env = os.environ.get("HVS_BIN")
    if env:
        for p in (Path(env), REPO / env):
            if p.is_file():
                return p.resolve()
        raise RuntimeError(f"HVS_BIN={env!r} is not a file (looked in {os.getcwd()} and {REPO})")
    found = [p for p in (REPO / "target" / "release" / "hvs", REPO / "target" / "debug" / "hvs") if p.is_file()]
    if not found:
        raise RuntimeError("no hvs binary: build it (cargo build --bin hvs) or set HVS_BIN")
    return max(found, key=lambda p: p.stat().st_mtime)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`hvs serve` on free loopback ports, its data in a temporary
    directory, its output in a log file there."""

    def __init__(self, serve_args: Sequence[str] = ("--durability", "buffered")) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="hvs-py-test-")
        self.path = Path(self.dir.name)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.admin = f"127.0.0.1:{free_port()}"
        self.log_path = self.path / "server.log"
        # HVS_* variables would configure the server (tokens, limits, a
        # config file): the test sets everything with flags.
        env = {k: v for k, v in os.environ.items() if not k.startswith("HVS_")}
        args = [
            str(find_binary()),
            "serve",
            "--listen",
            self.address,
            "--admin",
            self.admin,
            "--data",
            str(self.path / "data"),
            *serve_args,
        ]
        self._args, self._env = args, env
        self._log = open(self.log_path, "ab")
        self.proc = self._start()

    def _start(self) -> "subprocess.Popen[bytes]":
        # cwd: the temporary directory, so no stray hvs.toml is read.
        proc = subprocess.Popen(self._args, cwd=self.path, env=self._env, stdout=self._log, stderr=subprocess.STDOUT)
        self.proc = proc
        self._wait_ready()
        return proc

    def restart(self, kill: bool = False) -> None:
        """Stops the server (SIGKILL when `kill`, else SIGTERM) and starts
        it again on the same port and data."""
        if kill:
            self.proc.kill()
            self.proc.wait()
        else:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(STARTUP_TIMEOUT)
        if self._log.closed:
            self._log = open(self.log_path, "ab")
        self._start()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError(f"the server did not listen within {STARTUP_TIMEOUT} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, and waits for it to be gone."""
        self.proc.kill()
        self.proc.wait()

    def health(self) -> Optional[Dict[str, Any]]:
        """`GET /health` of the admin port, or None if it does not answer."""
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://{self.admin}/health", timeout=2) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def role(self) -> Optional[str]:
        """Its role in its failover group (`primary`, `mirror`, `joining`,
        `promoting`), from `/health`; None if it does not answer."""
        h = self.health() if self.proc.poll() is None else None
        try:
            return h["cluster"]["group"]["role"]["role"]  # type: ignore[index]
        except (KeyError, TypeError):
            return None

    def stop(self) -> int:
        """SIGTERM, then the exit code (killed after two minutes)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STARTUP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def cleanup(self) -> None:
        self.dir.cleanup()


_ids = itertools.count(1)


def contract(server: ServerProcess, role: str, **changes: Any) -> Path:
    """A contract file for a new model, made from text_chat_model.json
    with its model id, namespace and write_namespaces changed: the id is
    `chat-py-<role>-<n>`, so the base contract's `chat-*` read permission
    covers every test model's namespace, and each model may write its own
    namespace and `chat-py-team-*` (the shared spaces). `changes` replace
    further top-level sections' keys: `permissions={"broadcast": True}`."""
    c = json.loads(BASE_CONTRACT.read_text())
    model_id = f"chat-py-{role}-{next(_ids)}"
    c["model"]["id"] = model_id
    c["hvs_binding"]["namespace"] = model_id
    c["permissions"]["write_namespaces"] = [model_id, "chat-py-team-*"]
    for section, values in changes.items():
        if values is None:
            c.pop(section, None)
        else:
            c.setdefault(section, {}).update(values)
    path = server.path / f"{model_id}.json"
    path.write_text(json.dumps(c, indent=2))
    return path


def point(seed: int) -> List[float]:
    """A point of S^256 (unit vector in R^257), fixed by `seed`."""
    import random

    r = random.Random(seed)
    v = [r.gauss(0.0, 1.0) for _ in range(AMBIENT)]
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def h2(r: float, a: float) -> List[float]:
    """A point of the hyperboloid H^2 at distance r from the origin, angle a."""
    return [math.cosh(r), math.sinh(r) * math.cos(a), math.sinh(r) * math.sin(a)]


T = TypeVar("T")


def eventually(f: Callable[[], T], limit: float = REQUEST_TIMEOUT, every: float = 0.05) -> T:
    """Calls f until it returns something truthy; that, or the last value."""
    deadline = time.monotonic() + limit
    while True:
        v = f()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(every)


_shared: Optional[ServerProcess] = None


def setUpModule() -> None:
    """Starts the server the tests of a module share: a test module imports
    this and `tearDownModule` as its own."""
    global _shared
    _shared = ServerProcess()


def tearDownModule() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared.cleanup()
        _shared = None


def shared_server() -> ServerProcess:
    """The module's server (started by `setUpModule`)."""
    if _shared is None:
        raise RuntimeError("setUpModule has not started the shared server")
    return _shared


# ---- failover groups: nats-server and instances ---------------------------


def nats_binary() -> Path:
    """Debian's nats-server: on PATH or in /usr/sbin, installed by
    scripts/install-nats.sh when the machine lacks it (which fails without
    root or sudo)."""
    import shutil

    def find() -> Optional[Path]:
        for candidate in (shutil.which("nats-server"), "/usr/sbin/nats-server"):
            if candidate and os.access(candidate, os.X_OK):
                return Path(candidate)
        return None

    found = find()
    if found is None:
        subprocess.run(["sh", str(REPO / "scripts" / "install-nats.sh")], check=True)
        found = find()
    if found is None:
        raise RuntimeError("scripts/install-nats.sh ran, yet no nats-server is found")
    return found


class NatsProcess:
    """A nats-server with JetStream on a free loopback port, its store in a
    temporary directory."""

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="hvs-py-nats-")
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        path = Path(self.dir.name)
        self._log = open(path / "nats.log", "ab")
        args = [str(nats_binary()), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(path / "store")]
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nats-server did not listen within {STARTUP_TIMEOUT} s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        self.dir.cleanup()


def start_group(
    nats: NatsProcess, names: Sequence[str] = ("a", "b", "c"), durability: str = "replicated"
) -> List[ServerProcess]:
    """One `hvs serve` per name in failover group `g` on `nats` (lease of
    1 s), each with its own data, listen and admin ports."""
    extra = ["--group", "g", "--lease-ttl-ms", "1000", "--durability", durability, "--nats", nats.url]
    return [ServerProcess([*extra, "--instance", name]) for name in names]


def group_primary(members: Sequence[ServerProcess], limit: float = REQUEST_TIMEOUT) -> ServerProcess:
    """The member that says it is the primary, once exactly one running
    member does and every other running one is a mirror."""

    def settled() -> Optional[ServerProcess]:
        roles = [(m, m.role()) for m in members if m.proc.poll() is None]
        primaries = [m for m, r in roles if r == "primary"]
        if len(primaries) == 1 and all(r in ("primary", "mirror") for _, r in roles):
            return primaries[0]
        return None

    found = eventually(settled, limit)
    if found is None:
        raise AssertionError(f"no single primary within {limit} s: {[m.role() for m in members]}")
    return found
