"""IPv4 fragments by byte range, for reassembly cases, and reassembly of what the DUT sent.

`fragments(datagram, [(0, 16), (16, 24)])` cuts the IP payload of `datagram` (its transport
header and data, checksums already computed) into fragments holding exactly those byte
ranges, in the order given: in order, out of order, overlapping or with a hole, as the
case wants. Offsets other than the last range's end must be multiples of 8 (RFC 791).
"""

from collections.abc import Sequence

from scapy.layers.inet import IP
from scapy.packet import Packet, Raw

FRAGMENT_UNIT = 8  # RFC 791: the fragment offset counts 8-octet units


class FragmentError(ValueError):
    """A byte range that no fragment can carry."""


def fragments(datagram: Packet, ranges: Sequence[tuple[int, int]]) -> list[Packet]:
    """IP fragments of `datagram` carrying the payload bytes [start, end) of each range.

    Each fragment copies the datagram's header (addresses, protocol, identification, TTL,
    TOS); MF is set on every fragment but one ending at the end of the payload."""
    ip = IP(bytes(datagram[IP]))  # checksums and lengths computed, options kept
    payload = bytes(ip.payload)
    header = ip.copy()
    header.remove_payload()
    pieces: list[Packet] = []
    for start, end in ranges:
        if start % FRAGMENT_UNIT or not 0 <= start < end <= len(payload):
            raise FragmentError(f"bytes [{start}, {end}) of a {len(payload)}-byte payload")
        if end < len(payload) and (end - start) % FRAGMENT_UNIT:
            raise FragmentError(f"a fragment before the last carries a multiple of 8 bytes, "
                                f"not {end - start}")
        piece = header.copy()
        piece.frag = start // FRAGMENT_UNIT
        piece.flags = (piece.flags & ~0x1) | (0x1 if end < len(payload) else 0)  # MF
        piece.len = None
        piece.chksum = None
        pieces.append(IP(bytes(piece / Raw(payload[start:end]))))
    return pieces


def split(datagram: Packet, size: int) -> list[Packet]:
    """In-order fragments of `datagram` carrying `size` payload bytes each (the last less)."""
    length = len(bytes(datagram[IP].payload))
    return fragments(datagram, [(start, min(start + size, length))
                                for start in range(0, length, size)])


def reassemble(pieces: Sequence[Packet]) -> IP:
    """The datagram the fragments `pieces` (any order, one datagram) make up.

    Raises FragmentError if they belong to several datagrams, leave a hole or lack the last
    fragment."""
    ips = [piece[IP] for piece in pieces]
    if not ips:
        raise FragmentError("no fragments")
    keys = {(ip.src, ip.dst, ip.proto, ip.id) for ip in ips}
    if len(keys) != 1:
        raise FragmentError(f"fragments of {len(keys)} datagrams")
    payload = bytearray()
    last_seen = False
    for ip in sorted(ips, key=lambda ip: ip.frag):
        start = ip.frag * FRAGMENT_UNIT
        data = bytes(ip.payload)[: ip.len - ip.ihl * 4]
        if start > len(payload):
            raise FragmentError(f"a hole before byte {start}")
        payload[start:start + len(data)] = data
        last_seen = last_seen or not ip.flags.MF
    if not last_seen:
        raise FragmentError("no last fragment (every fragment has MF set)")
    first = min(ips, key=lambda ip: ip.frag)
    whole = first.copy()
    whole.remove_payload()
    whole.flags = whole.flags & ~0x1
    whole.frag = 0
    whole.len = None
    whole.chksum = None
    return IP(bytes(whole / Raw(bytes(payload))))
