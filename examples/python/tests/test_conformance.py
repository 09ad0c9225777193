"""The wire conformance scenario (tests/conformance/scenario.json, format
in tests/conformance/README.md), run by the blocking Client and by the
AsyncClient against a real `hvs serve`."""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import unittest
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from support import REPO, REQUEST_TIMEOUT, setUpModule, shared_server, tearDownModule  # noqa: E402,F401

import hvs_client  # noqa: E402
from hvs_client import HvsError  # noqa: E402

SCENARIO = REPO / "tests" / "conformance" / "scenario.json"

_WHOLE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_INSIDE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ScenarioError(AssertionError):
    """A step did not get what it expected (or the scenario is malformed)."""


def substitute(value: Any, names: Dict[str, Any]) -> Any:
    """``"$name"`` becomes the bound value, ``${name}`` inside a string its
    text; map keys are left alone."""
    if isinstance(value, str):
        m = _WHOLE.match(value)
        if m:
            return _lookup(names, m.group(1))
        return _INSIDE.sub(lambda m: _text(_lookup(names, m.group(1))), value)
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, names) for k, v in value.items()}
    return value


def _lookup(names: Dict[str, Any], name: str) -> Any:
    if name not in names:
        raise ScenarioError(f"the name {name!r} is not bound")
    return names[name]


def _text(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ScenarioError(f"cannot interpolate {v!r} into a string")
    return str(v)


def follow(value: Any, path: str) -> Any:
    """The value at a dotted path (numbers index arrays; "" is the whole)."""
    for part in [p for p in path.split(".") if p] if path else []:
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise ScenarioError(f"no {path!r} in the answer {value!r}")
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_TYPES: Dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": _is_number,
    "bool": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "map": lambda v: isinstance(v, dict),
    "bin": lambda v: isinstance(v, (bytes, bytearray)),
}


def mismatch(pattern: Any, actual: Any, where: str = "") -> Optional[str]:
    """None when ``actual`` matches ``pattern``, else where and how not."""
    here = where or "the answer"
    if isinstance(pattern, dict) and len(pattern) == 1 and next(iter(pattern)).startswith("$"):
        (op, arg), = pattern.items()
        if op == "$type":
            ok = arg in _TYPES and _TYPES[arg](actual)
            return None if ok else f"{here}: expected a {arg}, got {actual!r}"
        if op == "$len":
            ok = isinstance(actual, (list, dict)) and len(actual) == arg
            return None if ok else f"{here}: expected {arg} elements, got {actual!r}"
        if op in ("$contains", "$none"):
            if not isinstance(actual, list):
                return f"{here}: expected an array, got {actual!r}"
            found = any(mismatch(arg, a) is None for a in actual)
            if found == (op == "$contains"):
                return None
            return f"{here}: expected {'an' if op == '$contains' else 'no'} element matching {arg!r}, got {actual!r}"
        if op == "$text":
            text = actual.decode("utf-8", "replace") if isinstance(actual, (bytes, bytearray)) else actual
            return None if text == arg else f"{here}: expected the text {arg!r}, got {actual!r}"
        raise ScenarioError(f"unknown matcher {op!r}")
    if pattern is None:
        return None if actual is None else f"{here}: expected nil, got {actual!r}"
    if isinstance(pattern, dict):
        if not isinstance(actual, dict):
            return f"{here}: expected a map, got {actual!r}"
        for k, p in pattern.items():
            why = mismatch(p, actual.get(k), f"{where}.{k}" if where else k)
            if why:
                return why
        return None
    if isinstance(pattern, list):
        if not isinstance(actual, list) or len(actual) != len(pattern):
            return f"{here}: expected {len(pattern)} elements {pattern!r}, got {actual!r}"
        for i, (p, a) in enumerate(zip(pattern, actual)):
            why = mismatch(p, a, f"{where}.{i}" if where else str(i))
            if why:
                return why
        return None
    if _is_number(pattern):
        if _is_number(actual) and math.isclose(actual, pattern, rel_tol=0, abs_tol=1e-6 * max(1.0, abs(pattern))):
            return None
        return f"{here}: expected {pattern!r}, got {actual!r}"
    return None if pattern == actual else f"{here}: expected {pattern!r}, got {actual!r}"


def check(expect: Any, outcome: Tuple[str, Any]) -> Optional[str]:
    """Whether a step's outcome (``("ok", value)`` or ``("error", map)``)
    is what it expects."""
    kind, value = outcome
    if expect is None:
        return None if kind == "ok" else f"expected ok, got the error {value!r}"
    if "error" in expect:
        want = expect["error"]
        if kind != "error":
            return f"expected the error {want!r}, got ok {value!r}"
        pattern = {"code": want} if isinstance(want, str) else want
        return mismatch(pattern, value, "error")
    if kind != "ok":
        return f"expected ok, got the error {value!r}"
    return mismatch(expect.get("ok"), value)


def _error_map(e: HvsError) -> Dict[str, Any]:
    m: Dict[str, Any] = dict(e.details)
    m.update(code=e.code, message=e.message)
    if e.retry_after_ms is not None:
        m["retry_after_ms"] = e.retry_after_ms
    return m


def load() -> Dict[str, Any]:
    scenario = json.loads(SCENARIO.read_text())
    if scenario.get("format") != 1:
        raise ScenarioError(f"{SCENARIO}: format {scenario.get('format')!r}, this runner reads 1")
    return scenario


