"""Names and numbers of the DUT agent protocol (docs/agent-protocol.md): the calls,
flags, socket options, ioctl requests and the protocol version.

The protocol speaks in names; this module maps them to the Linux values. Values that
Python's `socket` module does not export are written out from the Linux headers.
"""

from __future__ import annotations

import errno
import os
import select
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

PROTOCOL_VERSION: Final = 1

CALLS: Final = (
    "hello",
    "socket",
    "bind",
    "connect",
    "listen",
    "accept",
    "send",
    "sendto",
    "recv",
    "recvfrom",
    "recvmsg",
    "setsockopt",
    "getsockopt",
    "ioctl",
    "fcntl",
    "shutdown",
    "close",
    "poll",
    "getsockname",
    "getpeername",
    "snapshot",
)

# Flags a request may pass to send/recv calls.
MESSAGE_FLAGS: Final[Mapping[str, int]] = {
    "MSG_DONTWAIT": socket.MSG_DONTWAIT,
    "MSG_PEEK": socket.MSG_PEEK,
    "MSG_TRUNC": socket.MSG_TRUNC,
    "MSG_ERRQUEUE": socket.MSG_ERRQUEUE,
    "MSG_WAITALL": socket.MSG_WAITALL,
    "MSG_NOSIGNAL": socket.MSG_NOSIGNAL,
    "MSG_MORE": socket.MSG_MORE,
    "MSG_OOB": socket.MSG_OOB,  # TCP urgent data (RFC 9293 3.8.5)
}

# Flags recvmsg reports back in its result.
RETURNED_MESSAGE_FLAGS: Final[Mapping[str, int]] = {
    "MSG_TRUNC": socket.MSG_TRUNC,
    "MSG_CTRUNC": socket.MSG_CTRUNC,
    "MSG_ERRQUEUE": socket.MSG_ERRQUEUE,
}

SOL_UDP: Final = 17
IP_PKTINFO: Final = 8
IP_MTU_DISCOVER: Final = 10
IP_RECVERR: Final = 11
IP_MTU: Final = 14
UDP_CORK: Final = 1

PMTUDISC_MODES: Final[Mapping[str, int]] = {
    "IP_PMTUDISC_DONT": 0,
    "IP_PMTUDISC_WANT": 1,
    "IP_PMTUDISC_DO": 2,
    "IP_PMTUDISC_PROBE": 3,
}

# How an option's value travels as JSON:
#   int: an integer; errno_name: errno name or null; socket_type: "udp"/"tcp";
#   linger: {"onoff", "linger"}; pmtudisc_mode: a PMTUDISC_MODES name;
#   bytes: base64 of the raw bytes (IP_OPTIONS: the options area).
OptionKind = Literal["int", "errno_name", "socket_type", "linger", "pmtudisc_mode", "bytes"]


@dataclass(frozen=True)
class SocketOption:
    level: int
    number: int
    kind: OptionKind = "int"
    settable: bool = True


