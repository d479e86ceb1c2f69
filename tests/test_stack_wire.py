"""The reference stack's wire codecs, checked against scapy, by round trips and by fuzzing.

Scapy is the independent reference: what it builds must parse with the right fields, and
what we emit must dissect in scapy with the same fields and checksums it agrees with.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from stack.wire.arp import ArpOp, ArpPacket
from stack.wire.checksum import internet_checksum, ones_complement_sum, transport_checksum
from stack.wire.errors import WireError
from stack.wire.ethernet import BROADCAST, EthernetFrame, EtherType, MacAddress
from stack.wire.icmp import IcmpMessage, IcmpType, UnreachableCode
from stack.wire.ipv4 import (
    IpProtocol,
    Ipv4Flags,
    Ipv4Header,
    Ipv4Option,
    Ipv4OptionKind,
    Ipv4Packet,
    parse_ipv4_options,
)
from stack.wire.tcp import (
    Eol,
    Mss,
    Nop,
    Sack,
    SackPermitted,
    TcpFlags,
    TcpOption,
    TcpSegment,
    Timestamps,
    UnknownOption,
    WindowScale,
    encode_tcp_options,
    parse_tcp_options,
)
from stack.wire.udp import UdpDatagram

DUT = IPv4Address("192.0.2.1")
TESTER = IPv4Address("192.0.2.2")
DUT_MAC = MacAddress.from_string("02:00:00:00:00:01")
TESTER_MAC = MacAddress.from_string("02:00:00:00:00:02")

QUICK = settings(database=None, deadline=None, max_examples=100)
THOROUGH = settings(database=None, deadline=None, max_examples=400)
WITH_SCAPY = settings(database=None, deadline=None, max_examples=40)


def reason_of(parse: Callable[[], object]) -> str:
    with pytest.raises(WireError) as raised:
        parse()
    return raised.value.reason


def scapy_agrees_on_checksums(packet: Packet, *layers: type[Packet]) -> bool:
    """Rebuild ``packet`` with the checksum of each of ``layers`` deleted, so that scapy
    computes them, and say whether it comes back byte for byte."""
    rebuilt = packet.copy()
    for layer in layers:
        del rebuilt[layer].chksum
    return bytes(rebuilt) == bytes(packet)


def ip_bytes(protocol: int, payload: bytes, **header: Any) -> bytes:
    return Ipv4Packet(Ipv4Header(TESTER, DUT, protocol, **header), payload).emit()


def tcp_with_options(options: bytes, payload: bytes = b"") -> bytes:
    """A TCP segment from the tester with a raw options area and a right checksum."""
    data_offset = (20 + len(options)) // 4
    segment = bytearray(
        struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, data_offset << 4, TcpFlags.SYN, 8192, 0, 0)
    )
    segment += options + payload
    struct.pack_into("!H", segment, 16, transport_checksum(TESTER, DUT, 6, bytes(segment)))
    return bytes(segment)


# -- checksum ------------------------------------------------------------------------------


def test_checksum_of_the_rfc_1071_example() -> None:
    # RFC 1071 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_complement_sum(data) == 0xDDF2
    assert internet_checksum(data) == 0x220D
    assert internet_checksum(data + b"\x22\x0d") == 0


def test_an_odd_byte_is_padded_with_zero() -> None:
    assert internet_checksum(b"\x12") == internet_checksum(b"\x12\x00") == 0xEDFF


@QUICK
@given(st.binary(max_size=300))
def test_checksum_matches_the_word_by_word_definition(data: bytes) -> None:
    padded = data + b"\x00" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(padded) // 2}H", padded))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    assert ones_complement_sum(data) == total


# -- Ethernet and ARP ----------------------------------------------------------------------


def test_ethernet_frame_built_by_scapy_parses() -> None:
    frame = EthernetFrame.parse(
        bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:02", type=0x0806) / b"xyz")
    )
    assert frame == EthernetFrame(BROADCAST, TESTER_MAC, EtherType.ARP, b"xyz")
    assert str(frame.src) == "02:00:00:00:00:02"
    assert frame.dst.is_broadcast and frame.dst.is_multicast and not frame.src.is_multicast


def test_ethernet_frame_we_emit_dissects_in_scapy() -> None:
    packet = Ether(EthernetFrame(TESTER_MAC, DUT_MAC, EtherType.IPV4, b"\x45" * 30).emit())
    assert (packet.dst, packet.src, packet.type) == ("02:00:00:00:00:02", str(DUT_MAC), 0x0800)


def test_ethernet_header_shorter_than_14_bytes_is_truncated() -> None:
    assert reason_of(lambda: EthernetFrame.parse(b"\x00" * 13)) == "ethernet.truncated"


def test_arp_request_built_by_scapy_parses_and_padding_is_ignored() -> None:
    request = ARP(op=1, hwsrc=str(TESTER_MAC), psrc=str(TESTER), pdst=str(DUT))
    assert ArpPacket.parse(bytes(request) + b"\x00" * 18) == ArpPacket(
        ArpOp.REQUEST, TESTER_MAC, TESTER, MacAddress(b"\x00" * 6), DUT
    )


def test_arp_reply_we_emit_dissects_in_scapy() -> None:
    reply = ARP(ArpPacket(ArpOp.REPLY, DUT_MAC, DUT, TESTER_MAC, TESTER).emit())
    assert (reply.op, reply.hwsrc, reply.psrc) == (2, str(DUT_MAC), str(DUT))
    assert (reply.hwdst, reply.pdst) == (str(TESTER_MAC), str(TESTER))
    assert (reply.hwtype, reply.ptype, reply.hwlen, reply.plen) == (1, 0x0800, 6, 4)


def test_arp_for_other_hardware_or_protocols_is_refused() -> None:
    other_hardware = bytes(ARP(hwtype=6, pdst=str(DUT)))
    ipv6_protocol = bytes(ARP(ptype=0x86DD, plen=4, pdst=str(DUT)))
    assert reason_of(lambda: ArpPacket.parse(other_hardware)) == "arp.unsupported_hardware"
    assert reason_of(lambda: ArpPacket.parse(ipv6_protocol)) == "arp.unsupported_protocol"
    assert reason_of(lambda: ArpPacket.parse(bytes(ARP())[:27])) == "arp.truncated"


# -- IPv4 ----------------------------------------------------------------------------------


def test_ipv4_header_built_by_scapy_parses_with_every_field() -> None:
    router_alert = b"\x94\x04\x00\x00"
    built = IP(
        src=str(TESTER),
        dst=str(DUT),
        tos=0x10,
        id=0x1234,
        flags="MF",
        frag=185,
        ttl=3,
        proto=17,
        options=[IPOption(router_alert)],
    ) / Raw(b"p" * 10)
    packet = Ipv4Packet.parse(bytes(built))
    header = packet.header
    assert (header.version, header.ihl, header.header_length) == (4, 6, 24)
    assert (header.src, header.dst, header.tos, header.ttl) == (TESTER, DUT, 0x10, 3)
    assert (header.identification, header.protocol, header.total_length) == (0x1234, 17, 34)
    assert header.flags == Ipv4Flags.MORE_FRAGMENTS and header.more_fragments
    assert not header.dont_fragment and header.is_fragment
    assert header.fragment_offset == 185 * 8  # bytes, not the wire's 8-byte units
    assert header.checksum == IP(bytes(built)).chksum
    assert header.options == router_alert
    assert header.parsed_options() == (Ipv4Option(Ipv4OptionKind.ROUTER_ALERT, b"\x00\x00"),)
    assert packet.payload == b"p" * 10


def test_ipv4_packet_we_emit_dissects_in_scapy_with_its_checksum() -> None:
    header = Ipv4Header(
        DUT,
        TESTER,
        IpProtocol.UDP,
        ttl=64,
        identification=7,
        flags=Ipv4Flags.DONT_FRAGMENT,
        fragment_offset=1480,
        options=b"\x01\x01\x01\x00",
    )
    dissected = IP(Ipv4Packet(header, b"data").emit())
    assert (dissected.src, dissected.dst) == (str(DUT), str(TESTER))
    assert (dissected.proto, dissected.ttl) == (17, 64)
    assert (dissected.ihl, dissected.len, dissected.id) == (6, 28, 7)
    assert (int(dissected.flags), dissected.frag) == (2, 185)
    assert bytes(dissected.payload) == b"data"
    assert scapy_agrees_on_checksums(dissected, IP)


def test_ipv4_bad_header_checksum_is_refused_unless_asked_not_to_check() -> None:
    data = bytearray(ip_bytes(IpProtocol.UDP, b"x"))
    data[10] ^= 0x01
    assert reason_of(lambda: Ipv4Packet.parse(bytes(data))) == "ipv4.bad_checksum"
    assert Ipv4Packet.parse(bytes(data), verify_checksum=False).payload == b"x"


def with_checksum(header: bytearray) -> bytes:
    header[10:12] = b"\x00\x00"
    header[10:12] = internet_checksum(bytes(header)).to_bytes(2, "big")
    return bytes(header)


def test_ipv4_header_length_below_five_words_is_refused() -> None:
    header = bytearray(ip_bytes(IpProtocol.UDP, b""))
    header[0] = 0x44
    assert reason_of(lambda: Ipv4Packet.parse(with_checksum(header))) == "ipv4.bad_ihl"


def test_ipv4_header_length_past_the_buffer_is_truncated() -> None:
    header = bytearray(ip_bytes(IpProtocol.UDP, b""))
    header[0] = 0x4F  # 60 bytes of header claimed, 20 given
    assert reason_of(lambda: Ipv4Header.parse(bytes(header))) == "ipv4.truncated"


def test_ipv4_total_length_beyond_the_buffer_is_truncated() -> None:
    data = ip_bytes(IpProtocol.UDP, b"x" * 8)
    assert reason_of(lambda: Ipv4Packet.parse(data[:-1])) == "ipv4.truncated"
    # The header alone still reads: that is what an ICMP error quotes.
    assert Ipv4Header.parse(data[:28]).total_length == 28


def test_ipv4_total_length_shorter_than_the_header_is_refused() -> None:
    header = bytearray(ip_bytes(IpProtocol.UDP, b""))
    header[2:4] = (19).to_bytes(2, "big")
    refused = reason_of(lambda: Ipv4Packet.parse(with_checksum(header)))
    assert refused == "ipv4.bad_total_length"


def test_ipv4_version_other_than_4_is_refused() -> None:
    header = bytearray(ip_bytes(IpProtocol.UDP, b""))
    header[0] = 0x65
    assert reason_of(lambda: Ipv4Packet.parse(with_checksum(header))) == "ipv4.bad_version"


def test_ethernet_padding_after_total_length_is_dropped() -> None:
    frame = bytes(Ether() / IP(dst=str(DUT)) / UDP(dport=9) / b"hi")
    padded = EthernetFrame.parse(frame + b"\x00" * (60 - len(frame)))
    assert len(padded.payload) == 46
    assert Ipv4Packet.parse(padded.payload).payload == frame[34:]  # the UDP datagram alone


def test_ipv4_options_walk_eol_nop_and_tlv() -> None:
    record_route = b"\x07\x07\x04" + bytes(4)
    assert parse_ipv4_options(b"\x01" + record_route) == (
        Ipv4Option(Ipv4OptionKind.NO_OPERATION),
        Ipv4Option(Ipv4OptionKind.RECORD_ROUTE, b"\x04" + bytes(4)),
    )
    assert parse_ipv4_options(b"\x00\xff\xff\xff") == (Ipv4Option(0),)  # padding not read
    assert not Ipv4Option(Ipv4OptionKind.RECORD_ROUTE).copied
    assert Ipv4Option(Ipv4OptionKind.LOOSE_SOURCE_ROUTE).copied


@pytest.mark.parametrize(
    "options",
    [b"\x07\x00\x00\x00", b"\x07\x01\x00\x00", b"\x07\x09\x04\x00", b"\x01\x01\x01\x07"],
    ids=["length 0", "length 1", "past the end", "no length octet"],
)
def test_ipv4_option_with_a_malformed_length_is_refused(options: bytes) -> None:
    assert reason_of(lambda: parse_ipv4_options(options)) == "ipv4.bad_option_length"


# -- ICMP ----------------------------------------------------------------------------------


def test_icmp_echo_request_built_by_scapy_parses() -> None:
    message = IcmpMessage.parse(bytes(ICMP(type=8, id=0x4242, seq=7) / b"ping"))
    assert (message.type, message.code, message.payload) == (IcmpType.ECHO_REQUEST, 0, b"ping")
    assert (message.echo_identifier, message.echo_sequence) == (0x4242, 7)
    assert not message.is_error


def test_icmp_echo_reply_we_emit_dissects_in_scapy() -> None:
    reply = ICMP(IcmpMessage.echo_reply(0x4242, 7, b"ping").emit())
    assert (reply.type, reply.code, reply.id, reply.seq) == (0, 0, 0x4242, 7)
    assert bytes(reply.payload) == b"ping"
    assert scapy_agrees_on_checksums(reply, ICMP)


def test_icmp_fragmentation_needed_next_hop_mtu_is_read_and_written() -> None:
    quoted = bytes(IP(src=str(DUT), dst=str(TESTER), flags="DF") / UDP() / (b"q" * 1400))[:28]
    received = IcmpMessage.parse(bytes(ICMP(type=3, code=4, nexthopmtu=1280) / quoted))
    assert received.is_error and received.code == UnreachableCode.FRAGMENTATION_NEEDED
    assert received.next_hop_mtu == 1280
    assert Ipv4Header.parse(received.payload).src == DUT
    sent = ICMP(IcmpMessage.fragmentation_needed(576, quoted).emit())
    assert (sent.type, sent.code, sent.nexthopmtu, sent.unused) == (3, 4, 576, b"")
    assert bytes(sent)[4:8] == b"\x00\x00\x02\x40"  # RFC 1191 4: high-order 16 bits unused
    assert scapy_agrees_on_checksums(sent, ICMP)


def test_icmp_bad_checksum_is_refused() -> None:
    data = bytearray(IcmpMessage.echo_request(1, 1, b"abc").emit())
    data[-1] ^= 0xFF
    assert reason_of(lambda: IcmpMessage.parse(bytes(data))) == "icmp.bad_checksum"
    assert reason_of(lambda: IcmpMessage.parse(bytes(data[:7]))) == "icmp.truncated"


# -- UDP -----------------------------------------------------------------------------------


def test_udp_datagram_built_by_scapy_parses() -> None:
    ip = IP(bytes(IP(src=str(TESTER), dst=str(DUT)) / UDP(sport=5000, dport=9) / b"hello"))
    datagram = UdpDatagram.parse(bytes(ip[UDP]), TESTER, DUT)
    assert datagram == UdpDatagram(5000, 9, b"hello", length=13, checksum=ip[UDP].chksum)
    assert datagram.has_checksum


def test_udp_datagram_we_emit_dissects_in_scapy_with_its_checksum() -> None:
    segment = UdpDatagram(9, 5000, b"reply").emit(DUT, TESTER)
    dissected = IP(Ipv4Packet(Ipv4Header(DUT, TESTER, IpProtocol.UDP), segment).emit())
    udp = dissected[UDP]
    assert (udp.sport, udp.dport, udp.len, bytes(udp.payload)) == (9, 5000, 13, b"reply")
    assert scapy_agrees_on_checksums(dissected, UDP)


@pytest.mark.parametrize("length", [0, 7])
def test_udp_length_below_the_header_is_refused(length: int) -> None:
    data = bytes(UDP(sport=1, dport=2, len=length, chksum=0) / b"abcd")
    assert reason_of(lambda: UdpDatagram.parse(data, TESTER, DUT)) == "udp.bad_length"


def test_udp_length_beyond_the_buffer_is_truncated() -> None:
    data = bytes(UDP(sport=1, dport=2, len=13, chksum=0) / b"abcd")
    assert reason_of(lambda: UdpDatagram.parse(data, TESTER, DUT)) == "udp.truncated"
    assert reason_of(lambda: UdpDatagram.parse(data[:7], TESTER, DUT)) == "udp.truncated"


def test_udp_bytes_beyond_the_length_are_ignored() -> None:
    data = UdpDatagram(1, 2, b"abcd").emit(TESTER, DUT) + b"\x00\x00trailer"
    assert UdpDatagram.parse(data, TESTER, DUT).payload == b"abcd"


def test_udp_zero_checksum_means_none_and_is_accepted() -> None:
    data = bytes(UDP(sport=1, dport=2, chksum=0) / b"not summed")
    datagram = UdpDatagram.parse(data, TESTER, DUT)
    assert datagram.checksum == 0 and not datagram.has_checksum
    assert datagram.emit(TESTER, DUT) == data  # a checksum of 0 given is sent as 0


def test_udp_bad_checksum_is_refused() -> None:
    data = bytearray(UdpDatagram(1, 2, b"abcd").emit(TESTER, DUT))
    data[-1] ^= 0x01
    assert reason_of(lambda: UdpDatagram.parse(bytes(data), TESTER, DUT)) == "udp.bad_checksum"


def test_udp_computed_zero_checksum_is_sent_as_all_ones() -> None:
    # Choose the last payload word so that the one's complement sum is 0xFFFF.
    probe = UdpDatagram(1000, 2000, b"ab\x00\x00").emit(TESTER, DUT)
    payload = b"ab" + probe[6:8]
    data = UdpDatagram(1000, 2000, payload).emit(TESTER, DUT)
    assert transport_checksum(TESTER, DUT, 17, data[:6] + b"\x00\x00" + data[8:]) == 0
    assert data[6:8] == b"\xff\xff"  # RFC 768
    assert UdpDatagram.parse(data, TESTER, DUT).checksum == 0xFFFF
    built_by_scapy = IP(src=str(TESTER), dst=str(DUT)) / UDP(sport=1000, dport=2000) / payload
    assert bytes(built_by_scapy[UDP]) == data


# -- TCP -----------------------------------------------------------------------------------

SYN_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (11, 0)), ("NOP", None), ("WScale", 7)]


def test_tcp_segment_built_by_scapy_parses_with_its_options() -> None:
    built = (
        IP(src=str(TESTER), dst=str(DUT))
        / TCP(
            sport=40000,
            dport=80,
            seq=1000,
            ack=2000,
            flags="SEC",
            window=65535,
            urgptr=3,
            options=[*SYN_OPTIONS, ("SAck", (100, 200, 300, 400))],
        )
        / b"data"
    )
    ip = IP(bytes(built))
    segment = TcpSegment.parse(bytes(ip[TCP]), TESTER, DUT)
    assert (segment.src_port, segment.dst_port, segment.seq, segment.ack) == (40000, 80, 1000, 2000)
    assert segment.flags == TcpFlags.SYN | TcpFlags.ECE | TcpFlags.CWR
    assert (segment.window, segment.urgent_pointer, segment.payload) == (65535, 3, b"data")
    assert (segment.data_offset, segment.checksum) == (ip[TCP].dataofs, ip[TCP].chksum)
    assert segment.options == (
        Mss(1460),
        SackPermitted(),
        Timestamps(11, 0),
        Nop(),
        WindowScale(7),
        Sack(((100, 200), (300, 400))),
        Eol(),
    )
    assert segment.find_option(Mss) == Mss(1460) and segment.find_option(Sack) is not None
    assert segment.sequence_length == 5


def test_tcp_segment_we_emit_dissects_in_scapy_with_its_checksum() -> None:
    options = (Mss(1460), SackPermitted(), Timestamps(11, 0), Nop(), WindowScale(7))
    segment = TcpSegment(80, 40000, 5000, 1001, TcpFlags.SYN | TcpFlags.ACK, 29200, options=options)
    dissected = IP(
        Ipv4Packet(Ipv4Header(DUT, TESTER, IpProtocol.TCP), segment.emit(DUT, TESTER)).emit()
    )
    tcp = dissected[TCP]
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, str(tcp.flags)) == (80, 40000, 5000, 1001, "SA")
    assert (tcp.window, tcp.dataofs, tcp.reserved, tcp.options) == (29200, 10, 0, SYN_OPTIONS)
    assert scapy_agrees_on_checksums(dissected, TCP)


def test_tcp_data_offset_below_five_words_is_refused() -> None:
    data = bytearray(tcp_with_options(b""))
    data[12] = 0x40
    assert reason_of(lambda: TcpSegment.parse(bytes(data), TESTER, DUT)) == "tcp.bad_data_offset"


def test_tcp_data_offset_past_the_buffer_is_truncated() -> None:
    data = bytearray(tcp_with_options(b""))
    data[12] = 0x60
    assert reason_of(lambda: TcpSegment.parse(bytes(data), TESTER, DUT)) == "tcp.truncated"


@pytest.mark.parametrize(
    "options",
    [
        b"\x08\x00\x00\x00",
        b"\x03\x01\x00\x00",
        b"\x02\x08\x05\xb4",
        b"\x01\x01\x01\x02",
        b"\x02\x03\x05\x00",
        b"\x05\x06" + bytes(6),
    ],
    ids=[
        "length 0",
        "length 1",
        "past the header",
        "no length octet",
        "MSS of length 3",
        "SACK of half a block",
    ],
)
def test_tcp_option_with_an_illegal_length_is_refused(options: bytes) -> None:
    # RFC 9293 3.1, RFC 1122 4.2.2.5: be prepared for an illegal option length.
    data = tcp_with_options(options)
    assert reason_of(lambda: TcpSegment.parse(data, TESTER, DUT)) == "tcp.bad_option_length"


def test_unknown_tcp_option_is_kept_and_stepped_over() -> None:
    data = tcp_with_options(b"\xfe\x04\xaa\xbb\x02\x04\x05\xb4", b"x")
    segment = TcpSegment.parse(data, TESTER, DUT)
    assert segment.options == (UnknownOption(254, b"\xaa\xbb"), Mss(1460))
    assert segment.payload == b"x" and segment.emit(TESTER, DUT) == data


def test_tcp_padding_after_eol_is_not_read() -> None:
    options = parse_tcp_options(b"\x02\x04\x05\xb4\x00\x08\x01\x02")
    assert options == (Mss(1460), Eol())
    assert encode_tcp_options(options) == b"\x02\x04\x05\xb4\x00\x00\x00\x00"


def test_tcp_options_that_need_padding_must_end_with_eol() -> None:
    with pytest.raises(ValueError, match="Eol"):
        TcpSegment(1, 2, options=(Mss(1460), WindowScale(7)))
    assert TcpSegment(1, 2, options=(Mss(1460), WindowScale(7), Eol())).data_offset == 7
    assert TcpSegment(1, 2, options=(Mss(1460), Nop(), WindowScale(7))).data_offset == 7


def test_tcp_bad_checksum_is_refused() -> None:
    data = bytearray(tcp_with_options(b"", b"payload"))
    data[-1] ^= 0x01
    assert reason_of(lambda: TcpSegment.parse(bytes(data), TESTER, DUT)) == "tcp.bad_checksum"


def test_tcp_reserved_bits_are_kept() -> None:
    # Scapy splits the 4 reserved bits into 3 and an "AE" flag (0x100); the wire is the same.
    reserved = bytes(TCP(reserved=0b101, flags="S"))
    assert TcpSegment.parse(reserved, TESTER, DUT, verify_checksum=False).reserved == 0b1010


# -- strategies ----------------------------------------------------------------------------

u8, u16, u32 = (st.integers(0, (1 << bits) - 1) for bits in (8, 16, 32))
addresses = u32.map(IPv4Address)
macs = st.binary(min_size=6, max_size=6).map(MacAddress)
payloads = st.binary(max_size=64)

ethernet_frames = st.builds(EthernetFrame, macs, macs, u16, payloads)
arp_packets = st.builds(ArpPacket, u16, macs, addresses, macs, addresses)
ipv4_headers = st.builds(
    Ipv4Header,
    src=addresses,
    dst=addresses,
    protocol=u8,
    ttl=u8,
    tos=u8,
    identification=u16,
    flags=st.integers(0, 7).map(Ipv4Flags),
    fragment_offset=st.integers(0, 8191).map(lambda units: units * 8),
    options=st.integers(0, 10).flatmap(
        lambda words: st.binary(min_size=4 * words, max_size=4 * words)
    ),
)
ipv4_packets = st.builds(Ipv4Packet, ipv4_headers, payloads)
icmp_messages = st.builds(IcmpMessage, u8, u8, st.binary(min_size=4, max_size=4), payloads)
udp_datagrams = st.builds(UdpDatagram, u16, u16, payloads)

tcp_option_entries: st.SearchStrategy[TcpOption] = st.one_of(
    st.just(Nop()),
    st.builds(Mss, u16),
    st.builds(WindowScale, u8),
    st.just(SackPermitted()),
    st.builds(Sack, st.lists(st.tuples(u32, u32), min_size=1, max_size=4).map(tuple)),
    st.builds(Timestamps, u32, u32),
    st.builds(
        UnknownOption,
        u8.filter(lambda kind: kind not in (0, 1, 2, 3, 4, 5, 8)),
        st.binary(max_size=12),
    ),
)


def sendable(entries: list[TcpOption], end_with_eol: bool) -> tuple[TcpOption, ...]:
    """Drop options until they fit 40 bytes, then end the list with EOL or pad it with NOP."""
    while len(b"".join(option.encode() for option in entries)) > 39:
        entries.pop()
    used = len(b"".join(option.encode() for option in entries))
    if end_with_eol:
        return (*entries, Eol())
    return (*entries, *[Nop()] * (-used % 4))


tcp_options = st.builds(sendable, st.lists(tcp_option_entries, max_size=6), st.booleans())
tcp_segments = st.builds(
    TcpSegment,
    src_port=u16,
    dst_port=u16,
    seq=u32,
    ack=u32,
    flags=u8.map(TcpFlags),
    window=u16,
    urgent_pointer=u16,
    options=tcp_options,
    payload=payloads,
    reserved=st.integers(0, 15),
)


# -- round trips: parse(emit(x)) is x with the computed fields filled in -------------------


@QUICK
@given(ethernet_frames)
def test_ethernet_round_trip(frame: EthernetFrame) -> None:
    assert EthernetFrame.parse(frame.emit()) == frame


@QUICK
@given(arp_packets)
def test_arp_round_trip(packet: ArpPacket) -> None:
    assert ArpPacket.parse(packet.emit()) == packet


@QUICK
@given(ipv4_packets)
def test_ipv4_round_trip(packet: Ipv4Packet) -> None:
    parsed = Ipv4Packet.parse(packet.emit())
    assert parsed.header.total_length == parsed.header.header_length + len(packet.payload)
    computed_left_out = replace(parsed.header, total_length=None, checksum=None)
    assert replace(parsed, header=computed_left_out) == packet
    assert Ipv4Packet.parse(parsed.emit()) == parsed and parsed.emit() == packet.emit()


@QUICK
@given(icmp_messages)
def test_icmp_round_trip(message: IcmpMessage) -> None:
    parsed = IcmpMessage.parse(message.emit())
    assert replace(parsed, checksum=None) == message
    assert IcmpMessage.parse(parsed.emit()) == parsed


@QUICK
@given(udp_datagrams, addresses, addresses)
def test_udp_round_trip(datagram: UdpDatagram, src: IPv4Address, dst: IPv4Address) -> None:
    parsed = UdpDatagram.parse(datagram.emit(src, dst), src, dst)
    assert replace(parsed, length=None, checksum=None) == datagram
    assert parsed.checksum != 0  # a computed zero goes out as 0xFFFF
    assert UdpDatagram.parse(parsed.emit(src, dst), src, dst) == parsed


@QUICK
@given(tcp_segments, addresses, addresses)
def test_tcp_round_trip(segment: TcpSegment, src: IPv4Address, dst: IPv4Address) -> None:
    parsed = TcpSegment.parse(segment.emit(src, dst), src, dst)
    assert replace(parsed, checksum=None) == segment
    assert TcpSegment.parse(parsed.emit(src, dst), src, dst) == parsed


@WITH_SCAPY
@given(tcp_segments)
def test_scapy_dissects_any_tcp_segment_we_emit(segment: TcpSegment) -> None:
    data = segment.emit(DUT, TESTER)
    dissected = IP(Ipv4Packet(Ipv4Header(DUT, TESTER, IpProtocol.TCP), data).emit())
    tcp = dissected[TCP]
    assert (tcp.sport, tcp.dport) == (segment.src_port, segment.dst_port)
    assert (tcp.seq, tcp.ack) == (segment.seq, segment.ack)
    assert (tcp.window, tcp.urgptr) == (segment.window, segment.urgent_pointer)
    # Scapy reads the lowest of the 4 reserved bits as an "AE" flag (0x100).
    assert int(tcp.flags) == segment.flags | (segment.reserved & 1) << 8
    assert tcp.reserved == segment.reserved >> 1
    assert tcp.dataofs == segment.data_offset
    assert bytes(tcp.payload) == segment.payload
    assert scapy_agrees_on_checksums(dissected, IP, TCP)


@WITH_SCAPY
@given(udp_datagrams)
def test_scapy_dissects_any_udp_datagram_we_emit(datagram: UdpDatagram) -> None:
    data = datagram.emit(DUT, TESTER)
    dissected = IP(Ipv4Packet(Ipv4Header(DUT, TESTER, IpProtocol.UDP), data).emit())
    udp = dissected[UDP]
    assert (udp.sport, udp.dport, udp.len) == (datagram.src_port, datagram.dst_port, len(data))
    assert bytes(udp.payload) == datagram.payload
    assert scapy_agrees_on_checksums(dissected, IP, UDP)


# -- fuzz: whatever the bytes, parse returns a value or raises WireError -------------------

PARSERS: dict[str, Callable[[bytes], object]] = {
    "ethernet": EthernetFrame.parse,
    "arp": ArpPacket.parse,
    "ipv4": Ipv4Packet.parse,
    "ipv4 unchecked": lambda data: Ipv4Packet.parse(data, verify_checksum=False),
    "ipv4 header unchecked": lambda data: Ipv4Header.parse(data, verify_checksum=False),
    "ipv4 options": parse_ipv4_options,
    "icmp": IcmpMessage.parse,
    "icmp unchecked": lambda data: IcmpMessage.parse(data, verify_checksum=False),
    "udp": lambda data: UdpDatagram.parse(data, TESTER, DUT),
    "udp unchecked": lambda data: UdpDatagram.parse(data, TESTER, DUT, verify_checksum=False),
    "tcp": lambda data: TcpSegment.parse(data, TESTER, DUT),
    "tcp unchecked": lambda data: TcpSegment.parse(data, TESTER, DUT, verify_checksum=False),
    "tcp options": parse_tcp_options,
}


def emitted(value: object) -> bytes:
    if isinstance(value, UdpDatagram | TcpSegment):
        return value.emit(TESTER, DUT)
    assert isinstance(value, EthernetFrame | ArpPacket | Ipv4Header | Ipv4Packet | IcmpMessage)
    return value.emit()


def lenient(name: str) -> str:
    """The parser that skips checksums, where there is one."""
    unchecked = name.removesuffix(" unchecked") + " unchecked"
    return unchecked if unchecked in PARSERS else name


def parse_or_refuse(name: str, data: bytes) -> None:
    """Parse: a WireError of this layer is a refusal, any other exception fails the test.
    A value must emit back to bytes that parse to the same value."""
    try:
        value = PARSERS[name](data)
    except WireError as error:
        assert name.startswith(error.reason.split(".")[0]), error.reason
        return
    if "options" not in name:
        assert PARSERS[lenient(name)](emitted(value)) == value


@THOROUGH
@given(st.sampled_from(sorted(PARSERS)), st.binary(max_size=80))
def test_arbitrary_bytes_parse_or_raise_wire_error(name: str, data: bytes) -> None:
    parse_or_refuse(name, data)


VALID = {
    "ethernet": ethernet_frames,
    "arp": arp_packets,
    "ipv4": ipv4_packets,
    "icmp": icmp_messages,
    "udp": udp_datagrams,
    "tcp": tcp_segments,
}


@THOROUGH
@given(st.sampled_from(sorted(VALID)), st.data())
def test_corrupted_or_truncated_packets_parse_or_raise_wire_error(
    name: str, data: st.DataObject
) -> None:
    wire = bytearray(emitted(data.draw(VALID[name])))
    if data.draw(st.booleans(), label="truncate"):
        del wire[data.draw(st.integers(0, len(wire)), label="cut at") :]
    else:
        position = data.draw(st.integers(0, len(wire) - 1), label="position")
        wire[position] = data.draw(u8, label="new byte")
    for parser in PARSERS:
        if parser.startswith(name) and "options" not in parser:
            parse_or_refuse(parser, bytes(wire))
