"""A TCP connection played by the tester, with sequence numbers relative to the ISNs.

`seq` and `ack` arguments are relative: 0 is the ISN, so the first data byte after the
SYN is 1, as packetdrill and Wireshark count them. The flow tracks `snd_nxt` (tester) and
`rcv_nxt` (what the tester has seen of the DUT) as relative numbers too.
"""

from dataclasses import dataclass, field

from scapy.layers.inet import IP, TCP
from scapy.packet import Packet, Raw

from conformance.errors import HarnessError
from conformance.lab.addressing import Host
from conformance.testbench.bench import Received, Testbench

MOD = 1 << 32


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

    def connect(self, *, within: float = 1.0) -> Received:
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
