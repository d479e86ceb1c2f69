"""The fuzzer's frames: the suites' kinds of probe as seeds, and mutations of them.

Seeds are built with scapy: Ethernet (VLAN, unknown and IPv6 ethertypes), ARP, IPv4 with
options, fragments, ICMP (echo, errors quoting the DUT's own segments), UDP and TCP with
options, aimed at the DUT's open sockets and listeners and at a connection the tester
holds open. A pool of scapy's `fuzz()` of each layer joins them. Each frame is a seed
with up to three mutations (a header field set to a boundary or random value, flipped
bits, overwritten bytes, a truncation, random bytes appended), and most get their
checksums fixed so that they reach past the checksum checks.

Addresses and ports are never mutated at random: a field mutation picks them from the
lab's documentation ranges (RFC 5737) and a few special addresses, and from ports other
than those of the liveness checks, and a last pass (`keep_in_the_lab`) undoes what other
mutations did to them, so a mutated frame neither leaves the lab's address plan nor
disturbs the checks that judge the DUT alive.

Everything is drawn from one `random.Random(seed)`: the same seed gives the same frames,
except the sequence and acknowledgement numbers aimed at the held connection, which
follow that connection's (the DUT's ISN differs between runs).
"""

import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw, fuzz

from conformance.lab import addressing

MIN_FRAME = 14  # an Ethernet header
MAX_FRAME = 14 + addressing.LINK_MTU

# The DUT's sockets that the fuzzer aims at, and those of the liveness checks, which no
# frame of the fuzzer is addressed to.
FUZZ_UDP_PORT = 7000
FUZZ_TCP_PORT = 5200
LIVE_UDP_PORT = 7100
LIVE_TCP_PORT = 5300
CLOSED_PORT = 5999
TESTER_PORTS = (40000, 40001, 43000)
LIVENESS_PORTS = frozenset({LIVE_UDP_PORT, LIVE_TCP_PORT})
CHOSEN_PORTS = (FUZZ_UDP_PORT, FUZZ_TCP_PORT, CLOSED_PORT, 0, 1, 7, 9, 53, 65535, 1024,
                *TESTER_PORTS)

# Where a mutated address field may point: the lab's hosts, its broadcast, the off-link
# documentation range, and the special addresses the suites send from.
CHOSEN_ADDRESSES = (
    addressing.DUT.ip, addressing.TESTER.ip, addressing.TESTER2.ip, addressing.ROUTER.ip,
    addressing.REMOTE.ip, "192.0.2.255", "192.0.2.0", "198.51.100.1", "255.255.255.255",
    "224.0.0.1", "224.0.0.251", "0.0.0.0", "127.0.0.1",
)
CHOSEN_MACS = (addressing.DUT.mac, "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01",
               addressing.TESTER.mac, "00:00:00:00:00:00")

INTERESTING_OCTETS = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)
SCAPY_FUZZ_POOL = 256
CHECKSUM_FIX_PROBABILITY = 0.75

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806


@dataclass(frozen=True)
class Field:
    """A header field of a seed: where it is, and what a mutation may set it to."""

    name: str
    offset: int
    width: int  # octets
    chosen: tuple[bytes, ...] = ()  # the only values allowed (addresses, ports), if any


@dataclass(frozen=True)
class Seed:
    kind: str
    data: bytes
    fields: tuple[Field, ...]
    protected: tuple[tuple[int, int], ...]  # [start, end) ranges random bytes leave alone


@dataclass(frozen=True)
class FuzzFrame:
    data: bytes
    description: str  # the seed's kind and the mutations, for the frame's comment


@dataclass(frozen=True)
class Aim:
    """Where the fuzzer aims: the connection it holds open with the DUT, if any (the
    tester's port and the next sequence numbers each way)."""

    connection_sport: int | None = None
    snd_nxt: int = 0  # the tester's next sequence number
    rcv_nxt: int = 0  # the DUT's next sequence number: what the tester acknowledges


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _ip(text: str) -> bytes:
    return bytes(int(part) for part in text.split("."))


