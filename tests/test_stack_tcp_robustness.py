"""Stack TCP never crashes on what comes from the wire (ARCHITECTURE principle 6):
random segments, options included, against a listener and connections in several
states. Each is dropped with a reason or handled; the stack stays consistent."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from stack.tcp.state import State
from tests.stack_link import DUT_IP, PEER_IP
from tests.stack_tcp import PEER_PORT, established_passive, listening

segments = st.lists(
    st.tuples(
        st.integers(0, 0xFF),  # flags
        st.integers(0, (1 << 32) - 1),  # seq offset from the peer's SND.NXT
        st.integers(0, (1 << 32) - 1),  # ack offset from the peer's RCV.NXT
        st.integers(0, 0xFFFF),  # window
        st.binary(max_size=40).map(lambda raw: raw[: len(raw) - len(raw) % 4]),  # options
        st.binary(max_size=64),  # payload
        st.integers(0, 0xFFFF),  # urgent pointer
    ),
    min_size=1, max_size=12,
)
near = st.sampled_from([0, 1, -1, 2, 1000, -1000])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments=segments, near_seq=near, near_ack=near, close_first=st.booleans())
def test_random_segments_never_break_the_stack(
    segments: list[tuple[int, int, int, int, bytes, bytes, int]], near_seq: int,
    near_ack: int, close_first: bool,
) -> None:
    link, peer, handle = established_passive()
    listening(link, port=6000)
    if close_first:
        link.api.close(handle, link.now)
    for index, (flags, seq, ack, window, options, payload, urgent) in enumerate(segments):
        # Half the segments close to the live sequence numbers, half anywhere.
        if index % 2:
            seq, ack = peer.snd_nxt + near_seq, peer.rcv_nxt + near_ack
        tcp = TCP(sport=PEER_PORT, dport=5000 if index % 3 else 6000, flags=flags,
                  seq=seq % (1 << 32), ack=ack % (1 << 32), window=window, urgptr=urgent,
                  dataofs=5 + len(options) // 4)
        link.inject(IP(src=PEER_IP, dst=DUT_IP) / tcp / Raw(options + payload))
        link.advance(50_000_000)
        peer.received()
    link.advance(200 * 1_000_000_000)
    # A connection that reached CLOSED is gone from the demultiplexing table.
    assert all(sock.state is not State.CLOSED for sock in link.host.tcp.connections.values())
    snapshot = link.api.snapshot(link.now)
    assert all("state" in sock for sock in snapshot["sockets"])
