"""Run the reference stack on a TAP device, serving the agent protocol on stdin/stdout.

    python -m stack.io --tap-fd 5 --mac 02:00:00:00:00:01 --address 192.0.2.1/24 \\
        --route 198.51.100.0/24=192.0.2.254 [--setting NAME=VALUE ...] [--patch FILE:FUNC ...]

``--patch`` loads FUNC from FILE and calls it with the `Host` before serving (each in
order, when repeated): the way the project's tests run the stack deliberately broken.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

from agent_protocol.responses import ResponseWriter, take_stdout
from stack.host import Host, InterfaceConfig
from stack.io.agent import RefAgent
from stack.io.loop import EventLoop
from stack.settings import Settings
from stack.sockets import SocketApi
from stack.wire.ethernet import MacAddress


def apply_patch(spec: str, host: Host) -> None:
    path, _, function_name = spec.rpartition(":")
    module_spec = importlib.util.spec_from_file_location("ref_stack_patch", Path(path))
    if not path or not function_name or module_spec is None or module_spec.loader is None:
        raise SystemExit(f"--patch {spec}: want FILE.py:FUNCTION")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    getattr(module, function_name)(host)


def main(argv: list[str] | None = None) -> int:
    responses = take_stdout()
    parser = argparse.ArgumentParser(
        prog="python -m stack.io",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tap-fd", type=int, required=True)
    parser.add_argument("--mac", required=True)
    parser.add_argument("--address", required=True, help="ADDRESS/PREFIX")
    parser.add_argument("--mtu", type=int, default=1500)
    parser.add_argument("--route", action="append", default=[], metavar="NETWORK=GATEWAY")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--patch", action="append", default=[], metavar="FILE:FUNCTION")
    parser.add_argument("--seed", type=int, help="seed for ports and identifiers")
    options = parser.parse_args(argv)
    try:
        settings = Settings.with_overrides(
            dict(assignment.split("=", 1) for assignment in options.setting)
        )
        interface = IPv4Interface(options.address)
        routes = tuple(
            (IPv4Network(network), IPv4Address(gateway))
            for network, gateway in (route.split("=", 1) for route in options.route)
        )
    except ValueError as error:
        print(f"bad argument: {error}", file=sys.stderr)
        return 2
    config = InterfaceConfig(
        mac=MacAddress.from_string(options.mac),
        address=interface.ip,
        network=interface.network,
        mtu=options.mtu,
        routes=routes,
    )
    host = Host(config, settings, random.Random(options.seed))
    for patch in options.patch:
        apply_patch(patch, host)
    agent = RefAgent(SocketApi(host), ResponseWriter(responses))
    EventLoop(host, agent, options.tap_fd, sys.stdin.fileno()).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
