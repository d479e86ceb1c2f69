"""A TCP connection played by the tester, with sequence numbers relative to the ISNs.

`seq` and `ack` arguments are relative: 0 is the ISN, so the first data byte after the
SYN is 1, as packetdrill and Wireshark count them. The flow tracks `snd_nxt` (tester) and
`rcv_nxt` (what the tester has seen of the DUT) as relative numbers too.

The tester is a sender that obeys the DUT: the flow reads every segment the DUT sends on
the connection (claimed by an expectation or not) for the MSS of its SYN or SYN-ACK, the
highest acknowledgement and the window it advertises, and `send_data` segments by that
MSS and waits for that window. The tester offers no window scaling, so the DUT's window
field is its window, unscaled.
"""

import time
from dataclasses import dataclass, field

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from conformance.errors import HarnessError
from conformance.lab.addressing import Host
from conformance.testbench.bench import ANSWER_S, ExpectationFailed, Received, Testbench

MOD = 1 << 32
# RFC 9293 3.7.1 (MUST-15): without an MSS option in its SYN, a peer's MSS is 536.
DEFAULT_MSS = 536


@dataclass
class TcpFlow:
    tb: Testbench
    source: Host
    sport: int
    dport: int
    isn: int = 1_000_000
    mss: int = 1460
    window: int = 65535
    source_ip: str = ""
    dut_isn: int | None = None
    snd_nxt: int = 0  # relative to our ISN
    rcv_nxt: int = 0  # relative to the DUT's ISN
    received: list[Received] = field(default_factory=list)
    # What the DUT told the tester, read off the wire by `track`:
    dut_mss: int = DEFAULT_MSS  # the MSS option of its SYN or SYN-ACK
    snd_una: int = 0  # the highest acknowledgement, relative to our ISN
    snd_wnd: int = 0  # its window, from the latest segment allowed to set it
    max_snd_wnd: int = 0  # the largest window it offered
    _wl1: int = 0  # SND.WL1 and SND.WL2 (RFC 9293 3.10.7.4), relative
    _wl2: int = 0
    _tracked: int = 0  # frames of the capture read by `track`

    def __post_init__(self) -> None:
        self.source_ip = self.source_ip or self.source.ip

    # ---- building and sending ----------------------------------------------------------

    def segment(
        self,
        flags: str = "A",
        data: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        options: list[tuple[str, object]] | None = None,
        window: int | None = None,
    ) -> Packet:
        """A segment from the tester; `seq`/`ack` relative, defaulting to snd_nxt/rcv_nxt."""
        relative_seq = self.snd_nxt if seq is None else seq
        tcp = TCP(
            sport=self.sport,
            dport=self.dport,
            flags=flags,
            seq=(self.isn + relative_seq) % MOD,
            window=self.window if window is None else window,
            options=options or [],
        )
        if "A" in flags:
            relative_ack = self.rcv_nxt if ack is None else ack
            tcp.ack = (self._dut_isn() + relative_ack) % MOD
        packet = IP(src=self.source_ip, dst=self.tb.dut_host.ip) / tcp
        return packet / Raw(data) if data else packet

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
            self.snd_nxt += len(data) + ("S" in flags) + ("F" in flags)
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

    def usable_window(self) -> int:
        """Octets the DUT's window still has room for: SND.UNA + SND.WND - SND.NXT."""
        return self.snd_una + self.snd_wnd - self.snd_nxt

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
            if (tcp.sport, tcp.dport) != (self.dport, self.sport) or tcp.flags.R:
                continue
            if tcp.flags.S:
                mss = dict(tcp.options).get("MSS")
                self.dut_mss = int(mss) if isinstance(mss, int) and mss > 0 else DEFAULT_MSS
            if not tcp.flags.A or self.dut_isn is None:
                continue
            seg_seq = int(tcp.seq - self.dut_isn) % MOD
            seg_ack = int(tcp.ack - self.isn) % MOD
            if not self.snd_una <= seg_ack <= self.snd_nxt:
                continue
            self.snd_una = seg_ack
            if self._wl1 < seg_seq or (self._wl1 == seg_seq and self._wl2 <= seg_ack):
                self.snd_wnd, self._wl1, self._wl2 = int(tcp.window), seg_seq, seg_ack
                self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)

    def connect(self, *, within: float = ANSWER_S) -> Received:
        """Three-way handshake, tester as active opener. Returns the SYN-ACK."""
        self.send("S", options=[("MSS", self.mss)], why=f"SYN from port {self.sport}")
        synack = self.expect_synack(within=within)
        self.send("A", why="ACK completing the handshake")
        return synack

    def expect_synack(self, *, within: float) -> Received:
        synack = self.expect("SA", ack=self.snd_nxt, within=within, why="SYN-ACK")
        return synack

    # ---- expectations ------------------------------------------------------------------

    def template(self, flags: str | None = None, *, seq: int | None = None,
                 ack: int | None = None) -> Packet:
        tcp = TCP(sport=self.dport, dport=self.sport)
        if flags is not None:
            tcp.flags = flags
        if seq is not None:
            tcp.seq = (self._dut_isn() + seq) % MOD
        if ack is not None:
            tcp.ack = (self.isn + ack) % MOD
        return IP(src=self.tb.dut_host.ip, dst=self.source_ip) / tcp

    def expect(
        self,
        flags: str | None = None,
        *,
        seq: int | None = None,
        ack: int | None = None,
        within: float,
        why: str = "",
    ) -> Received:
        """Wait for a segment of this connection from the DUT; learns the DUT's ISN from a
        SYN and advances rcv_nxt past data and FIN that arrive in order."""
        received = self.tb.expect(self.template(flags, seq=seq, ack=ack), within=within,
                                  why=why)
        tcp = received[TCP]
        if tcp.flags.S:
            self.dut_isn = tcp.seq
            self.rcv_nxt = 1
        else:
            start = self.relative_seq(received)
            end = start + len(tcp.payload) + (1 if tcp.flags.F else 0)
            if start <= self.rcv_nxt < end:
                self.rcv_nxt = end
        self.received.append(received)
        self.track()
        return received

    def expect_none(self, flags: str | None = None, *, why: str, within: float = 0.0) -> None:
        """No segment of this connection (with `flags`) before the DUT answers a barrier;
        `within` is a quiet window first, for what a timer must not send."""
        self.tb.expect_none(self.template(flags), within=within, why=why)

    def relative_seq(self, received: Received) -> int:
        return int(received[TCP].seq - self._dut_isn()) % MOD

    def relative_ack(self, received: Received) -> int:
        return int(received[TCP].ack - self.isn) % MOD

    def _dut_isn(self) -> int:
        if self.dut_isn is None:
            raise HarnessError("the case used the DUT's ISN before any SYN from the DUT was seen")
        return self.dut_isn