ADDRESS_VALUES = tuple(_ip(address) for address in CHOSEN_ADDRESSES)
PORT_VALUES = tuple(struct.pack("!H", port) for port in CHOSEN_PORTS)
MAC_VALUES = tuple(_mac(mac) for mac in CHOSEN_MACS)


def layout(data: bytes, kind: str) -> Seed:
    """The seed of frame `data`: its fields and the ranges random mutations leave alone
    (MACs, IP and ARP addresses, ports), read from the frame's headers."""
    fields = [Field("eth.dst", 0, 6, MAC_VALUES), Field("eth.type", 12, 2)]
    protected = [(0, 12)]
    ethertype, start = struct.unpack_from("!H", data, 12)[0], 14
    if ethertype == 0x8100 and len(data) >= 18:
        fields.append(Field("vlan.tci", 14, 2))
        ethertype, start = struct.unpack_from("!H", data, 16)[0], 18
    if ethertype == ETH_P_ARP and len(data) >= start + 28:
        fields += [Field("arp.htype", start, 2), Field("arp.ptype", start + 2, 2),
                   Field("arp.hlen", start + 4, 1), Field("arp.plen", start + 5, 1),
                   Field("arp.op", start + 6, 2),
                   Field("arp.sha", start + 8, 6, MAC_VALUES),
                   Field("arp.spa", start + 14, 4, ADDRESS_VALUES),
                   Field("arp.tpa", start + 24, 4, ADDRESS_VALUES)]
        protected.append((start + 8, start + 28))
    elif ethertype == ETH_P_IP and len(data) >= start + 20:
        ihl = (data[start] & 0x0F) * 4
        fields += [Field("ip.version_ihl", start, 1), Field("ip.tos", start + 1, 1),
                   Field("ip.len", start + 2, 2), Field("ip.id", start + 4, 2),
                   Field("ip.flags_frag", start + 6, 2), Field("ip.ttl", start + 8, 1),
                   Field("ip.proto", start + 9, 1), Field("ip.checksum", start + 10, 2),
                   Field("ip.src", start + 12, 4, ADDRESS_VALUES),
                   Field("ip.dst", start + 16, 4, ADDRESS_VALUES)]
        protected.append((start + 12, start + 20))
        if ihl > 20:
            fields.append(Field("ip.option_type", start + 20, 1))
        transport = start + max(ihl, 20)
        first_fragment = struct.unpack_from("!H", data, start + 6)[0] & 0x1FFF == 0
        proto = data[start + 9]
        if first_fragment and proto in (6, 17) and len(data) >= transport + 8:
            fields += [Field("l4.sport", transport, 2, PORT_VALUES),
                       Field("l4.dport", transport + 2, 2, PORT_VALUES)]
            protected.append((transport, transport + 4))
            if proto == 6 and len(data) >= transport + 20:
                fields += [Field("tcp.seq", transport + 4, 4), Field("tcp.ack", transport + 8, 4),
                           Field("tcp.offset", transport + 12, 1),
                           Field("tcp.flags", transport + 13, 1),
                           Field("tcp.window", transport + 14, 2),
                           Field("tcp.checksum", transport + 16, 2),
                           Field("tcp.urgptr", transport + 18, 2)]
                if (data[transport + 12] >> 4) * 4 > 20 and len(data) > transport + 20:
                    fields.append(Field("tcp.option_kind", transport + 20, 1))
            elif proto == 17:
                fields += [Field("udp.len", transport + 4, 2),
                           Field("udp.checksum", transport + 6, 2)]
        elif first_fragment and proto == 1 and len(data) >= transport + 8:
            fields += [Field("icmp.type", transport, 1), Field("icmp.code", transport + 1, 1),
                       Field("icmp.checksum", transport + 2, 2),
                       Field("icmp.rest", transport + 4, 4)]
    return Seed(kind, data, tuple(fields), tuple(protected))


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def fix_checksums(frame: bytearray) -> None:
    """Recompute the IPv4 header checksum and, for an unfragmented TCP, UDP or ICMP
    packet that the frame holds whole, the transport checksum (as far as the headers
    still make sense; otherwise the frame is left as it is)."""
    if len(frame) < 34 or struct.unpack_from("!H", frame, 12)[0] != ETH_P_IP:
        return
    ihl = (frame[14] & 0x0F) * 4
    if ihl < 20 or len(frame) < 14 + ihl:
        return
    frame[24:26] = b"\0\0"
    frame[24:26] = struct.pack("!H", internet_checksum(bytes(frame[14:14 + ihl])))
    total = struct.unpack_from("!H", frame, 16)[0]
    if struct.unpack_from("!H", frame, 20)[0] & 0x3FFF or not ihl <= total <= len(frame) - 14:
        return  # a fragment, or a length the frame does not hold
    proto, start, end = frame[23], 14 + ihl, 14 + total
    offset = {6: 16, 17: 6, 1: 2}.get(proto)
    if offset is None or end - start < offset + 2:
        return
    frame[start + offset:start + offset + 2] = b"\0\0"
    segment = bytes(frame[start:end])
    if proto == 1:
        checksum = internet_checksum(segment)
    else:
        pseudo = bytes(frame[26:34]) + struct.pack("!BBH", 0, proto, len(segment))
        checksum = internet_checksum(pseudo + segment)
        if proto == 17 and checksum == 0:
            checksum = 0xFFFF  # RFC 768: a computed zero is sent as all ones
    frame[start + offset:start + offset + 2] = struct.pack("!H", checksum)


