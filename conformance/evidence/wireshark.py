"""Wireshark's view of a case's capture, read through pyshark: expert information per frame.

Each capture is read by one tshark process that pyshark starts and drives, with checksum
validation on (IPv4, UDP and TCP; ICMP's is always on). What comes back is every expert
item of note or above (malformed, bad checksums, TCP analysis: retransmission, zero
window, out of order, ACK of an unseen segment, ...) and every checksum Wireshark rejects.
One process per capture: Wireshark's TCP analysis keeps its state for the whole input,
and cases reuse addresses and ports.

How pyshark crashed now and then, and what is done here instead:
* after tshark's last packet pyshark kills it, and the kill polls the process first
  (Popen.send_signal), reaping it before asyncio's child watcher can: asyncio logs
  "Unknown child process", reports exit status 255, and a tshark that failed passes for
  one that read nothing. Here tshark is waited for, and killed only if it does not end;
* its close raises on a failed tshark before forgetting the process, so `__del__` closes
  again later, on an event loop that is gone ("Event loop is closed", "coroutine never
  awaited"), and before reading tshark's stderr to its end, so the pipe outlives the loop
  (ResourceWarning: unclosed file). Here the process is always forgotten and its stderr
  always read to the end;
* without an event loop of its own it takes the thread's, and on the main thread swaps
  the process-wide child watcher. Here each capture has a loop of its own, closed after;
* a read has no deadline unless asked: here it has one, and packets are not kept.
"""

import asyncio
import contextlib
import functools
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.evidence.pcapng import PcapFrame, write_pcapng
from conformance.evidence.record import CaseRecord
from conformance.evidence.writer import case_file_stem

# Wireshark's severities and groups (epan/proto.h, PI_SEVERITY_MASK and PI_GROUP_MASK).
SEVERITIES = {0x00100000: "comment", 0x00200000: "chat", 0x00400000: "note",
              0x00600000: "warn", 0x00800000: "error"}
GROUPS = {0x01000000: "checksum", 0x02000000: "sequence", 0x03000000: "response code",
          0x04000000: "request code", 0x05000000: "undecoded", 0x06000000: "reassemble",
          0x07000000: "malformed", 0x08000000: "debug", 0x09000000: "protocol",
          0x0A000000: "security", 0x0B000000: "comments", 0x0C000000: "decryption",
          0x0D000000: "assumption", 0x0E000000: "deprecated", 0x0F000000: "receive",
          0x10000000: "interface"}
KEPT_SEVERITIES = frozenset({"note", "warn", "error"})

# ICMP checksums are always checked; these are off by default (for captures of offloads).
CHECKSUM_PREFERENCES = {"ip.check_checksum": "TRUE", "udp.check_checksum": "TRUE",
                        "tcp.check_checksum": "TRUE"}
BAD_CHECKSUM = "0"  # a `*.checksum.status` of 0 is "Bad"; 1 "Good", 2 "Unverified"

# The protocols the cases judge. Wireshark also dissects payloads by port number (UDP from
# port 27500 is QuakeWorld to it); what those dissectors say of a test payload is recorded,
# never held against the DUT.
JUDGED_PROTOCOLS = frozenset({"eth", "arp", "ip", "icmp", "udp", "tcp"})

# A protocol's tree nested in another protocol's: the quote of an ICMP error (RFC 792: the
# offending datagram's header and first octets, as it arrived).
QUOTED_PROTOCOLS = frozenset({"ip", "udp", "tcp", "icmp"})

WIRESHARK_OBSERVATIONS = "wireshark."  # the prefix of the observations recorded here
DEFAULT_TIMEOUT_S = 30.0
EXIT_GRACE_S = 5.0  # for tshark to exit once its output has ended


class WiresharkUnavailable(Exception):
    """tshark is missing, failed, or did not finish reading the capture in time."""


@dataclass(frozen=True)
class ExpertItem:
    frame: int  # 1-based, as Wireshark numbers frames
    protocol: str  # the dissector it came from: ip, tcp, ... or an application's
    flag: str  # the expert field: tcp.analysis.retransmission, _ws.malformed, ...
    severity: str  # note, warn or error
    group: str  # sequence, checksum, malformed, protocol, ...
    message: str
    in_quote: bool = False  # inside the quoted datagram of an ICMP error

    @property
    def malformed(self) -> bool:
        return self.group == "malformed" or self.flag.startswith("_ws.malformed")


@dataclass(frozen=True)
class BadChecksum:
    frame: int
    field: str  # ip.checksum, udp.checksum, tcp.checksum, icmp.checksum
    in_quote: bool  # inside the quoted datagram of an ICMP error


@dataclass(frozen=True)
class WiresharkView:
    frames: int  # how many frames Wireshark read
    expert: tuple[ExpertItem, ...]
    bad_checksums: tuple[BadChecksum, ...]


