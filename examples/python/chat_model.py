"""One model of the chat demo (`cargo run --release --example chat`), in
Python: the same part as `examples/chat.rs --as MODEL`, through the
`hvs_client` package.

    PYTHONPATH=examples/python python3 examples/python/chat_model.py \\
        --as chat-scout --server 127.0.0.1:7411 \\
        --contract examples/contracts/chat_scout.json --script script.json

The script (written by the orchestrator) names the models, the shared room,
who creates it, who searches and who asks for the consensus, and the lines
of the conversation. The model connects, opens its namespace to the others
for reading, joins the room (the creator makes it first, with its own
namespace's geometry), waits until everyone is in, then goes through the
lines: its own it sends to the others (a `broadcast` line to the room's
members), each other line it waits for, receives and acks. Afterwards it
contributes the point of its proposal to the room, and searches or asks for
the consensus when the script says so. It reports each step as a JSON line
on stdout; every wait has the script's deadline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Dict, List

import hvs_client
from hvs_client import HvsError, filters

POLL = 0.02


def emit(**event: Any) -> None:
    print(json.dumps(event), flush=True)


def line_of(message: hvs_client.Message) -> Any:
    n = message.metadata.get("line")
    return n if isinstance(n, int) else None


class Failed(Exception):
    pass


def run(me: str, server: str, contract: str, script: Dict[str, Any]) -> None:
    step = float(script["step_timeout_s"])
    room = script["room"]
    models: List[str] = script["models"]
    lines: List[Dict[str, Any]] = script["lines"]
    others = [m for m in models if m != me]

    # Lists, not numpy arrays: every vector here goes out as JSON.
    with hvs_client.connect(contract, address=server, timeout=30.0, numpy=False) as c:
        if c.model != me:
            raise Failed(f"the contract is for {c.model!r}, not {me!r}")
        own = c.namespace_info(c.namespace)
        if me == script["creator"]:
            c.create_namespace(room, own.geometry, visibility="shared")
        # Model namespaces are private: let the others search what we say.
        for other in others:
            c.grant_access(c.namespace, other, read=True)
        deadline = time.monotonic() + step
        while True:
            try:
                c.join(room, ["chat"])
                break
            except HvsError as e:  # the creator may not have made it yet
                if e.code != "unknown_namespace" or time.monotonic() > deadline:
                    raise
                time.sleep(POLL)
        while True:  # nobody speaks before everyone is in the room
            info = c.namespace_info(room)
            if all(m in info.members for m in models):
                break
            if time.monotonic() > deadline:
                raise Failed(f"only {sorted(info.members)} joined {room} within {step} s")
            time.sleep(POLL)
        if info.geometry != own.geometry:
            raise Failed(f"{room} has the geometry {info.geometry}, this model {own.geometry}")
        emit(event="ready", model=me, lang="python", server=c.welcome.server,
             namespace=c.namespace, geometry=own.geometry, room_owner=info.owner,
             room_visibility=info.visibility)

        sent = received = acked = duplicates = unexpected = 0
        waiting: Dict[int, hvs_client.Delivery] = {}
        seen = set()
        mine: Dict[int, str] = {}
        for n, line in enumerate(lines, start=1):
            if line["speaker"] == me:
                # No vector: the server's text encoder reads the payload.
                metadata = {"line": n, "kind": line["kind"]}
                if line["kind"] == "broadcast":
                    r = c.broadcast(line["text"], namespace=room, metadata=metadata)
                    sent += 1
                    emit(event="said", model=me, line=n, ids=[r.id], to=r.recipients,
                         refused=[list(x) for x in r.refused], broadcast=True)
                    mine[n] = r.id
                else:
                    ids = c.send_batch(
                        [{"to": o, "payload": line["text"], "metadata": metadata} for o in others]
                    )
                    sent += len(ids)
                    emit(event="said", model=me, line=n, ids=ids, to=others, broadcast=False)
                    mine[n] = ids[0]
                continue
            deadline = time.monotonic() + step
            while n not in waiting:
                got = c.receive(max=100)
                if not got:
                    if time.monotonic() > deadline:
                        raise Failed(f"waited {step} s for line {n} from {line['speaker']}")
                    time.sleep(POLL)
                    continue
                acked += len(c.ack(got).acked)
                for d in got:
                    if d.id in seen:
                        duplicates += 1
                        continue
                    seen.add(d.id)
                    received += 1
                    k = line_of(d)
                    if k is None:
                        unexpected += 1
                    else:
                        waiting[k] = d
            d = waiting.pop(n)
            if d.sender != line["speaker"] or d.text != line["text"]:
                raise Failed(f"line {n} came from {d.sender} as {d.text!r}, "
                             f"expected {line['speaker']} with {line['text']!r}")
            emit(event="heard", model=me, line=n, id=d.id, attempt=d.attempt, **{"from": d.sender})
        if waiting:
            raise Failed(f"lines {sorted(waiting)} came more than once")

        # The belief: the point of this model's proposal, as the server encoded it.
        for n, line in enumerate(lines, start=1):
            if line["speaker"] == me and line["kind"] == "proposal":
                point = c.get_message(mine[n]).vector
                cid = c.contribute(room, "belief", point, {"line": n, "text": line["text"]})
                emit(event="belief", model=me, line=n, id=cid)
                break

        if me == script["searcher"]:
            search(c, me, script, mine)
        if me == script["consensus"]:
            consensus(c, me, script, step)

        emit(event="done", model=me, sent=sent, received=received, acked=acked,
             duplicates=duplicates, unexpected=unexpected)


def search(c: hvs_client.Client, me: str, script: Dict[str, Any], mine: Dict[int, str]) -> None:
    """The lines nearest in meaning to this model's question, from the three
    namespaces where the server indexed each message's vector; a line sent
    to two models (two messages, one vector) is kept once."""
    query = [(n, l) for n, l in enumerate(script["lines"], start=1)
             if l["speaker"] == me and l["kind"] == "query"]
    if not query:
        raise Failed("the searcher has no query line")
    q, qline = query[0]
    vector = c.get_message(mine[q]).vector
    k = int(script["search_k"])
    best: Dict[int, Any] = {}
    for namespace in script["models"]:
        for hit in c.search(namespace, vector, k=2 * k + 2, filter=filters.eq("hvs_kind", "message")):
            m = c.get_message(hit.id)
            n = line_of(m)
            if n is None or n == q or (n in best and best[n][0] <= hit.distance):
                continue
            best[n] = (hit.distance, m)
    hits = sorted(best.items(), key=lambda kv: kv[1][0])[:k]
    emit(event="search", model=me, query_line=q, query=qline["text"], namespaces=script["models"],
         hits=[{"line": n, "from": m.sender, "id": m.id, "distance": d, "text": m.text}
               for n, (d, m) in hits])


def consensus(c: hvs_client.Client, me: str, script: Dict[str, Any], step: float) -> None:
    """Waits for every model's belief, then the room's consensus (the
    Fréchet mean) and the beliefs nearest to it."""
    room, want = script["room"], len(script["models"])
    deadline = time.monotonic() + step
    while True:
        try:
            r = c.consensus(room)
            if r.contributors >= want:
                break
            last = f"{r.contributors} of {want} beliefs"
        except HvsError as e:
            last = str(e)
        if time.monotonic() > deadline:
            raise Failed(f"no consensus within {step} s: {last}")
        time.sleep(POLL)
    nearest = c.query_shared(room, r.mean, k=want)
    emit(event="consensus", model=me, mean=r.mean, contributions=r.contributions,
         contributors=r.contributors, iterations=r.iterations, converged=r.converged,
         gradient_norm=r.gradient_norm,
         nearest=[{"contributor": h.contributor, "value": h.value, "distance": h.distance}
                  for h in nearest])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--as", dest="me", required=True, help="the model to play")
    ap.add_argument("--server", required=True, help="host:port of hvs serve")
    ap.add_argument("--contract", required=True, help="the model's contract file")
    ap.add_argument("--script", required=True, help="the script the orchestrator wrote")
    a = ap.parse_args()
    with open(a.script, encoding="utf-8") as f:
        script = json.load(f)
    try:
        run(a.me, a.server, a.contract, script)
    except Exception as e:  # reported, and the exit code fails the run
        print(f"[{a.me}] failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
