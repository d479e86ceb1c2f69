"""The lab's address plan: RFC 5737 documentation ranges and locally administered MACs."""

from dataclasses import dataclass
from ipaddress import IPv4Network


@dataclass(frozen=True)
class Host:
    """One station on the lab's wire."""

    name: str
    ip: str
    mac: str


LINK = IPv4Network("192.0.2.0/24")
OFF_LINK = IPv4Network("198.51.100.0/24")
LINK_MTU = 1500

DUT = Host("dut", "192.0.2.1", "02:00:00:00:00:01")
TESTER = Host("tester", "192.0.2.2", "02:00:00:00:00:02")
TESTER2 = Host("tester2", "192.0.2.3", "02:00:00:00:00:03")
# The on-link router that owns OFF_LINK: ICMP errors "from a router on the path" come from it.
ROUTER = Host("router", "192.0.2.254", "02:00:00:00:00:fe")
# A host beyond the router, played by the tester.
REMOTE = Host("remote", "198.51.100.7", ROUTER.mac)

TESTER_HOSTS = (TESTER, TESTER2, ROUTER)


def owner_of(ip: str) -> Host | None:
    """The tester-played host that answers ARP for `ip`, if any."""
    for host in TESTER_HOSTS:
        if host.ip == ip:
            return host
    return None

# Ports a stack picks for itself differ between runs and targets (Linux 32768-60999, lwIP
# and IANA 49152-65535, gVisor's netstack 16000-65535): observations record that a port
# was ephemeral, not its number. The cases' own fixed ports for the DUT lie below.
EPHEMERAL_FROM = 16000


def stable_port(port: int) -> int | str:
    """A port as observations record it: `ephemeral` for one the stack may have picked."""
    return "ephemeral" if port >= EPHEMERAL_FROM else port
