#!/usr/bin/env bash
# Installs the Python client (and msgpack) and runs its tests against a real
# `hvs serve`. Needs only python3 (>= 3.9) and pip; reaches PyPI alone.
#
#   examples/python/run_tests.sh                       # newest of target/{release,debug}/hvs
#   HVS_BIN=target/debug/hvs examples/python/run_tests.sh
#
# The packages go to a virtual environment in target/python-venv; where
# `python3 -m venv` is not available, to the user site (`pip install
# --user`), or failing that (an externally managed Python) to
# target/python-lib on PYTHONPATH. Ends with a line `python: N passed, N
# failed`; exits non-zero when a test failed or none ran.
set -euo pipefail

# HVS_BIN may be relative to where we were called from.
if [ -n "${HVS_BIN:-}" ] && [ -e "$HVS_BIN" ]; then
    HVS_BIN="$(cd "$(dirname "$HVS_BIN")" && pwd)/$(basename "$HVS_BIN")"
    export HVS_BIN
fi
cd "$(dirname "$0")/../.."
root=$(pwd)

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || {
    echo "run_tests.sh: python3 >= 3.9 is needed, found $(python3 --version 2>&1)" >&2
    exit 2
}

venv="$root/target/python-venv"
py=""
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    py="$venv/bin/python"
else
    rm -rf "$venv"
    mkdir -p "$root/target"
    if python3 -m venv "$venv" >/dev/null 2>&1 && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        py="$venv/bin/python"
    else
        rm -rf "$venv"
        echo "run_tests.sh: python3 -m venv is not available; installing outside a venv" >&2
    fi
fi

if [ -n "$py" ]; then
    echo "== pip install msgpack ./examples/python (in target/python-venv)"
    "$py" -m pip install -q "msgpack>=1.0"
    "$py" -m pip install -q --force-reinstall --no-deps ./examples/python
else
    py=python3
    echo "== pip install --user msgpack ./examples/python"
    if ! { "$py" -m pip install -q --user "msgpack>=1.0" \
        && "$py" -m pip install -q --user --force-reinstall --no-deps ./examples/python \
        && "$py" -c 'import msgpack, hvs_client'; }; then
        lib="$root/target/python-lib"
        echo "run_tests.sh: pip install --user failed (or its packages are not importable); installing to target/python-lib" >&2
        rm -rf "$lib"
        "$py" -m pip install -q --target "$lib" "msgpack>=1.0" ./examples/python
        export PYTHONPATH="$lib${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi

default_bin='the newest of target/release/hvs and target/debug/hvs'
echo "== python -m unittest discover -s examples/python/tests -v (server: ${HVS_BIN:-$default_bin})"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
"$py" -m unittest discover -s examples/python/tests -v 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# unittest closes with "Ran N tests" and "OK (skipped=S)" or
# "FAILED (failures=F, errors=E, skipped=S)"; say it as passed/failed.
ran=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in .*/\1/p' "$log" | tail -1)
count() { { grep -E '^(OK|FAILED)' "$log" | tail -1 | grep -o "$1=[0-9]*" | cut -d= -f2; } || true; }
failures=$(count failures)
errors=$(count errors)
skipped=$(count skipped)
unexpected=$(count 'unexpected successes')
ran=${ran:-0}
failed=$(( ${failures:-0} + ${errors:-0} + ${unexpected:-0} ))
passed=$(( ran - failed - ${skipped:-0} ))
[ "$passed" -ge 0 ] || passed=0
if [ "${skipped:-0}" -gt 0 ]; then
    echo "python: $passed passed, $failed failed, ${skipped} skipped"
else
    echo "python: $passed passed, $failed failed"
fi
if [ "$ran" -eq 0 ]; then
    echo "run_tests.sh: no test ran" >&2
    exit 1
fi
exit "$status"