def contracts(scenario: Dict[str, Any], run: str) -> Dict[str, Dict[str, Any]]:
    """Each model's contract: the template with ${model} and ${run} replaced."""
    return {
        name: substitute(scenario["contract"], {"model": f"conf-{run}-{name}", "run": run})
        for name in scenario["models"]
    }


Caller = Callable[[str, str, Dict[str, Any]], Awaitable[Tuple[str, Any]]]


async def run_steps(scenario: Dict[str, Any], run: str, call: Caller) -> None:
    """Every step in order through ``call(model, op, args)``; raises at the
    first step that does not get what it expects."""
    names: Dict[str, Any] = {"run": run}
    names.update({m: f"conf-{run}-{m}" for m in scenario["models"]})
    note = ""
    for i, step in enumerate(scenario["steps"]):
        note = step.get("note", note)
        args = substitute(step.get("args") or {}, names)
        outcome = await call(step["as"], step["op"], args)
        expect = substitute(step.get("expect"), names)
        why = check(expect, outcome)
        if why:
            raise ScenarioError(f"step {i} ({step['op']} as {step['as']}; {note}): {why}")
        for name, path in (step.get("save") or {}).items():
            names[name] = follow(outcome[1], path)


class MatcherTest(unittest.TestCase):
    """The runner's own rules, as the README states them."""

    def test_patterns(self) -> None:
        self.assertIsNone(mismatch({"a": 1}, {"a": 1.0000000001, "b": 2}))
        self.assertIsNotNone(mismatch({"a": 1}, {"a": 1.1}))
        self.assertIsNone(mismatch({"a": None}, {}))
        self.assertIsNotNone(mismatch([1, 2], [1, 2, 3]))
        self.assertIsNone(mismatch({"$contains": {"n": "x"}}, [{"n": "y"}, {"n": "x", "m": 1}]))
        self.assertIsNotNone(mismatch({"$none": {"n": "x"}}, [{"n": "x"}]))
        self.assertIsNone(mismatch({"$text": "hi"}, b"hi"))
        self.assertIsNone(mismatch({"$type": "int"}, 3))
        self.assertIsNotNone(mismatch({"$type": "int"}, True))
        self.assertIsNone(mismatch({"$len": 2}, [0, 0]))
        self.assertEqual(mismatch({"x": [0, {"y": 2}]}, {"x": [0, {"y": 3}]}), "x.1.y: expected 2, got 3")
        with self.assertRaises(ScenarioError):
            mismatch({"$nope": 1}, 1)

    def test_substitution_and_paths(self) -> None:
        names = {"a": "conf-r-a", "n": None}
        self.assertEqual(substitute({"k": ["$a", "${a}-vec", "$n"]}, names), {"k": ["conf-r-a", "conf-r-a-vec", None]})
        with self.assertRaises(ScenarioError):
            substitute("$missing", names)
        self.assertEqual(follow({"ids": ["x", "y"]}, "ids.1"), "y")
        self.assertEqual(follow({"a": 1}, ""), {"a": 1})
        with self.assertRaises(ScenarioError):
            follow({"ids": []}, "ids.0")

    def test_error_expectations(self) -> None:
        err = ("error", {"code": "version_conflict", "current_version": 2, "message": "…"})
        self.assertIsNone(check({"error": "version_conflict"}, err))
        self.assertIsNone(check({"error": {"code": "version_conflict", "current_version": 2}}, err))
        self.assertIsNotNone(check({"error": {"code": "version_conflict", "current_version": 3}}, err))
        self.assertIsNotNone(check(None, err))
        self.assertIsNotNone(check({"error": "x"}, ("ok", {})))


class ConformanceTest(unittest.TestCase):
    """The scenario, as each client runs it. Until the server has the
    operations of issue 11 these fail (unknown_op); that is expected."""

    def test_the_blocking_client_runs_the_scenario(self) -> None:
        scenario, run = load(), uuid.uuid4().hex[:8]
        clients = {
            name: hvs_client.connect(c, address=shared_server().address, timeout=REQUEST_TIMEOUT)
            for name, c in contracts(scenario, run).items()
        }

        async def call(model: str, op: str, args: Dict[str, Any]) -> Tuple[str, Any]:
            try:
                return "ok", clients[model].request(op, args)
            except HvsError as e:
                return "error", _error_map(e)

        try:
            asyncio.run(run_steps(scenario, run, call))
        finally:
            for c in clients.values():
                c.close()

    def test_the_async_client_runs_the_scenario(self) -> None:
        scenario, run = load(), uuid.uuid4().hex[:8]
        address = shared_server().address

        async def main() -> None:
            clients = {
                name: await hvs_client.connect_async(c, address=address, timeout=REQUEST_TIMEOUT)
                for name, c in contracts(scenario, run).items()
            }

            async def call(model: str, op: str, args: Dict[str, Any]) -> Tuple[str, Any]:
                try:
                    return "ok", await clients[model].request(op, args)
                except HvsError as e:
                    return "error", _error_map(e)

            try:
                await run_steps(scenario, run, call)
            finally:
                for c in clients.values():
                    await c.close()

        asyncio.run(main())


if __name__ == "__main__":
    unittest.main(verbosity=2)
