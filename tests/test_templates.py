"""Templates: set fields must match, unset fields match anything, diffs name the field."""

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from conformance.testbench.templates import describe, diff, matches


def frame(*layers: object) -> Ether:
    packet = Ether()
    for layer in layers:
        packet = packet / layer  # type: ignore[operator]
    return Ether(bytes(packet))


def test_unset_fields_match_anything() -> None:
    got = frame(IP(src="192.0.2.1", dst="192.0.2.2"), UDP(sport=1234, dport=9), Raw(b"hi"))
    assert matches(IP() / UDP(), got)
    assert matches(IP(dst="192.0.2.2") / UDP(dport=9), got)


def test_a_set_field_that_differs_is_named_with_both_values() -> None:
    got = frame(IP(src="192.0.2.1", dst="192.0.2.2"), UDP(sport=1234, dport=7))
    differences = diff(IP(dst="192.0.2.2") / UDP(dport=9), got)
    assert [str(d) for d in differences] == ["UDP.dport: want 9, got 7"]


def test_a_missing_layer_is_a_difference() -> None:
    got = frame(IP(dst="192.0.2.2"), UDP(dport=9))
    assert [d.field for d in diff(IP() / TCP(dport=9), got)] == ["TCP"]


def test_tcp_control_flags_must_match_exactly() -> None:
    got = frame(IP(), TCP(flags="SA"))
    assert matches(TCP(flags="SA"), got)
    assert not matches(TCP(flags="S"), got)
    assert not matches(TCP(flags="PA"), frame(IP(), TCP(flags="A")))


def test_ecn_flags_are_judged_only_when_the_template_names_them() -> None:
    # An ECN-setup SYN (RFC 3168 6.1.1) is a SYN: ECE and CWR set, nothing else.
    ecn_setup_syn = frame(IP(), TCP(flags="SEC"))
    assert matches(TCP(flags="S"), ecn_setup_syn)
    assert not matches(TCP(flags="SA"), ecn_setup_syn)
    assert matches(TCP(flags="SEC"), ecn_setup_syn)
    assert not matches(TCP(flags="SE"), ecn_setup_syn)
    assert not matches(TCP(flags="SE"), frame(IP(), TCP(flags="S")))


def test_payload_is_compared_when_given() -> None:
    got = frame(IP(), UDP(), Raw(b"ping"))
    assert matches(UDP() / Raw(b"ping"), got)
    assert [d.field for d in diff(UDP() / Raw(b"pong"), got)] == ["payload"]


def test_scapy_copied_defaults_do_not_constrain() -> None:
    # IP() carries options=[] in .fields; a frame with IP options must still match.
    got = frame(IP(options=[b"\x01\x01\x01\x00"]), TCP())
    assert matches(IP() / TCP(), got)
    assert describe(IP(src="192.0.2.1") / TCP(flags="SA")) == "IP(src=192.0.2.1)/TCP(flags=SA)"


def test_outer_ip_is_matched_not_the_quoted_one() -> None:
    quoted = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(dport=9)
    got = frame(IP(src="192.0.2.2", dst="192.0.2.1"), ICMP(type=3, code=3),
                Raw(bytes(quoted)[:28]))
    assert matches(IP(src="192.0.2.2") / ICMP(type=3, code=3), got)
