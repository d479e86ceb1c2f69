"""The reference stack broken in what it puts on the wire, in ways only a receiver's
dissector sees (`--ref-patch FILE:FUNCTION`, tests/test_wireshark_view.py): Wireshark's
view of each case must reject the DUT's frames."""

from __future__ import annotations

from collections.abc import Callable

from stack.host import Host
from stack.wire.ethernet import EtherType

TCP, UDP = 6, 17


def _rewrite_outgoing(host: Host, protocol: int, field: int, change: Callable[[int], int]) -> None:
    """Every IPv4 datagram of `protocol` the stack sends has the 16-bit field at `field`
    octets into its transport header replaced by `change(value)`."""
    original = host._emit

    def emit(destination: object, ethertype: int, payload: bytes) -> None:
        datagram = bytearray(payload)
        at = (datagram[0] & 0x0F) * 4 + field if datagram else 0
        if ethertype == EtherType.IPV4 and datagram[9] == protocol and len(datagram) >= at + 2:
            value = int.from_bytes(datagram[at:at + 2], "big")
            datagram[at:at + 2] = (change(value) & 0xFFFF).to_bytes(2, "big")
        original(destination, ethertype, bytes(datagram))  # type: ignore[arg-type]

    host._emit = emit  # type: ignore[method-assign]


def tcp_checksums_off_by_one(host: Host) -> None:
    """Every TCP segment the stack sends carries its checksum plus one (RFC 9293 3.1: a
    receiver drops it)."""
    _rewrite_outgoing(host, TCP, 16, lambda checksum: checksum + 1)


def udp_length_past_the_datagram(host: Host) -> None:
    """Every UDP datagram the stack sends claims 8 octets more than it carries (RFC 768:
    the length counts the header and the data; a dissector runs out of packet)."""
    _rewrite_outgoing(host, UDP, 4, lambda length: length + 8)
