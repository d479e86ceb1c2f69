"""Templates: a scapy packet whose explicitly set fields must match; unset fields match anything.

`IP(dst="192.0.2.2")/UDP(dport=9)` matches any frame holding an IP layer with that
destination and, after it, a UDP layer with that destination port.

TCP flags are matched for what a case needs: the template's flags name the control bits
(SYN, ACK, FIN, RST, PSH, URG) the segment must carry, and those it leaves out must be
clear. The ECN bits (ECE, CWR, AE) are judged only when the template sets one of them: an
ECN-setup SYN (RFC 3168 6.1.1) is a SYN, and a case not about ECN accepts it.
"""

from dataclasses import dataclass
from typing import Any

from scapy.packet import NoPayload, Packet, Raw


def template_layers(template: Packet) -> list[Packet]:
    layers = []
    layer: Packet = template
    while not isinstance(layer, NoPayload):
        layers.append(layer)
        layer = layer.payload
    return layers


def set_fields(layer: Packet) -> dict[str, Any]:
    """The fields a template sets. Scapy copies mutable defaults (IP and TCP `options`,
    an empty list) into `fields` at construction: those do not count as set."""
    return {
        name: value for name, value in layer.fields.items()
        if not (isinstance(value, list) and value == layer.default_fields.get(name))
    }


ECN_FLAGS = 0x40 | 0x80 | 0x100  # ECE, CWR, AE (formerly NS)


def _same_tcp_flags(want: Any, got: Any) -> bool:
    wanted, seen = int(want), int(got)
    if not wanted & ECN_FLAGS:
        seen &= ~ECN_FLAGS
    return wanted == seen


def _same(want: Any, got: Any) -> bool:
    try:
        return bool(want == got)
    except Exception:  # scapy field types that do not compare with each other
        return str(want) == str(got)


@dataclass(frozen=True)
class FieldDiff:
    field: str
    want: Any
    got: Any

    def __str__(self) -> str:
        return f"{self.field}: want {self.want!r}, got {self.got!r}"


def diff(template: Packet, packet: Packet) -> list[FieldDiff]:
    """The fields of `template` that `packet` does not match (empty: it matches)."""
    differences = []
    for want_layer in template_layers(template):
        layer_name = type(want_layer).__name__
        if isinstance(want_layer, Raw):
            got_layer = packet.getlayer(Raw)
            got_load = bytes(got_layer.load) if got_layer is not None else b""
            if got_load != bytes(want_layer.load):
                differences.append(FieldDiff("payload", bytes(want_layer.load), got_load))
            continue
        got_layer = packet.getlayer(type(want_layer))
        if got_layer is None:
            differences.append(FieldDiff(layer_name, "present", "absent"))
            continue
        for name, want in set_fields(want_layer).items():
            got = got_layer.getfieldval(name)
            same = _same_tcp_flags if (layer_name, name) == ("TCP", "flags") else _same
            if not same(want, got):
                differences.append(FieldDiff(f"{layer_name}.{name}", want, got))
    return differences


def matches(template: Packet, packet: Packet) -> bool:
    return not diff(template, packet)


def describe(template: Packet) -> str:
    """A template as a short text: the set fields only."""
    parts = []
    for layer in template_layers(template):
        if isinstance(layer, Raw):
            parts.append(f"payload={bytes(layer.load)[:32]!r}")
            continue
        fields = ", ".join(f"{name}={value}" for name, value in set_fields(layer).items())
        parts.append(f"{type(layer).__name__}({fields})")
    return "/".join(parts)
