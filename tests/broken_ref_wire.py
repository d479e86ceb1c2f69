"""The reference stack broken in what it puts on the wire, in ways only a receiver's
dissector sees (`--ref-patch FILE:FUNCTION`, tests/test_wireshark_view.py): Wireshark's
view of each case must reject the DUT's frames."""

from __future__ import annotations

from stack.host import Host
from stack.wire.ethernet import EtherType

TCP, UDP = 6, 17




def tcp_checksums_off_by_one(host: Host) -> None:
    """Every TCP segment the stack sends carries its checksum plus one (RFC 9293 3.1: a
    receiver drops it)."""
    original = host._emit

    def emit(destination: object, ethertype: int, payload: bytes) -> None:
        datagram = bytearray(payload)
        header = (datagram[0] & 0x0F) * 4 if datagram else 0
        if ethertype == EtherType.IPV4 and datagram[9] == TCP and len(datagram) >= header + 18:
            checksum = int.from_bytes(datagram[header + 16:header + 18], "big")
            datagram[header + 16:header + 18] = ((checksum + 1) & 0xFFFF).to_bytes(2, "big")
        original(destination, ethertype, bytes(datagram))  # type: ignore[arg-type]

    host._emit = emit  # type: ignore[method-assign]


def udp_length_past_the_datagram(host: Host) -> None:
    """Every UDP datagram the stack sends claims 8 octets more than it carries (RFC 768:
    the length counts the header and the data; a dissector runs out of packet)."""
    original = host._emit

    def emit(destination: object, ethertype: int, payload: bytes) -> None:
        datagram = bytearray(payload)
        header = (datagram[0] & 0x0F) * 4 if datagram else 0
        if ethertype == EtherType.IPV4 and datagram[9] == UDP and len(datagram) >= header + 8:
            length = int.from_bytes(datagram[header + 4:header + 6], "big")
            datagram[header + 4:header + 6] = (length + 8).to_bytes(2, "big")
        original(destination, ethertype, bytes(datagram))  # type: ignore[arg-type]

    host._emit = emit  # type: ignore[method-assign]
