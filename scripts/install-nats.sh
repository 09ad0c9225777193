#!/bin/sh
# Installs Debian's nats-server (if it is not installed already) for
# `hvs bench messaging --over tcp --nats`, which starts it as a child process.
# Debian's package puts the binary in /usr/sbin, which the bench also looks in
# when nats-server is not on PATH.
set -eu

for candidate in "$(command -v nats-server 2>/dev/null || true)" /usr/sbin/nats-server; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
        echo "nats-server already installed: $candidate ($("$candidate" --version))"
        exit 0
    fi
done

if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "install-nats.sh: not root and no sudo; run as root: apt-get install -y nats-server" >&2
    exit 1
fi

$sudo apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y nats-server
echo "installed: $(/usr/sbin/nats-server --version)"
