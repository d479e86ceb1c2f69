"""A minimal pcapng writer: one Ethernet interface, comments on the section and on every packet.

Block layouts follow the pcapng specification (draft-ietf-opsawg-pcapng): Section Header
Block, Interface Description Block with nanosecond timestamps, Enhanced Packet Blocks.
"""

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

LINKTYPE_ETHERNET = 1
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
IF_NAME = 2
IF_TSRESOL = 9
SHB_USERAPPL = 4


@dataclass(frozen=True)
class PcapFrame:
    timestamp_ns: int  # since the Unix epoch
    data: bytes
    comment: str


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad(value)


def _options(options: Iterable[tuple[int, bytes]]) -> bytes:
    encoded = b"".join(_option(code, value) for code, value in options if value)
    return encoded + struct.pack("<HH", OPT_ENDOFOPT, 0) if encoded else b""


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def encode_pcapng(
    frames: Iterable[PcapFrame], *, section_comment: str, interface_name: str, application: str
) -> bytes:
    section = _block(
        0x0A0D0D0A,
        struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
        + _options([(OPT_COMMENT, section_comment.encode()), (SHB_USERAPPL, application.encode())]),
    )
    interface = _block(
        0x00000001,
        struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 0)
        + _options([(IF_NAME, interface_name.encode()), (IF_TSRESOL, bytes([9]))]),
    )
    packets = []
    for frame in frames:
        timestamp = frame.timestamp_ns
        body = (
            struct.pack(
                "<IIIII", 0, timestamp >> 32, timestamp & 0xFFFFFFFF, len(frame.data),
                len(frame.data),
            )
            + _pad(frame.data)
            + _options([(OPT_COMMENT, frame.comment.encode())])
        )
        packets.append(_block(0x00000006, body))
    return section + interface + b"".join(packets)


def write_pcapng(
    path: Path,
    frames: Iterable[PcapFrame],
    *,
    section_comment: str,
    interface_name: str,
    application: str,
) -> None:
    data = encode_pcapng(
        frames,
        section_comment=section_comment,
        interface_name=interface_name,
        application=application,
    )
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def read_pcapng(path: Path) -> list[PcapFrame]:
    """The packets of a pcapng file with their comments (Enhanced Packet Blocks of a
    little-endian section, as `encode_pcapng` writes them; other blocks are skipped).
    ValueError for a file that is not one."""
    data = path.read_bytes()
    if len(data) < 28 or data[:4] != b"\x0a\x0d\x0d\x0a" or data[8:12] != b"\x4d\x3c\x2b\x1a":
        raise ValueError(f"{path}: not a little-endian pcapng file")
    frames: list[PcapFrame] = []
    position = 0
    while position + 12 <= len(data):
        block_type, length = struct.unpack_from("<II", data, position)
        if length < 12 or length % 4 or position + length > len(data):
            raise ValueError(f"{path}: a block at offset {position} has length {length}")
        if block_type == 0x00000006:
            body = data[position + 8:position + length - 4]
            high, low, captured = struct.unpack_from("<III", body, 4)
            packet = body[20:20 + captured]
            comment = ""
            options = 20 + captured + (-captured % 4)
            while options + 4 <= len(body):
                code, size = struct.unpack_from("<HH", body, options)
                if code == OPT_ENDOFOPT:
                    break
                if code == OPT_COMMENT:
                    comment = body[options + 4:options + 4 + size].decode(errors="replace")
                options += 4 + size + (-size % 4)
            frames.append(PcapFrame((high << 32) | low, packet, comment))
        position += length
    return frames
