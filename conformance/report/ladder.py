"""A case's frames as a ladder diagram: the tester's and the DUT's lanes, an arrow per
frame with its time, what it is (flags, sequence and acknowledgement numbers relative to
each side's first, length) and its packet comment; matched and missed expectations
marked; the DUT's calls on its lane. Headers are read here without scapy (fast, and
never fails on a malformed frame: what cannot be read is shown as raw)."""

import struct
from dataclasses import dataclass, field
from typing import Any

from conformance.evidence.pcapng import PcapFrame

TCP_FLAGS = "FSRPAUEC"
ROW_HEIGHT = 34
TOP = 50
LANE_TESTER = 170
LANE_DUT = 630
WIDTH = 980


@dataclass
class Rung:
    number: int
    sender: str  # tester or dut
    time_s: float
    label: str
    comment: str
    status: str  # matched, unexpected, unmatched, tester, barrier
    wireshark: str = ""  # Wireshark's expert information on the frame (note and above)
    y: int = 0


@dataclass
class CallMark:
    label: str
    time_s: float
    y: int = 0


@dataclass
class Ladder:
    rungs: list[Rung] = field(default_factory=list)
    calls: list[CallMark] = field(default_factory=list)
    height: int = TOP
    width: int = WIDTH
    tester_x: int = LANE_TESTER
    dut_x: int = LANE_DUT


def describe_frame(data: bytes, relative: dict[tuple[str, int, str, int], int]) -> str:
    """What a frame is, in one line: `TCP 43600>5160 [S] seq=0 ack=0 win=65535 len=0`;
    `relative` holds each TCP direction's first sequence number, filled as frames come."""
    if len(data) < 14:
        return f"runt frame ({len(data)} octets)"
    ethertype = struct.unpack_from("!H", data, 12)[0]
    start = 14
    if ethertype == 0x8100 and len(data) >= 18:
        ethertype, start = struct.unpack_from("!H", data, 16)[0], 18
    if ethertype == 0x0806 and len(data) >= start + 28:
        operation = struct.unpack_from("!H", data, start + 6)[0]
        sender = ".".join(map(str, data[start + 14:start + 18]))
        target = ".".join(map(str, data[start + 24:start + 28]))
        return (f"ARP who-has {target} tell {sender}" if operation == 1
                else f"ARP {sender} is-at {data[start + 8:start + 14].hex(':')}"
                if operation == 2 else f"ARP op {operation}")
    if ethertype != 0x0800 or len(data) < start + 20:
        return f"ethertype {ethertype:#06x}, {len(data)} octets"
    ihl = (data[start] & 0x0F) * 4
    total = struct.unpack_from("!H", data, start + 2)[0]
    fragment = struct.unpack_from("!H", data, start + 6)[0]
    proto = data[start + 9]
    source = ".".join(map(str, data[start + 12:start + 16]))
    destination = ".".join(map(str, data[start + 16:start + 20]))
    offset, more = (fragment & 0x1FFF) * 8, bool(fragment & 0x2000)
    header = f"{source}>{destination}"
    if offset or more:
        return f"IPv4 fragment {header} proto {proto} offset {offset}{' MF' if more else ''}"
    transport = start + max(ihl, 20)
    end = min(len(data), start + total) if total >= ihl else len(data)
    options = " +options" if ihl > 20 else ""
    if proto == 6 and end >= transport + 20:
        sport, dport, seq, ack = struct.unpack_from("!HHII", data, transport)
        offset_flags = struct.unpack_from("!H", data, transport + 12)[0]
        window = struct.unpack_from("!H", data, transport + 14)[0]
        flags = "".join(name for bit, name in enumerate(TCP_FLAGS) if offset_flags >> bit & 1)
        length = end - transport - (offset_flags >> 12) * 4
        key = (source, sport, destination, dport)
        base = relative.setdefault(key, seq)
        back = relative.get((destination, dport, source, sport))
        shown_ack = (ack - back) % 2**32 if back is not None and "A" in flags else ack
        ack_text = f" ack={shown_ack}" if "A" in flags else ""
        return (f"TCP {sport}>{dport} [{flags or '.'}] seq={(seq - base) % 2**32}{ack_text} "
                f"win={window} len={max(length, 0)}{options}")
    if proto == 17 and end >= transport + 8:
        sport, dport, length = struct.unpack_from("!HHH", data, transport)
        return f"UDP {sport}>{dport} len={max(length - 8, 0)}{options}"
    if proto == 1 and end >= transport + 4:
        kind, code = data[transport], data[transport + 1]
        names = {0: "echo reply", 3: "unreachable", 4: "source quench", 5: "redirect",
                 8: "echo request", 11: "time exceeded", 12: "parameter problem"}
        return f"ICMP {names.get(kind, f'type {kind}')} code {code} {header}{options}"
    return f"IPv4 {header} proto {proto}, {total} octets{options}"


def _status(sender: str, comment: str) -> str:
    if "NOT expected" in comment:
        return "unexpected"
    if "barrier" in comment:
        return "barrier"
    if "dut: expected" in comment:
        return "matched"
    if sender == "dut":
        return "unmatched"
    return "tester"


def build_ladder(frames: list[PcapFrame], senders: list[str], calls: list[dict[str, Any]],
                 first_frame_s: float | None,
                 wireshark: dict[int, str] | None = None) -> Ladder:
    """The ladder of a case: `frames` from its pcapng, `senders` from its JSON (who sent
    each), `calls` the DUT call log, `first_frame_s` when the first frame came in the
    case's time (calls are timed from the case's start), if known; `wireshark` what
    Wireshark says of a frame, by frame number."""
    ladder = Ladder()
    relative: dict[tuple[str, int, str, int], int] = {}
    start_ns = frames[0].timestamp_ns if frames else 0
    offset = first_frame_s or 0.0
    events: list[tuple[float, int, object]] = []
    for index, frame in enumerate(frames):
        sender = senders[index] if index < len(senders) else (
            "tester" if frame.comment.startswith("tester") else "dut")
        time_s = (frame.timestamp_ns - start_ns) / 1e9 + offset
        rung = Rung(index + 1, sender, time_s, describe_frame(frame.data, relative),
                    frame.comment, _status(sender, frame.comment),
                    (wireshark or {}).get(index + 1, ""))
        events.append((time_s, 1, rung))
    for call in calls:
        args = call.get("args")
        arguments = ", ".join(f"{key}={value}" for key, value in args.items()
                              if key != "data") if isinstance(args, dict) else ""
        outcome = call.get("value") if call.get("outcome") == "result" else call.get("outcome")
        started = call.get("started_s")
        time_s = float(started) if isinstance(started, int | float) else 0.0
        label = f"{call.get('call')}({arguments}) -> {outcome}"
        events.append((time_s, 0, CallMark(label[:110], time_s)))
    events.sort(key=lambda event: (event[0], event[1]))
    y = TOP
    for _, _, item in events:
        y += ROW_HEIGHT
        if isinstance(item, Rung):
            item.y = y
            ladder.rungs.append(item)
        elif isinstance(item, CallMark):
            item.y = y
            ladder.calls.append(item)
    ladder.height = y + ROW_HEIGHT
    return ladder
