"""What a frame the DUT sent is recorded as (`expect.N` observations): its key fields.

The fields are stable across runs and targets, so that two runs compare field by field,
and they tell apart any two segments that differ in what a TCP peer acts on: flags,
sequence and acknowledgement numbers, window, options, length, TTL.

Sequence numbers are relative, as packetdrill and Wireshark count them: `seq` to the
ISN of the DUT's side of the connection, `ack` to the ISN of the tester's side. An ISN
is the sequence number of the latest SYN each side sent on that connection (same
addresses and ports) up to the frame itself, found in the capture. Where no SYN came from a
side (an RST answering a segment to a closed port, say) the number stays absolute: it
then derives from the tester's own, fixed, numbers and compares all the same.

Some fields are the sender's to choose in any segment. A case names those it leaves
open with the `choices` marker (`@choices("frame.window")`); `conformance compare` then
counts frames that differ only there as an allowed difference, never as the same.
FRAME_CHOICES lists them, each with what it removes from a frame's key fields.
"""

import struct
from collections.abc import Callable, Sequence
from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP
from scapy.packet import Packet

from conformance.lab.addressing import stable_port
from conformance.wire.capture import WireFrame

MOD = 1 << 32
ETH_P_IP = 0x0800
IPPROTO_TCP = 6
TCP_SYN = 0x02

Endpoints = tuple[str, int, str, int]  # source address and port, destination address and port


def _syn_sequence(data: bytes) -> tuple[Endpoints, int] | None:
    """The endpoints and sequence number of a TCP SYN in an Ethernet frame, else None."""
    if len(data) < 34 or struct.unpack("!H", data[12:14])[0] != ETH_P_IP:
        return None
    ip = data[14:]
    header_length = (ip[0] & 0x0F) * 4
    fragment_offset = struct.unpack("!H", ip[6:8])[0] & 0x1FFF
    if ip[9] != IPPROTO_TCP or fragment_offset or len(ip) < header_length + 14:
        return None
    tcp = ip[header_length:]
    if not tcp[13] & TCP_SYN:
        return None
    sport, dport, seq = struct.unpack("!HHI", tcp[:8])
    source, destination = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
    return (source, sport, destination, dport), seq


def initial_sequence_numbers(frames: Sequence[WireFrame], dut: Endpoints) -> tuple[
        int | None, int | None]:
    """The ISNs of the DUT's side (`dut` is its segment's endpoints) and of the
    tester's side of one connection: the latest SYN each sent among `frames`."""
    tester = (dut[2], dut[3], dut[0], dut[1])
    found: dict[Endpoints, int] = {}
    for frame in reversed(frames):
        syn = _syn_sequence(frame.data)
        if syn is not None and syn[0] in (dut, tester) and syn[0] not in found:
            found[syn[0]] = syn[1]
            if len(found) == 2:
                break
    return found.get(dut), found.get(tester)


def _relative(number: int, isn: int | None) -> int:
    return number if isn is None else (number - isn) % MOD


def option_kinds(tcp: TCP) -> list[str]:
    """The TCP options' kinds in order, by scapy's names ("MSS", "NOP", ...), not values."""
    return [str(kind) for kind, _ in tcp.options]


def key_fields(packet: Packet, frames: Sequence[WireFrame] = ()) -> dict[str, Any]:
    """The fields of a frame the DUT sent worth recording as an observation, stable
    across runs and targets. `frames` (the capture up to and including the frame) give
    the ISNs; without them sequence numbers stay absolute."""
    fields: dict[str, Any] = {}
    if IP in packet:
        ip = packet[IP]
        fields.update(src=ip.src, dst=ip.dst, df=bool(ip.flags.DF), ip_len=ip.len, ttl=ip.ttl)
    if TCP in packet:
        tcp = packet[TCP]
        dut_isn, tester_isn = initial_sequence_numbers(
            frames, (packet[IP].src, tcp.sport, packet[IP].dst, tcp.dport))
        fields.update(
            sport=stable_port(tcp.sport), dport=tcp.dport, flags=str(tcp.flags),
            seq=_relative(tcp.seq, dut_isn),
            # The acknowledgement field means nothing without ACK (RFC 9293 3.1).
            ack=_relative(tcp.ack, tester_isn) if tcp.flags.A else None,
            window=tcp.window, options=option_kinds(tcp), payload=len(tcp.payload),
        )
    elif UDP in packet:
        udp = packet[UDP]
        fields.update(sport=stable_port(udp.sport), dport=udp.dport, payload=len(udp.payload))
    elif ICMP in packet:
        fields.update(icmp_type=packet[ICMP].type, icmp_code=packet[ICMP].code)
    elif ARP in packet:
        fields.update(arp_op=packet[ARP].op, arp_pdst=packet[ARP].pdst)
    return fields


def _without_psh(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "flags": str(fields.get("flags", "")).replace("P", "")}


def _without_syn_options(fields: dict[str, Any]) -> dict[str, Any]:
    if "S" not in str(fields.get("flags", "")):
        return fields
    return {name: value for name, value in fields.items() if name not in ("options", "ip_len")}


def _without_field(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def without(fields: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in fields.items() if key != name}
    return without


def _without_rst_ack(fields: dict[str, Any]) -> dict[str, Any]:
    flags = str(fields.get("flags", ""))
    if "R" not in flags:
        return fields
    return {**fields, "flags": flags.replace("A", ""), "ack": None}


# A frame aspect the RFCs leave to the sender -> its key fields without that aspect.
FRAME_CHOICES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    # RFC 9293 3.9.1, RFC 1122 4.2.2.2: where PSH goes is the sender's choice; PSH is no
    # record marker, and a sender may collapse successive pushes.
    "psh": _without_psh,
    # RFC 9293 3.8.6: the receiver manages its window; how much it offers is its choice.
    "window": _without_field("window"),
    # RFC 9293 3.7.1 (MSS), RFC 7323, RFC 2018: the options a SYN offers beyond MSS, and
    # the header length that follows from them, are the opener's choice.
    "syn_options": _without_syn_options,
    # RFC 9293 3.5.2: a reset answering a segment with ACK takes its SEQ from SEG.ACK, and
    # that SEQ is what makes it acceptable (3.10.7.4); an ACK bit beside it (lwIP's
    # RST,ACK) changes nothing for the receiver, which checks RST before ACK.
    "rst_ack": _without_rst_ack,
    # RFC 1122 3.2.1.7: the TTL a host sends with is its own (configurable, not zero).
    "ttl": _without_field("ttl"),
    # RFC 1191 3, RFC 9293 3.7.2: path MTU discovery, and with it DF, is the host's to use.
    "df": _without_field("df"),
}
FRAME_CHOICE_PREFIX = "frame."
FRAME_CHOICE_NAMES = tuple(FRAME_CHOICE_PREFIX + name for name in FRAME_CHOICES)
# Open in every case: the cases that check TTL or DF judge them in their verdicts.
EVERY_CASE_CHOICES = ("frame.ttl", "frame.df")


def without_choices(fields: dict[str, Any], choices: Sequence[str]) -> dict[str, Any]:
    """A frame's key fields without the aspects that `choices` (`frame.psh`, ...) name."""
    for choice in choices:
        remove = FRAME_CHOICES.get(choice.removeprefix(FRAME_CHOICE_PREFIX))
        if choice.startswith(FRAME_CHOICE_PREFIX) and remove is not None:
            fields = remove(fields)
    return fields
