"""Key fields of a frame the DUT sent: relative sequence numbers, window, TTL, options."""

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from conformance.testbench.observed import key_fields, without_choices
from conformance.wire.capture import WireFrame

DUT, TESTER = "192.0.2.1", "192.0.2.2"
DUT_ISN, TESTER_ISN = 3_000_000_000, 1_000_000
LINK = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def frame(number: int, packet: Packet) -> WireFrame:
    sender = "dut" if packet[IP].src == DUT else "tester"
    return WireFrame(number, sender, bytes(LINK / packet), 0, 0)


def built(packet: Packet) -> Packet:
    """The packet as the capture dissects it, lengths and checksums filled in."""
    return Ether(bytes(LINK / packet))


def from_dut(flags: str, seq: int, ack: int = 0, **fields: object) -> Packet:
    return IP(src=DUT, dst=TESTER, ttl=64) / TCP(sport=40000, dport=5000, flags=flags,
                                               seq=seq, ack=ack, **fields)


def from_tester(flags: str, seq: int, ack: int = 0) -> Packet:
    return IP(src=TESTER, dst=DUT) / TCP(sport=5000, dport=40000, flags=flags, seq=seq, ack=ack)


def test_sequence_numbers_are_relative_to_each_sides_isn() -> None:
    syn = from_dut("S", DUT_ISN, options=[("MSS", 1460), ("SAckOK", b""),
                                          ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)])
    synack = from_tester("SA", TESTER_ISN, DUT_ISN + 1)
    data = from_dut("PA", DUT_ISN + 1, TESTER_ISN + 1, window=501) / Raw(b"x" * 10)
    frames = [frame(1, syn), frame(2, synack), frame(3, data)]
    assert key_fields(built(syn), frames[:1]) == {
        "src": DUT, "dst": TESTER, "df": False, "ip_len": 60, "ttl": 64,
        "sport": "ephemeral", "dport": 5000, "flags": "S", "seq": 0, "ack": None,
        "window": 8192, "options": ["MSS", "SAckOK", "Timestamp", "NOP", "WScale"],
        "payload": 0}
    fields = key_fields(built(data), frames)
    assert (fields["seq"], fields["ack"], fields["window"], fields["payload"]) == (1, 1, 501, 10)


def test_sequence_numbers_wrap_and_the_latest_syn_counts() -> None:
    old_syn, new_syn = from_tester("S", TESTER_ISN), from_tester("S", 2**32 - 5)
    synack = from_dut("SA", 7, 2**32 - 4)
    fields = key_fields(built(synack), [frame(1, old_syn), frame(2, new_syn), frame(3, synack)])
    assert (fields["seq"], fields["ack"]) == (0, 1)


def test_without_a_syn_the_numbers_stay_absolute() -> None:
    reset = from_dut("RA", 0, TESTER_ISN + 5)
    fields = key_fields(built(reset), [frame(1, from_tester("A", TESTER_ISN)), frame(2, reset)])
    assert (fields["seq"], fields["ack"]) == (0, TESTER_ISN + 5)


def test_other_connections_syns_do_not_count() -> None:
    elsewhere = IP(src=TESTER, dst=DUT) / TCP(sport=5001, dport=40000, flags="S", seq=99)
    ack = from_dut("A", DUT_ISN + 1, TESTER_ISN + 1)
    assert key_fields(built(ack), [frame(1, elsewhere), frame(2, ack)])["ack"] == TESTER_ISN + 1


def test_udp_keeps_its_fields() -> None:
    datagram = IP(src=DUT, dst=TESTER, ttl=3) / UDP(sport=50000, dport=9) / Raw(b"abc")
    assert key_fields(built(datagram)) == {
        "src": DUT, "dst": TESTER, "df": False, "ip_len": 31, "ttl": 3,
        "sport": "ephemeral", "dport": 9, "payload": 3}


def test_frame_choices_remove_only_their_aspect() -> None:
    syn = {"flags": "S", "ip_len": 60, "options": ["MSS", "SAckOK"], "window": 64240}
    data = {"flags": "PA", "ip_len": 1040, "options": [], "window": 64240}
    assert without_choices(syn, ["frame.syn_options"]) == {"flags": "S", "window": 64240}
    assert without_choices(data, ["frame.syn_options"]) == data
    assert without_choices(data, ["frame.psh", "frame.window", "other"]) == {
        "flags": "A", "ip_len": 1040, "options": []}
    reset = {"flags": "RA", "seq": 7, "ack": 12, "window": 0}
    assert without_choices(reset, ["frame.rst_ack"]) == {"flags": "R", "seq": 7, "ack": None,
                                                          "window": 0}
    assert without_choices(data, ["frame.rst_ack"]) == data
    datagram = {"df": False, "ttl": 255, "ip_len": 31}
    assert without_choices(datagram, ["frame.ttl", "frame.df"]) == {"ip_len": 31}
