"""A TCP connection played by the tester on the lab's wire, with sequence numbers
relative to the ISNs (kept by `tcp_sequence.TcpSequence`, which does no I/O).

The tester is a sender that obeys the DUT: the flow reads every segment the DUT sends on
the connection (claimed by an expectation or not) for the MSS of its SYN or SYN-ACK, the
highest acknowledgement and the window it advertises, and `send_data` segments by that
MSS and waits for that window. The tester offers no window scaling, so the DUT's window
field is its window, unscaled.
"""

import time

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from conformance.lab.addressing import Host
from conformance.testbench.bench import ANSWER_S, ExpectationFailed, Received, Testbench
from conformance.testbench.tcp_sequence import TcpSequence
from conformance.wire.capture import WireFrame


class TcpFlow(TcpSequence):
    """The tester's side of a connection on the lab's wire: `TcpSequence`'s bookkeeping,
    with segments sent through the testbench and the DUT's read off its capture."""

    def __init__(self, tb: Testbench, source: Host, *, sport: int, dport: int,
                 isn: int = 1_000_000, mss: int = 1460, window: int = 65535,
                 source_ip: str = "", dut_isn: int | None = None) -> None:
        super().__init__(source_ip or source.ip, tb.dut_host.ip, sport, dport, isn=isn,
                         mss=mss, window=window, dut_isn=dut_isn)
        self.tb = tb
        self.source = source
        self.received: list[Received] = []
        self._tracked = 0  # frames of the capture read by `track`

    # ---- building and sending ----------------------------------------------------------

    def send(
        self,
        flags: str = "A",
        data: bytes = b"",
        *,
        why: str,
        seq: int | None = None,
        ack: int | None = None,
        options: list[tuple[str, object]] | None = None,
        advance: bool = True,
        window: int | None = None,
    ) -> Packet:
        """Send a segment; unless it is a retransmission (`advance=False` or an explicit
        `seq`), snd_nxt moves past its data and SYN/FIN. `window` overrides the flow's."""
        packet = self.segment(flags, data, seq=seq, ack=ack, options=options, window=window)
        self.tb.send(packet, why)
        if advance and seq is None:
            self.sent(flags, data)
        return packet

    def send_data(self, data: bytes, *, why: str, within: float = ANSWER_S,
                  push: bool = True) -> None:
        """Send `data` as a conformant sender: in segments of at most the DUT's MSS, each
        only once the window the DUT advertised has room for it (waiting up to `within`
        for each opening, for the DUT's ACKs or window updates). The last carries PSH
        unless `push` is False. A window that stays closed fails the case: the DUT did not
        take data its application was to read."""
        offset = 0
        while offset < len(data):
            wanted = min(self.dut_mss, len(data) - offset)
            size = self.wait_for_window(wanted, within=within,
                                        why=f"{why}: octets {offset + 1}-{offset + wanted}")
            chunk = data[offset:offset + size]
            last = offset + size == len(data)
            self.send("PA" if last and push else "A", chunk,
                      why=f"{why}: octets {offset + 1}-{offset + size} of {len(data)}")
            offset += size

    def wait_for_window(self, wanted: int, *, within: float, why: str) -> int:
        """How many octets (up to `wanted`) the tester may send now, waiting up to `within`
        for the DUT's window to allow them. The sender's side of silly window avoidance
        (RFC 9293 3.8.6.2.1): the whole of `wanted`, or at least half the largest window
        the DUT offered."""
        deadline = time.monotonic_ns() + int(within * 1e9)

        def sendable() -> int:
            self.track()
            usable = self.usable_window()
            if usable >= wanted:
                return wanted
            return usable if usable > 0 and usable >= self.max_snd_wnd // 2 else 0

        if not self.tb.capture.wait(lambda: sendable() > 0, deadline):
            raise ExpectationFailed(
                f"the DUT's window stayed too small for {wanted} octets for {within}s ({why}): "
                f"it acknowledged {self.snd_una}, window {self.snd_wnd}, the tester has sent "
                f"up to {self.snd_nxt}")
        return sendable()

    def track(self) -> None:
        """Read the DUT's segments of this connection that arrived since the last call:
        the MSS of its SYN or SYN-ACK, and its acknowledgement and window, updated as RFC
        9293 3.10.7.4 has a sender do (SND.WL1, SND.WL2)."""
        frames = self.tb.capture.frames
        while self._tracked < len(frames):
            frame = frames[self._tracked]
            self._tracked += 1
            if frame.sender != "dut":
                continue
            packet = Ether(frame.data)
            if TCP not in packet or IP not in packet or packet[IP].dst != self.source_ip:
                continue
            tcp = packet[TCP]
            if (tcp.sport, tcp.dport) == (self.dport, self.sport):
                self.learn(tcp)

    def connect(self, *, within: float = ANSWER_S) -> Received:
        """Three-way handshake, tester as active opener. Returns the SYN-ACK."""
        self.send("S", options=[("MSS", self.mss)], why=f"SYN from port {self.sport}")
        synack = self.expect_synack(within=within)
        self.send("A", why="ACK completing the handshake")
        return synack

    def expect_synack(self, *, within: float, since: WireFrame | None = None) -> Received:
        """The DUT's SYN-ACK; with `since`, looked for from that frame on, whatever was
        matched after it (a DUT may answer several connections' SYNs in any order)."""
        return self.expect("SA", ack=self.snd_nxt, within=within, why="SYN-ACK", since=since)

    # ---- expectations ------------------------------------------------------------------

    def expect(
        self,
        flags: str | None = None,
        *,
        seq: int | None = None,
        ack: int | None = None,
        within: float,
        why: str = "",
        since: WireFrame | None = None,
        observed: bool = True,
    ) -> Received:
        """Wait for a segment of this connection from the DUT; learns the DUT's ISN from a
        SYN and advances rcv_nxt past data and FIN that arrive in order. `since` and
        `observed` as for Testbench.expect."""
        received = self.tb.expect(self.template(flags, seq=seq, ack=ack), within=within,
                                  why=why, since=since, observed=observed)
        self.arrived(received)
        self.received.append(received)
        self.track()
        return received

    def expect_none(self, flags: str | None = None, *, why: str, within: float = 0.0) -> None:
        """No segment of this connection (with `flags`) before the DUT answers a barrier;
        `within` is a quiet window first, for what a timer must not send."""
        self.tb.expect_none(self.template(flags), within=within, why=why)