def _expert_items(tree: Any, frame: int, protocol: str, *,
                  in_quote: bool) -> Iterator[ExpertItem]:
    """Every `_ws.expert` entry (and `_ws.malformed`) anywhere in a protocol's JSON tree."""
    if isinstance(tree, list):
        for child in tree:
            yield from _expert_items(child, frame, protocol, in_quote=in_quote)
        return
    if not isinstance(tree, dict):
        return
    for key, value in tree.items():
        if key == "_ws.expert":
            for entry in value if isinstance(value, list) else [value]:
                item = _expert_item(entry, frame, protocol, in_quote)
                if item is not None:
                    yield item
        elif key == "_ws.malformed":
            # A dissector ran out of packet or found it inconsistent; its own expert
            # entry, when it has one, says how.
            found = list(_expert_items(value, frame, protocol, in_quote=in_quote))
            yield from found or [ExpertItem(frame, protocol, "_ws.malformed", "error",
                                            "malformed", "Malformed Packet", in_quote)]
        else:
            yield from _expert_items(value, frame, protocol,
                                     in_quote=in_quote or key in QUOTED_PROTOCOLS)


def _expert_item(entry: Any, frame: int, protocol: str, in_quote: bool) -> ExpertItem | None:
    if not isinstance(entry, dict):
        return None
    flags = [key for key in entry if not key.startswith("_ws.expert")]
    severity = SEVERITIES.get(_number(entry.get("_ws.expert.severity")), "unknown")
    group = GROUPS.get(_number(entry.get("_ws.expert.group")), "unknown")
    return ExpertItem(frame, protocol, flags[0] if flags else "_ws.expert", severity, group,
                      str(entry.get("_ws.expert.message", "")), in_quote)


def _number(text: Any) -> int:
    try:
        return int(str(text), 0)
    except ValueError:
        return -1


def _bad_checksums(tree: Any, frame: int, *, in_quote: bool) -> Iterator[BadChecksum]:
    """Every `<protocol>.checksum.status` that Wireshark calls Bad."""
    if isinstance(tree, list):
        for child in tree:
            yield from _bad_checksums(child, frame, in_quote=in_quote)
        return
    if not isinstance(tree, dict):
        return
    for key, value in tree.items():
        if key.endswith(".checksum.status") and str(value) == BAD_CHECKSUM:
            yield BadChecksum(frame, key.removesuffix(".status"), in_quote)
        elif isinstance(value, dict | list):
            yield from _bad_checksums(value, frame,
                                      in_quote=in_quote or key in QUOTED_PROTOCOLS)


@functools.cache
def _capture_class() -> Any:
    """A FileCapture that keeps tshark's exit status, always forgets its process, and
    asks tshark's version once per process (see the module's docstring). pyshark is
    imported here, not with the module: its imports cost 120 ms, which a run without
    Wireshark's reads (`--no-wireshark`) need not pay in every worker."""
    import pyshark

    class Capture(pyshark.FileCapture):  # type: ignore[misc]
        def _get_tshark_version(self) -> Any:
            return _tshark_version_once()

        async def _cleanup_subprocess(self, process: Any) -> None:
            if process.returncode is None and self._eof_reached:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), EXIT_GRACE_S)
            await super()._cleanup_subprocess(process)

        async def close_async(self) -> None:
            try:
                await super().close_async()
            finally:
                self._running_processes.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(
                        *self._stderr_handling_tasks, return_exceptions=True), EXIT_GRACE_S)

    return Capture