SOCKET_OPTIONS: Final[Mapping[str, SocketOption]] = {
    "SO_REUSEADDR": SocketOption(socket.SOL_SOCKET, socket.SO_REUSEADDR),
    "SO_KEEPALIVE": SocketOption(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    "SO_RCVBUF": SocketOption(socket.SOL_SOCKET, socket.SO_RCVBUF),
    "SO_SNDBUF": SocketOption(socket.SOL_SOCKET, socket.SO_SNDBUF),
    "SO_BROADCAST": SocketOption(socket.SOL_SOCKET, socket.SO_BROADCAST),
    "SO_ERROR": SocketOption(socket.SOL_SOCKET, socket.SO_ERROR, "errno_name", False),
    "SO_TYPE": SocketOption(socket.SOL_SOCKET, socket.SO_TYPE, "socket_type", False),
    "SO_LINGER": SocketOption(socket.SOL_SOCKET, socket.SO_LINGER, "linger"),
    # Urgent data stays in the stream instead of being read with MSG_OOB (RFC 9293 3.8.5).
    "SO_OOBINLINE": SocketOption(socket.SOL_SOCKET, socket.SO_OOBINLINE),
    "IP_TTL": SocketOption(socket.IPPROTO_IP, socket.IP_TTL),
    "IP_TOS": SocketOption(socket.IPPROTO_IP, socket.IP_TOS),
    "IP_RECVERR": SocketOption(socket.IPPROTO_IP, IP_RECVERR),
    # The options of sent datagrams (RFC 1122 3.2.1.8), and the ancillary data recvmsg
    # returns: received options, TOS, destination address (RFC 1122 3.2.1.6, 4.1.3.5).
    "IP_OPTIONS": SocketOption(socket.IPPROTO_IP, socket.IP_OPTIONS, "bytes"),
    "IP_RECVOPTS": SocketOption(socket.IPPROTO_IP, socket.IP_RECVOPTS),
    "IP_RECVTOS": SocketOption(socket.IPPROTO_IP, socket.IP_RECVTOS),
    "IP_PKTINFO": SocketOption(socket.IPPROTO_IP, IP_PKTINFO),
    "IP_MTU_DISCOVER": SocketOption(socket.IPPROTO_IP, IP_MTU_DISCOVER, "pmtudisc_mode"),
    "IP_MTU": SocketOption(socket.IPPROTO_IP, IP_MTU, "int", False),
    "TCP_NODELAY": SocketOption(socket.IPPROTO_TCP, socket.TCP_NODELAY),
    "TCP_MAXSEG": SocketOption(socket.IPPROTO_TCP, socket.TCP_MAXSEG),
    "TCP_KEEPIDLE": SocketOption(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
    "TCP_KEEPINTVL": SocketOption(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
    "TCP_KEEPCNT": SocketOption(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    # Milliseconds unacknowledged data may wait before the connection is aborted: R2 of
    # RFC 9293 3.8.3 (MUST-21), set per connection.
    "TCP_USER_TIMEOUT": SocketOption(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
    "UDP_CORK": SocketOption(SOL_UDP, UDP_CORK),
}

IOCTL_REQUESTS: Final[Mapping[str, int]] = {
    "FIONREAD": 0x541B,
    "SIOCOUTQ": 0x5411,  # = TIOCOUTQ
    "SIOCATMARK": 0x8905,  # 1 when the next octet read is the urgent mark (RFC 9293 3.8.5)
}

# File status flags the protocol knows; F_SETFL replaces exactly these bits.
FILE_STATUS_FLAGS: Final[Mapping[str, int]] = {"O_NONBLOCK": os.O_NONBLOCK}

SHUTDOWN_HOW: Final[Mapping[str, int]] = {
    "SHUT_RD": socket.SHUT_RD,
    "SHUT_WR": socket.SHUT_WR,
    "SHUT_RDWR": socket.SHUT_RDWR,
}

POLL_EVENTS: Final[Mapping[str, int]] = {
    "POLLIN": select.POLLIN,
    "POLLPRI": select.POLLPRI,
    "POLLOUT": select.POLLOUT,
    "POLLERR": select.POLLERR,
    "POLLHUP": select.POLLHUP,
    "POLLNVAL": select.POLLNVAL,
    "POLLRDNORM": select.POLLRDNORM,
    "POLLRDBAND": select.POLLRDBAND,
    "POLLWRNORM": select.POLLWRNORM,
    "POLLWRBAND": select.POLLWRBAND,
    "POLLMSG": select.POLLMSG,
    "POLLRDHUP": select.POLLRDHUP,
}

# sock_extended_err.ee_origin
ERROR_ORIGINS: Final[Mapping[int, str]] = {0: "NONE", 1: "LOCAL", 2: "ICMP", 3: "ICMP6"}

# Where errno.h gives one number two names, the name agents must send.
_PREFERRED_ERRNO_NAMES: Final[Mapping[int, str]] = {
    errno.EAGAIN: "EAGAIN",  # not EWOULDBLOCK
    errno.EOPNOTSUPP: "EOPNOTSUPP",  # not ENOTSUP
    errno.EDEADLK: "EDEADLK",  # not EDEADLOCK
}


def errno_name(number: int) -> str:
    """The symbolic name of an errno number, e.g. 111 -> "ECONNREFUSED"."""
    if number in _PREFERRED_ERRNO_NAMES:
        return _PREFERRED_ERRNO_NAMES[number]
    return errno.errorcode.get(number, f"ERRNO_{number}")


def flag_names(value: int, table: Mapping[str, int]) -> list[str]:
    """The names in `table` whose bits are all set in `value`, in table order."""
    return [name for name, bit in table.items() if bit and value & bit == bit]
