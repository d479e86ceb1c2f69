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
