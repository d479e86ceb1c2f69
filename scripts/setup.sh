#!/usr/bin/env bash
# Install everything the tester needs on a Debian machine, as root: tshark (Wireshark's
# dissectors, for evidence cross-checks), iproute2, this package with its Python
# dependencies, and the lwIP agent (lwIP 2.1.3 from liblwip-dev, JSON from libjansson,
# built with gcc: agents/lwip/build/cf-lwip-agent). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(tshark iproute2 gcc make pkg-config liblwip-dev libjansson-dev
                 golang-go golang-gvisor-gvisor-dev)
missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

make -s -C agents/lwip
make -s -C agents/gvisor

# A Debian system Python marks itself externally managed; this machine is a lab box.
export PIP_BREAK_SYSTEM_PACKAGES=1
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[dev]'
if command -v pyenv >/dev/null; then pyenv rehash; fi
