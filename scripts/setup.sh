#!/usr/bin/env bash
# Install everything the tester needs on a Debian machine, as root: tshark (Wireshark's
# dissectors, for evidence cross-checks), iproute2, Chromium (the HTML report's tests),
# the lwIP agent (lwIP 2.1.3 from liblwip-dev, JSON from libjansson, built with gcc:
# agents/lwip/build/cf-lwip-agent) and the gVisor agent (Go), then this package with its
# Python dependencies in a virtual environment, .venv/ (editable, with the dev tools),
# and `conformance` on PATH (/usr/local/bin/conformance links to .venv/bin/conformance).
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(tshark iproute2 gcc make pkg-config liblwip-dev libjansson-dev
                 golang-go golang-gvisor-gvisor-dev chromium)
missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$package")
done
export DEBIAN_FRONTEND=noninteractive
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

make -s -C agents/lwip
make -s -C agents/gvisor

# Debian's python3 has venv in a package of its own (python3-venv).
if [ ! -x .venv/bin/python ] && ! python3 -m venv .venv 2>/dev/null; then
  rm -rf .venv
  apt-get update -qq
  apt-get install -y -qq python3-venv >/dev/null
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
ln -sf "$PWD/.venv/bin/conformance" /usr/local/bin/conformance
hash -r
