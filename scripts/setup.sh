#!/usr/bin/env bash
# Install everything the tester needs on a Debian machine, as root: tshark (Wireshark's
# dissectors, for evidence cross-checks), iproute2, and this package with its Python
# dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v tshark >/dev/null || ! command -v capinfos >/dev/null || ! command -v ip >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq tshark iproute2 >/dev/null
fi

# A Debian system Python marks itself externally managed; this machine is a lab box.
export PIP_BREAK_SYSTEM_PACKAGES=1
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[dev]'
if command -v pyenv >/dev/null; then pyenv rehash; fi
