"""The wire for user-space stacks: a bare TAP device in a silent namespace, with the
tester on the kernel side through a packet socket."""

import os
import select
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from conformance.lab.netns import Lab
from conformance.wire.packet_socket import PacketSocketWire
from tests.suite_runner import privileged

pytestmark = privileged


def frame(payload: bytes) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(dport=9) / payload)


def readable(fd: int, timeout: float) -> bool:
    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready)


@pytest.fixture
def wire() -> Iterator[tuple[int, PacketSocketWire]]:
    lab = Lab.create()
    try:
        stack_fd, ifname = lab.add_bare_tap()
        packet_wire = PacketSocketWire(lab, ifname)
        try:
            yield stack_fd, packet_wire
        finally:
            packet_wire.close()
    finally:
        lab.remove()


def test_frames_cross_both_ways_and_the_tester_does_not_see_its_own(
    wire: tuple[int, PacketSocketWire]
) -> None:
    stack_fd, packet_wire = wire
    os.write(stack_fd, frame(b"from the stack"))
    assert readable(packet_wire.fileno(), 1.0)
    assert packet_wire.read_frame() == frame(b"from the stack")

    packet_wire.write_frame(frame(b"from the tester"))
    assert readable(stack_fd, 1.0)
    assert os.read(stack_fd, 65536) == frame(b"from the tester")
    # The socket's copy of its own frame (PACKET_OUTGOING) is skipped.
    assert packet_wire.read_frame() is None


def test_the_kernel_stays_silent_on_a_bare_tap(wire: tuple[int, PacketSocketWire]) -> None:
    stack_fd, packet_wire = wire
    # An ARP request for the stack's address and a datagram to it: the kernel, which
    # has no address here, answers neither (a bounded quiet window).
    arp = bytes(Ether(src="02:00:00:00:00:02", dst="ff:ff:ff:ff:ff:ff")
                / ARP(op=1, hwsrc="02:00:00:00:00:02", psrc="192.0.2.2", pdst="192.0.2.1"))
    for sent in (arp, frame(b"to nobody")):
        packet_wire.write_frame(sent)
        assert readable(stack_fd, 1.0)
        assert os.read(stack_fd, 65536)[: len(sent)] == sent
    assert not readable(stack_fd, 0.3), "the kernel sent something on a bare TAP"