# ---- seeds ---------------------------------------------------------------------------

def _ether(packet: Packet, dst: str = addressing.DUT.mac) -> Packet:
    source = packet[IP].src if IP in packet else addressing.TESTER.ip
    owner = addressing.owner_of(source)
    return Ether(src=(owner or addressing.ROUTER).mac, dst=dst) / packet


def _to_dut(**fields: object) -> IP:
    return IP(src=addressing.TESTER.ip, dst=addressing.DUT.ip, **fields)  # type: ignore[arg-type]


TCP_OPTIONS: list[list[tuple[str | int, object]]] = [
    [("MSS", 1460)], [("MSS", 0)], [("MSS", 65535)], [("WScale", 14)], [("WScale", 255)],
    [("SAckOK", b"")], [("Timestamp", (1, 0))], [("NOP", None), ("EOL", None)],
    [("MSS", 536), ("NOP", None), ("WScale", 7), ("SAckOK", b""), ("Timestamp", (5, 0))],
    [(253, b"\x01\x02")], [(99, b"")],
]
IP_OPTIONS: list[bytes] = [
    b"\x07\x07\x04\x00\x00\x00\x00\x00",  # record route, one slot
    b"\x44\x0c\x05\x00" + b"\0" * 8,  # timestamp, timestamps only
    b"\x44\x0c\x05\x01" + b"\0" * 8,  # timestamp with addresses
    b"\x83\x07\x04" + _ip(addressing.TESTER2.ip) + b"\x00",  # LSRR, one hop
    b"\x89\x07\x04" + _ip(addressing.ROUTER.ip) + b"\x00",  # SSRR
    b"\x94\x04\x00\x00",  # router alert
    b"\x01\x01\x01\x00",  # NOPs and EOL
    b"\x9e\x02\x00\x00",  # an unknown option
    b"\x07\x00\x00\x00",  # an option of length 0
    b"\x07\x28\x04\x00",  # an option longer than the header
]


