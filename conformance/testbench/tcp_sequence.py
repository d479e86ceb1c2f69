"""The bookkeeping of one side of a TCP connection, with sequence numbers relative to the
ISNs, and no I/O: it builds segments and learns from the peer's, and whoever holds it
puts them on a wire (`TcpFlow` on the lab's, a stack unit test on a virtual link).

`seq` and `ack` arguments are relative: 0 is the ISN, so the first data byte after the
SYN is 1, as packetdrill and Wireshark count them. `snd_nxt` (this side) and `rcv_nxt`
(what it has seen of the peer) are relative numbers too. From the peer's segments it
reads the MSS of its SYN or SYN-ACK, the highest acknowledgement and the window it
advertises; this side offers no window scaling, so that window is the peer's, unscaled.
"""

from dataclasses import dataclass
from typing import Any, Protocol

from scapy.layers.inet import IP, TCP
from scapy.packet import Packet, Raw

from conformance.errors import HarnessError

MOD = 1 << 32
# RFC 9293 3.7.1 (MUST-15): without an MSS option in its SYN, a peer's MSS is 536.
DEFAULT_MSS = 536


class Segment(Protocol):
    """A segment of the peer's: a scapy packet, or a frame an expectation matched."""

    def __getitem__(self, layer: type[Packet]) -> Any: ...


@dataclass
class TcpSequence:
    source_ip: str  # this side's address
    dut_ip: str  # the peer's address
    sport: int
    dport: int
    isn: int = 1_000_000
    mss: int = 1460
    window: int = 65535
    dut_isn: int | None = None
    snd_nxt: int = 0  # relative to our ISN
    rcv_nxt: int = 0  # relative to the peer's ISN
    # What the peer told this side, read from its segments by `learn`:
    dut_mss: int = DEFAULT_MSS  # the MSS option of its SYN or SYN-ACK
    snd_una: int = 0  # the highest acknowledgement, relative to our ISN
    snd_wnd: int = 0  # its window, from the latest segment allowed to set it
    max_snd_wnd: int = 0  # the largest window it offered
    _wl1: int = 0  # SND.WL1 and SND.WL2 (RFC 9293 3.10.7.4), relative
    _wl2: int = 0

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
        """A segment from this side; `seq`/`ack` relative, defaulting to snd_nxt/rcv_nxt."""
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
        packet = IP(src=self.source_ip, dst=self.dut_ip) / tcp
        return packet / Raw(data) if data else packet

    def sent(self, flags: str, data: bytes) -> None:
        """A segment left at snd_nxt: snd_nxt moves past its data and SYN/FIN."""
        self.snd_nxt += len(data) + ("S" in flags) + ("F" in flags)

    def template(self, flags: str | None = None, *, seq: int | None = None,
                 ack: int | None = None) -> Packet:
        """A segment of this connection from the peer, `seq`/`ack` relative if given."""
        tcp = TCP(sport=self.dport, dport=self.sport)
        if flags is not None:
            tcp.flags = flags
        if seq is not None:
            tcp.seq = (self._dut_isn() + seq) % MOD
        if ack is not None:
            tcp.ack = (self.isn + ack) % MOD
        return IP(src=self.dut_ip, dst=self.source_ip) / tcp

    def arrived(self, segment: Segment) -> None:
        """A segment of the peer's that this side takes: a SYN gives the peer's ISN; data
        and FIN that arrive in order advance rcv_nxt."""
        tcp = segment[TCP]
        if tcp.flags.S:
            self.dut_isn = tcp.seq
            self.rcv_nxt = 1
            return
        start = self.relative_seq(segment)
        end = start + len(tcp.payload) + (1 if tcp.flags.F else 0)
        if start <= self.rcv_nxt < end:
            self.rcv_nxt = end

    def learn(self, segment: Segment) -> None:
        """What a segment of the peer's on this connection tells this side: the MSS of its
        SYN or SYN-ACK, and its acknowledgement and window, updated as RFC 9293 3.10.7.4
        has a sender do (SND.WL1, SND.WL2)."""
        tcp = segment[TCP]
        if tcp.flags.R:
            return
        if tcp.flags.S:
            mss = dict(tcp.options).get("MSS")
            self.dut_mss = int(mss) if isinstance(mss, int) and mss > 0 else DEFAULT_MSS
        if not tcp.flags.A or self.dut_isn is None:
            return
        seg_seq = int(tcp.seq - self.dut_isn) % MOD
        seg_ack = int(tcp.ack - self.isn) % MOD
        if not self.snd_una <= seg_ack <= self.snd_nxt:
            return
        self.snd_una = seg_ack
        if self._wl1 < seg_seq or (self._wl1 == seg_seq and self._wl2 <= seg_ack):
            self.snd_wnd, self._wl1, self._wl2 = int(tcp.window), seg_seq, seg_ack
            self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)

    def usable_window(self) -> int:
        """Octets the peer's window still has room for: SND.UNA + SND.WND - SND.NXT."""
        return self.snd_una + self.snd_wnd - self.snd_nxt

    def relative_seq(self, segment: Segment) -> int:
        return int(segment[TCP].seq - self._dut_isn()) % MOD

    def relative_ack(self, segment: Segment) -> int:
        return int(segment[TCP].ack - self.isn) % MOD

    def _dut_isn(self) -> int:
        if self.dut_isn is None:
            raise HarnessError("the case used the DUT's ISN before any SYN from the DUT was seen")
        return self.dut_isn