def dissect(capture: Path, *, timeout_s: float = DEFAULT_TIMEOUT_S,
            preferences: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Each frame of `capture` as Wireshark's dissectors see it: its JSON layers, by
    protocol name (`frame` included; a protocol that occurs twice has a list of trees).
    Checksums are validated. Raises WiresharkUnavailable when the capture could not be
    read: no tshark, tshark failed, or it took longer than `timeout_s`."""
    if shutil.which("tshark") is None:
        raise WiresharkUnavailable("tshark not found (apt install tshark)")
    from pyshark.capture.capture import TSharkCrashException
    from pyshark.tshark.tshark import TSharkVersionException

    frames: list[dict[str, Any]] = []

    def on_packet(packet: Any) -> None:
        layers: dict[str, Any] = {"frame": packet.frame_info._all_fields}
        for layer in packet.layers:
            trees = [layer._all_fields] + [copy._all_fields for copy in layer.duplicate_layers]
            layers[layer.layer_name] = trees[0] if len(trees) == 1 else trees
        frames.append(layers)

    loop = asyncio.new_event_loop()
    try:
        with _capture_class()(str(capture), keep_packets=False, use_json=True,
                              eventloop=loop, override_prefs=CHECKSUM_PREFERENCES
                              if preferences is None else preferences) as packets:
            packets.apply_on_packets(on_packet, timeout=timeout_s)
    except TimeoutError as error:
        raise WiresharkUnavailable(f"tshark did not read {capture.name} within "
                                   f"{timeout_s:g} s") from error
    except (TSharkCrashException, TSharkVersionException, subprocess.SubprocessError,
            OSError) as error:
        raise WiresharkUnavailable(f"tshark failed on {capture.name}: {error}") from error
    finally:
        loop.close()
    return frames


def wireshark_view(capture: Path, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                   preferences: dict[str, str] | None = None) -> WiresharkView:
    """Wireshark's expert information and rejected checksums of every frame of `capture`
    (see `dissect`)."""
    return view_of(dissect(capture, timeout_s=timeout_s, preferences=preferences))


def view_of(frames: list[dict[str, Any]]) -> WiresharkView:
    """The expert information and rejected checksums of dissected frames."""
    expert: list[ExpertItem] = []
    bad: list[BadChecksum] = []
    for layers in frames:
        number = int(layers["frame"].get("frame.number", 0))
        # A dissector that throws leaves a layer `_ws.malformed`: the thrower is the last
        # protocol dissected.
        last = str(layers["frame"].get("frame.protocols", "")).split(":")[-1]
        for name, trees in layers.items():  # what nests in a protocol's tree is a quote
            if name == "frame":
                continue
            protocol = last if name == "_ws.malformed" else name
            expert.extend(item for item in _expert_items(trees, number, protocol, in_quote=False)
                          if item.severity in KEPT_SEVERITIES and item.group != "comments")
            bad.extend(_bad_checksums(trees, number, in_quote=False))
    return WiresharkView(len(frames), tuple(_without_bare_malformed(_unique(expert))),
                         tuple(_unique(bad)))


def _without_bare_malformed(items: list[ExpertItem]) -> list[ExpertItem]:
    """A frame's bare "Malformed Packet" when its malformed expert entry says more."""
    explained = {item.frame for item in items if item.malformed and item.flag != "_ws.malformed"}
    return [item for item in items
            if not (item.flag == "_ws.malformed" and item.frame in explained)]


def _unique(items: list[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


@functools.cache
def _tshark_version_once() -> Any:
    """`tshark -v` costs as much as reading a capture: asked once per process."""
    from pyshark.tshark.tshark import get_tshark_version

    return get_tshark_version()


def observe_wireshark_view(record: CaseRecord, directory: Path, *,
                           timeout_s: float = DEFAULT_TIMEOUT_S) -> list[str]:
    """Read the case's frames with Wireshark's dissectors and record what it says as the
    case's `wireshark.*` observations. Returns the DUT frames Wireshark rejects (malformed
    in a protocol the cases judge, or a checksum of one it calls bad), one line each,
    outside the quote of an ICMP error (the quote is the tester's datagram, which a case
    may have malformed on purpose). Raises WiresharkUnavailable when the capture could
    not be read whole."""
    senders = {frame.number: frame.sender for frame in record.frames}
    if record.frames:
        capture = directory / f".{case_file_stem(record.case_id)}.wireshark.pcapng"
        directory.mkdir(parents=True, exist_ok=True)
        write_pcapng(capture, [PcapFrame(frame.timestamp_ns, frame.data, "")
                               for frame in record.frames],
                     section_comment="", interface_name=f"{record.target} DUT wire",
                     application="conformance")
        try:
            view = wireshark_view(capture, timeout_s=timeout_s)
        finally:
            capture.unlink(missing_ok=True)
        if view.frames != len(record.frames):
            raise WiresharkUnavailable(f"tshark read {view.frames} of the capture's "
                                       f"{len(record.frames)} frames")
    else:
        view = WiresharkView(0, (), ())
    rejected = [
        f"frame {item.frame}: {item.message} ({item.flag})" for item in view.expert
        if senders.get(item.frame) == "dut" and item.malformed and not item.in_quote
        and item.protocol in JUDGED_PROTOCOLS
    ] + [
        f"frame {bad.frame}: bad {bad.field}" for bad in view.bad_checksums
        if senders.get(bad.frame) == "dut" and not bad.in_quote
        and bad.field.split(".")[0] in JUDGED_PROTOCOLS
    ]
    record.observe(f"{WIRESHARK_OBSERVATIONS}frames", view.frames)
    record.observe(f"{WIRESHARK_OBSERVATIONS}expert", [
        {"frame": item.frame, "sender": senders.get(item.frame), "protocol": item.protocol,
         "flag": item.flag, "severity": item.severity, "group": item.group,
         "message": item.message,
         **({"in_quote": True} if item.in_quote else {})}
        for item in view.expert])
    record.observe(f"{WIRESHARK_OBSERVATIONS}bad_checksums", [
        {"frame": bad.frame, "sender": senders.get(bad.frame), "field": bad.field,
         **({"in_quote": True} if bad.in_quote else {})}
        for bad in view.bad_checksums])
    record.observe(f"{WIRESHARK_OBSERVATIONS}dut_frames_rejected", rejected)
    return rejected


def expert_messages_by_frame(observations: dict[str, Any]) -> dict[int, str]:
    """What Wireshark said of each frame (`wireshark.expert` of a case), by frame number."""
    by_frame: dict[int, list[str]] = {}
    for item in observations.get(f"{WIRESHARK_OBSERVATIONS}expert") or []:
        if isinstance(item, dict) and isinstance(item.get("frame"), int):
            by_frame.setdefault(item["frame"], []).append(str(item.get("message", "")))
    return {frame: "; ".join(messages) for frame, messages in by_frame.items()}
