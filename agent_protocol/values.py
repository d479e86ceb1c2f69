"""The JSON shapes of the values responses carry (docs/agent-protocol.md, "Values",
"Socket options" and "recvmsg")."""

from __future__ import annotations

import base64
from typing import Any


def data_json(data: bytes | bytearray) -> str:
    """Bytes as the protocol carries them: base64 with padding (RFC 4648)."""
    return base64.b64encode(data).decode()


def endpoint_json(address: object) -> dict[str, Any]:
    """{"addr", "port"} of an (address, port) pair, both null when there is none."""
    if isinstance(address, tuple) and len(address) == 2:
        return {"addr": str(address[0]), "port": address[1]}
    return {"addr": None, "port": None}


def linger_json(onoff: int, linger: int) -> dict[str, int]:
    """The SO_LINGER value: struct linger as an object."""
    return {"onoff": onoff, "linger": linger}


def errqueue_json(
    errno: str | None,
    origin: str,
    icmp_type: int,
    icmp_code: int,
    info: int,
    data: int,
    offender: object,
) -> dict[str, Any]:
    """The `errqueue` object of recvmsg: struct sock_extended_err and the offender."""
    return {
        "errno": errno,
        "origin": origin,
        "type": icmp_type,
        "code": icmp_code,
        "info": info,
        "data": data,
        "offender": None if offender is None else endpoint_json(offender),
    }


def pktinfo_json(ifindex: int, spec_dst: object, addr: object) -> dict[str, Any]:
    """The `pktinfo` entry of recvmsg's `ancillary` object: struct in_pktinfo."""
    return {"ifindex": ifindex, "spec_dst": str(spec_dst), "addr": str(addr)}