def fragments(packet: IP, size: int) -> list[IP]:
    """`packet`'s payload in fragments of `size` octets (a multiple of 8)."""
    packet = IP(bytes(packet))  # with its computed fields: protocol, checksums
    payload = bytes(packet.payload)
    pieces = []
    for offset in range(0, len(payload), size):
        last = offset + size >= len(payload)
        pieces.append(IP(src=packet.src, dst=packet.dst, id=packet.id, proto=packet.proto,
                         flags=0 if last else "MF", frag=offset // 8)
                      / Raw(payload[offset:offset + size]))
    return pieces


def with_ip_options(frame: bytes, options: bytes) -> bytes:
    """`frame` (Ethernet, IPv4 without options) with raw option octets in its header,
    padded to a 32-bit boundary, and its lengths and checksums made to match: options a
    parser may reject (a length of 0, longer than the header) included."""
    options += b"\0" * (-len(options) % 4)
    ihl = 5 + len(options) // 4
    data = bytearray(frame[:14] + bytes([0x40 | ihl]) + frame[15:34] + options + frame[34:])
    struct.pack_into("!H", data, 16, len(data) - 14)
    fix_checksums(data)
    return bytes(data)


def static_seeds() -> list[tuple[str, bytes]]:
    """The seeds that do not depend on the held connection."""
    dut, tester = addressing.DUT, addressing.TESTER
    udp = UDP(sport=TESTER_PORTS[0], dport=FUZZ_UDP_PORT)
    built: list[tuple[str, Packet]] = [
        ("eth.unknown", Ether(src=tester.mac, dst=dut.mac, type=0x88B5) / Raw(b"\0" * 46)),
        ("eth.ipv6", Ether(src=tester.mac, dst=dut.mac, type=0x86DD) / Raw(b"\x60" + b"\0" * 45)),
        ("eth.vlan", Ether(src=tester.mac, dst=dut.mac) / Dot1Q(vlan=5)
         / _to_dut() / ICMP() / Raw(b"v" * 16)),
        ("eth.runt", Ether(src=tester.mac, dst=dut.mac, type=ETH_P_IP)),
        ("arp.request", Ether(src=tester.mac, dst="ff:ff:ff:ff:ff:ff")
         / ARP(op=1, hwsrc=tester.mac, psrc=tester.ip, pdst=dut.ip)),
        ("arp.reply", Ether(src=tester.mac, dst=dut.mac)
         / ARP(op=2, hwsrc=tester.mac, psrc=tester.ip, hwdst=dut.mac, pdst=dut.ip)),
        ("arp.gratuitous", Ether(src=addressing.TESTER2.mac, dst="ff:ff:ff:ff:ff:ff")
         / ARP(op=1, hwsrc=addressing.TESTER2.mac, psrc=addressing.TESTER2.ip,
               pdst=addressing.TESTER2.ip)),
        ("icmp.echo", _ether(_to_dut() / ICMP(id=7, seq=1) / Raw(b"e" * 56))),
        ("icmp.echo-large", _ether(_to_dut() / ICMP(id=7, seq=2) / Raw(b"E" * 1472))),
        ("icmp.echo-broadcast", _ether(IP(src=tester.ip, dst="192.0.2.255") / ICMP(id=7),
                                       dst="ff:ff:ff:ff:ff:ff")),
        ("icmp.timestamp", _ether(_to_dut() / ICMP(type=13) / Raw(b"\0" * 12))),
        ("icmp.address-mask", _ether(_to_dut() / ICMP(type=17) / Raw(b"\0" * 4))),
        ("icmp.unknown-type", _ether(_to_dut() / ICMP(type=42, code=3) / Raw(b"x" * 8))),
        ("udp.open", _ether(_to_dut() / udp / Raw(b"u" * 32))),
        ("udp.closed", _ether(_to_dut() / UDP(sport=TESTER_PORTS[0], dport=CLOSED_PORT)
                              / Raw(b"c" * 8))),
        ("udp.zero-checksum", _ether(_to_dut() / UDP(sport=TESTER_PORTS[0], dport=FUZZ_UDP_PORT,
                                                     chksum=0) / Raw(b"z" * 8))),
        ("udp.broadcast", _ether(IP(src=tester.ip, dst="255.255.255.255") / udp / Raw(b"b"),
                                 dst="ff:ff:ff:ff:ff:ff")),
        ("tcp.syn-closed", _ether(_to_dut() / TCP(sport=TESTER_PORTS[2], dport=CLOSED_PORT,
                                                  flags="S", seq=1))),
        ("tcp.ack-closed", _ether(_to_dut() / TCP(sport=TESTER_PORTS[2], dport=CLOSED_PORT,
                                                  flags="A", seq=1, ack=1))),
        ("tcp.synack-unsolicited", _ether(_to_dut() / TCP(sport=TESTER_PORTS[2],
                                                          dport=FUZZ_TCP_PORT, flags="SA"))),
    ]
    for number, options in enumerate(TCP_OPTIONS):
        built.append((f"tcp.syn-options-{number}", _ether(_to_dut() / TCP(
            sport=TESTER_PORTS[2], dport=FUZZ_TCP_PORT, flags="S", seq=1000 + number,
            options=options))))
    datagram = _to_dut(id=0x4242) / udp / Raw(bytes(range(256)) * 4)
    for number, piece in enumerate(fragments(datagram, 256)):
        built.append((f"ip.fragment-{number}", _ether(piece)))
    tiny = _to_dut(id=0x4343) / ICMP(id=3) / Raw(b"t" * 64)
    for number, piece in enumerate(fragments(tiny, 8)[:3]):
        built.append((f"ip.tiny-fragment-{number}", _ether(piece)))
    built.append(("ip.overlapping-fragment", _ether(
        _to_dut(id=0x4242, flags="MF", frag=16, proto=17) / Raw(b"O" * 128))))
    built.append(("ip.unknown-protocol", _ether(_to_dut(proto=253) / Raw(b"?" * 20))))
    built.append(("ip.ttl-zero", _ether(_to_dut(ttl=0) / ICMP(id=11))))
    seeds = [(kind, bytes(packet)) for kind, packet in built]
    echo, datagram_frame = bytes(_ether(_to_dut() / ICMP(id=9) / Raw(b"o" * 8))), bytes(
        _ether(_to_dut() / udp / Raw(b"p" * 8)))
    for number, option in enumerate(IP_OPTIONS):
        seeds.append((f"ip.options-{number}", with_ip_options(echo, option)))
        seeds.append((f"ip.options-udp-{number}", with_ip_options(datagram_frame, option)))
    return seeds


def connection_seeds(aim: Aim) -> list[tuple[str, Packet]]:
    """Segments on the held connection, and ICMP errors about it."""
    if aim.connection_sport is None:
        return []
    seq, ack = aim.snd_nxt, aim.rcv_nxt
    ports = {"sport": aim.connection_sport, "dport": FUZZ_TCP_PORT}

    def segment(flags: str, data: bytes = b"", **fields: object) -> Packet:
        return _ether(_to_dut() / TCP(flags=flags, seq=fields.pop("seq", seq),
                                      ack=fields.pop("ack", ack), **ports, **fields)  # type: ignore[arg-type]
                      / Raw(data))

    quoted = IP(src=addressing.DUT.ip, dst=addressing.TESTER.ip) / TCP(
        sport=FUZZ_TCP_PORT, dport=aim.connection_sport, seq=ack, ack=seq, flags="A")
    quote = bytes(quoted)[:28]
    seeds = [
        ("tcp.conn-data", segment("PA", b"d" * 100)),
        ("tcp.conn-ack", segment("A")),
        ("tcp.conn-fin", segment("FA")),
        ("tcp.conn-rst", segment("R")),
        ("tcp.conn-rst-in-window", segment("R", seq=(seq + 1000) % 2**32)),
        ("tcp.conn-syn", segment("S")),
        ("tcp.conn-urg", segment("UA", b"!" * 10, urgptr=5)),
        ("tcp.conn-old", segment("PA", b"o" * 50, seq=(seq - 70000) % 2**32)),
        ("tcp.conn-future", segment("PA", b"f" * 50, seq=(seq + 3000) % 2**32)),
        ("tcp.conn-options", segment("A", options=[("Timestamp", (9, 9)),
                                                   ("SAck", (ack, ack + 10))])),
        ("tcp.conn-zero-window", segment("A", window=0)),
    ]
    for code in (0, 1, 2, 3, 4, 13):
        error = ICMP(type=3, code=code, nexthopmtu=576 if code == 4 else 0)
        seeds.append((f"icmp.unreachable-{code}", _ether(_to_dut() / error / Raw(quote))))
    for mtu in (0, 68, 296, 1280, 1500, 65535):
        seeds.append((f"icmp.frag-needed-{mtu}", _ether(
            IP(src=addressing.ROUTER.ip, dst=addressing.DUT.ip)
            / ICMP(type=3, code=4, nexthopmtu=mtu) / Raw(quote))))
    seeds += [
        ("icmp.time-exceeded", _ether(_to_dut() / ICMP(type=11) / Raw(quote))),
        ("icmp.parameter-problem", _ether(_to_dut() / ICMP(type=12, ptr=8) / Raw(quote))),
        ("icmp.source-quench", _ether(_to_dut() / ICMP(type=4) / Raw(quote))),
        ("icmp.redirect", _ether(IP(src=addressing.ROUTER.ip, dst=addressing.DUT.ip)
                                 / ICMP(type=5, code=1, gw=addressing.TESTER2.ip) / Raw(quote))),
    ]
    return seeds


def scapy_fuzz_pool(count: int = SCAPY_FUZZ_POOL) -> list[Seed]:
    """Frames from scapy's `fuzz()` of each layer (addresses and ports fixed). scapy draws
    from the `random` module: seed it first for the same pool."""
    makers: list[Callable[[], Packet]] = [
        lambda: _ether(_to_dut() / fuzz(TCP(sport=TESTER_PORTS[2], dport=FUZZ_TCP_PORT))),
        lambda: _ether(_to_dut() / fuzz(UDP(sport=TESTER_PORTS[0], dport=FUZZ_UDP_PORT))
                       / Raw(b"f" * 8)),
        lambda: _ether(_to_dut() / fuzz(ICMP()) / Raw(b"i" * 8)),
        lambda: _ether(fuzz(IP(src=addressing.TESTER.ip, dst=addressing.DUT.ip))
                       / Raw(b"p" * 20)),
        lambda: Ether(src=addressing.TESTER.mac, dst=addressing.DUT.mac) / fuzz(
            ARP(hwsrc=addressing.TESTER.mac, psrc=addressing.TESTER.ip,
                pdst=addressing.DUT.ip)),
    ]
    pool = []
    for number in range(count):
        data = bytes(makers[number % len(makers)]())[:MAX_FRAME]
        if len(data) >= MIN_FRAME:
            pool.append(layout(data, f"scapy.fuzz-{number % len(makers)}"))
    return pool


# ---- mutations -----------------------------------------------------------------------

def keep_in_the_lab(frame: bytearray) -> None:
    """Whatever the mutations did (random octets appended to a truncated header, an
    ethertype changed): IPv4 and ARP addresses outside CHOSEN_ADDRESSES become the DUT's,
    and a TCP or UDP port of the liveness checks in an intact header the closed port."""
    ethertype, start = struct.unpack_from("!H", frame, 12)[0], 14
    if ethertype == 0x8100 and len(frame) >= 18:
        ethertype, start = struct.unpack_from("!H", frame, 16)[0], 18
    if ethertype == ETH_P_IP:
        places = [start + 12, start + 16]
    elif ethertype == ETH_P_ARP:
        places = [start + 14, start + 24]
    else:
        return
    for place in places:
        if len(frame) >= place + 4 and bytes(frame[place:place + 4]) not in ADDRESS_VALUES:
            frame[place:place + 4] = _ip(addressing.DUT.ip)
    if ethertype == ETH_P_IP and len(frame) >= start + 24 and frame[start] == 0x45 \
            and frame[start + 9] in (6, 17):
        for place in (start + 20, start + 22):
            if struct.unpack_from("!H", frame, place)[0] in LIVENESS_PORTS:
                struct.pack_into("!H", frame, place, CLOSED_PORT)


class Mutator:
    """Frames for the fuzzer, all drawn from `random.Random(seed)`."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        random.seed(seed)  # scapy's fuzz() draws from the module's generator
        self.static = [layout(data[:MAX_FRAME], kind) for kind, data in static_seeds()]
        self.pool = scapy_fuzz_pool()
        self.connection: list[Seed] = []

    def aim(self, aim: Aim) -> None:
        """Aim the connection's seeds at the connection's current sequence numbers."""
        self.connection = [layout(bytes(packet)[:MAX_FRAME], kind)
                           for kind, packet in connection_seeds(aim)]

    def next_frame(self) -> FuzzFrame:
        rng = self.random
        roll = rng.random()
        if roll < 0.15:
            seed = rng.choice(self.pool)
        elif roll < 0.45 and self.connection:
            seed = rng.choice(self.connection)
        else:
            seed = rng.choice(self.static)
        frame = bytearray(seed.data)
        applied = []
        keep_checksum = False
        for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3))):
            name, touched_checksum = self._mutate(frame, seed)
            applied.append(name)
            keep_checksum = keep_checksum or touched_checksum
        keep_in_the_lab(frame)
        if not keep_checksum and rng.random() < CHECKSUM_FIX_PROBABILITY:
            fix_checksums(frame)
            applied.append("checksums fixed")
        description = seed.kind + (": " + ", ".join(applied) if applied else ": as built")
        return FuzzFrame(bytes(frame[:MAX_FRAME]), description)

    def _mutate(self, frame: bytearray, seed: Seed) -> tuple[str, bool]:
        """One mutation of `frame` in place: what it did, and whether it set a checksum."""
        rng = self.random
        operation = rng.choice(("field", "field", "field", "bits", "octets", "truncate",
                                "extend"))
        if operation == "field" and seed.fields:
            field = rng.choice(seed.fields)
            if field.offset + field.width > len(frame):
                return f"{field.name} gone", False
            value = self._field_value(field)
            frame[field.offset:field.offset + field.width] = value
            return f"{field.name}={value.hex()}", field.name.endswith("checksum")
        free = [index for index in range(len(frame))
                if not any(start <= index < end for start, end in seed.protected)]
        if operation == "bits" and free:
            flipped = []
            for _ in range(rng.randint(1, 8)):
                index, bit = rng.choice(free), rng.randrange(8)
                frame[index] ^= 1 << bit
                flipped.append(f"{index}.{bit}")
            return f"bits flipped {' '.join(flipped)}", False
        if operation == "octets" and free:
            written = []
            for _ in range(rng.randint(1, 4)):
                index = rng.choice(free)
                frame[index] = rng.choice((*INTERESTING_OCTETS, rng.randrange(256)))
                written.append(f"{index}={frame[index]:02x}")
            return f"octets {' '.join(written)}", False
        if operation == "truncate" and len(frame) > MIN_FRAME:
            length = rng.randint(MIN_FRAME, len(frame) - 1)
            del frame[length:]
            return f"truncated to {length}", False
        room = MAX_FRAME - len(frame)
        if room > 0:
            extra = rng.randbytes(rng.randint(1, min(room, 64)))
            start = len(frame)
            frame.extend(extra)
            # After a truncation, the seed's addresses and ports where they were, not random.
            for begin, end in seed.protected:
                for index in range(max(begin, start), min(end, len(frame), len(seed.data))):
                    frame[index] = seed.data[index]
            return f"{len(extra)} random octets appended", False
        return "unchanged", False

    def _field_value(self, field: Field) -> bytes:
        rng = self.random
        if field.chosen:
            return rng.choice(field.chosen)
        top = 2 ** (8 * field.width) - 1
        number = rng.choice((0, 1, top, top - 1, top // 2, top // 2 + 1, rng.randint(0, top)))
        return number.to_bytes(field.width, "big")


class FrameSource(Protocol):
    """Where a fuzzing run's frames come from: a Mutator, or a Replay."""

    def aim(self, aim: Aim) -> None: ...
    def next_frame(self) -> FuzzFrame: ...


REPLAYED_PREFIX = "tester: fuzz frame "


class Replay:
    """The fuzzed frames of a reproducer (the comments `fuzz frame N: ...` name them), in
    order. They keep the sequence numbers of the run they came from: the connection the
    new run holds has other ISNs."""

    def __init__(self, frames: Sequence[tuple[bytes, str]]) -> None:
        self.frames = [FuzzFrame(data, "replayed " + comment.removeprefix("tester: "))
                       for data, comment in frames if comment.startswith(REPLAYED_PREFIX)]
        self._next = 0

    def aim(self, aim: Aim) -> None:
        """Nothing to aim: the frames are sent as they were."""

    def next_frame(self) -> FuzzFrame:
        frame = self.frames[self._next % len(self.frames)]
        self._next += 1
        return frame
