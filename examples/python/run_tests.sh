#!/usr/bin/env bash
# Installs the Python client (with msgpack, and numpy when pip can get it)
# and runs its tests against a real `hvs serve`. Needs only python3 (>= 3.9)
# and pip; reaches PyPI alone.
#
#   examples/python/run_tests.sh                       # newest of target/{release,debug}/hvs
#   HVS_BIN=target/debug/hvs examples/python/run_tests.sh
#
# The packages go to a virtual environment in target/python-venv; where
# `python3 -m venv` is not available, to the user site (`pip install
# --user`), or failing that (an externally managed Python) to
# target/python-lib on PYTHONPATH.
#
# Two passes: every test with numpy installed (vectors come back as numpy
# arrays; tests that force lists with numpy=False run too), then the codec
# and blocking-client tests again with numpy made unimportable
# (HVS_PY_WITHOUT_NUMPY=1), the path of a user without numpy. Ends with a
# line `python: N passed, N failed`; exits non-zero when a test failed or
# none ran.
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

# numpy is optional for the client: without a wheel for this machine the
# numpy tests are skipped, and everything else runs.
install_numpy() {
    "$@" numpy >/dev/null 2>&1 || echo "run_tests.sh: numpy could not be installed; its tests are skipped" >&2
}

if [ -n "$py" ]; then
    echo "== pip install msgpack numpy ./examples/python (in target/python-venv)"
    "$py" -m pip install -q "msgpack>=1.0"
    install_numpy "$py" -m pip install -q
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
        install_numpy "$py" -m pip install -q --target "$lib"
        export PYTHONPATH="$lib${PYTHONPATH:+:$PYTHONPATH}"
    else
        install_numpy "$py" -m pip install -q --user
    fi
fi

default_bin='the newest of target/release/hvs and target/debug/hvs'
echo "== python -m unittest discover -s examples/python/tests -v (server: ${HVS_BIN:-$default_bin})"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
set +e
"$py" -m unittest discover -s examples/python/tests -v 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
echo "== without numpy: test_codec test_client (HVS_PY_WITHOUT_NUMPY=1)"
(cd examples/python/tests && HVS_PY_WITHOUT_NUMPY=1 "$py" -m unittest -v test_codec test_client) 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
set -e

# unittest closes each pass with "Ran N tests" and "OK (skipped=S)" or
# "FAILED (failures=F, errors=E, skipped=S)"; add the passes up and say it
# as passed/failed.
sum() { { grep -o "$1" "$log" | grep -o '[0-9]*' || true; } | awk '{s += $1} END {print s + 0}'; }
ran=$(sum '^Ran [0-9]* test')
failures=$(sum 'failures=[0-9]*')
errors=$(sum 'errors=[0-9]*')
skipped=$(sum 'skipped=[0-9]*')
unexpected=$(sum 'unexpected successes=[0-9]*')
failed=$(( failures + errors + unexpected ))
passed=$(( ran - failed - skipped ))
[ "$passed" -ge 0 ] || passed=0
if [ "$skipped" -gt 0 ]; then
    echo "python: $passed passed, $failed failed, ${skipped} skipped"
else
    echo "python: $passed passed, $failed failed"
fi
if [ "$ran" -eq 0 ]; then
    echo "run_tests.sh: no test ran" >&2
    exit 1
fi
exit "$status"
