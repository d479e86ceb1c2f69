"""Fragments by byte range, and reassembly of fragments, checked against scapy's own."""

import pytest
from scapy.layers.inet import IP, UDP, defragment
from scapy.packet import Raw

from conformance.testbench.fragments import FragmentError, fragments, reassemble, split

DATAGRAM = IP(src="192.0.2.2", dst="192.0.2.1", id=77) / UDP(sport=4000, dport=7) / Raw(
    bytes(range(40)))  # 48 payload bytes after the IP header


def test_in_order_fragments_carry_the_ranges_with_mf_on_all_but_the_last() -> None:
    pieces = fragments(DATAGRAM, [(0, 16), (16, 48)])
    assert [(p.frag, bool(p.flags.MF), p.len) for p in pieces] == [(0, True, 36), (2, False, 52)]
    assert all(p.id == 77 and p.proto == 17 for p in pieces)
    assert bytes(pieces[1].payload) == bytes(DATAGRAM[UDP])[16:]


def test_fragments_reassemble_to_the_datagram_in_any_order() -> None:
    pieces = split(DATAGRAM, 8)
    assert len(pieces) == 6
    whole = reassemble(list(reversed(pieces)))
    assert bytes(whole[UDP]) == bytes(IP(bytes(DATAGRAM))[UDP])
    assert whole[UDP].chksum == IP(bytes(DATAGRAM))[UDP].chksum
    scapy_whole = defragment([IP(bytes(p)) for p in pieces])[0]
    assert bytes(scapy_whole.payload) == bytes(whole.payload)


def test_overlapping_ranges_are_allowed() -> None:
    pieces = fragments(DATAGRAM, [(0, 24), (8, 48)])
    assert [p.frag for p in pieces] == [0, 1]
    assert bytes(reassemble(pieces).payload) == bytes(IP(bytes(DATAGRAM)).payload)


@pytest.mark.parametrize("ranges", [[(4, 16)], [(0, 12), (12, 48)], [(0, 50)]])
def test_impossible_ranges_are_refused(ranges: list[tuple[int, int]]) -> None:
    with pytest.raises(FragmentError):
        fragments(DATAGRAM, ranges)


def test_a_hole_or_a_missing_last_fragment_does_not_reassemble() -> None:
    with pytest.raises(FragmentError, match="hole"):
        reassemble(fragments(DATAGRAM, [(0, 8), (16, 48)]))
    with pytest.raises(FragmentError, match="last"):
        reassemble(fragments(DATAGRAM, [(0, 8), (8, 16)]))
