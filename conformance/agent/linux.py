"""The Linux agent: performs the calls of docs/agent-protocol.md with real system calls.

Run as `python -m conformance.agent.linux [--netns NAME]`. Requests arrive as JSON lines
on stdin, responses leave as JSON lines on stdout; diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import select
import socket
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from agent_protocol.names import (
    ERROR_ORIGINS,
    FILE_STATUS_FLAGS,
    IOCTL_REQUESTS,
    IP_PKTINFO,
    IP_RECVERR,
    PMTUDISC_MODES,
    POLL_EVENTS,
    RETURNED_MESSAGE_FLAGS,
    SHUTDOWN_HOW,
    errno_name,
    flag_names,
)
from agent_protocol.requests import Args, NotSupported
from agent_protocol.responses import ResponseWriter, take_stdout
from agent_protocol.server import (
    AgentServer,
    HandleTable,
    option_value,
    settable_option,
    socket_option,
)
from agent_protocol.values import data_json, endpoint_json, errqueue_json, linger_json, pktinfo_json

SOCKET_TYPES: Final[Mapping[str, int]] = {"udp": socket.SOCK_DGRAM, "tcp": socket.SOCK_STREAM}

# Sysctls reported by `snapshot`, read inside the agent's network namespace.
SNAPSHOT_SETTINGS: Final = (
    "net.ipv4.ip_no_pmtu_disc",
    "net.ipv4.route.min_pmtu",
    "net.ipv4.route.mtu_expires",
    "net.ipv4.tcp_abort_on_overflow",
    "net.ipv4.tcp_rfc1337",
    "net.ipv4.tcp_synack_retries",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_sack",
    "net.ipv4.tcp_window_scaling",
    "net.ipv4.tcp_ecn",
    "net.ipv4.icmp_ratelimit",
    "net.core.somaxconn",
    "net.ipv4.ip_local_port_range",
)

# The `st` column of /proc/net/tcp (include/net/tcp_states.h).
TCP_STATES: Final[Mapping[int, str]] = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
}

ANCILLARY_BUFFER_SIZE: Final = socket.CMSG_SPACE(512)

# struct sock_extended_err, then the offender's struct sockaddr_in.
EXTENDED_ERROR: Final = struct.Struct("=IBBBBII")
SOCKADDR_IN_HEAD: Final = struct.Struct("=H2s4s")  # family, port (network order), address
# struct in_pktinfo: interface index, local address, header destination address.
IN_PKTINFO: Final = struct.Struct("=i4s4s")
MAX_IP_OPTIONS: Final = 40
LINGER: Final = struct.Struct("ii")  # struct linger: l_onoff, l_linger


def extended_error_json(cmsg_data: bytes) -> dict[str, Any] | None:
    """The IP_RECVERR control message as the `errqueue` object of recvmsg."""
    if len(cmsg_data) < EXTENDED_ERROR.size:
        return None
    ee_errno, origin, icmp_type, icmp_code, _pad, info, data = EXTENDED_ERROR.unpack_from(cmsg_data)
    offender: tuple[str, int] | None = None
    if len(cmsg_data) >= EXTENDED_ERROR.size + SOCKADDR_IN_HEAD.size:
        family, port, addr = SOCKADDR_IN_HEAD.unpack_from(cmsg_data, EXTENDED_ERROR.size)
        if family == socket.AF_INET:
            offender = (socket.inet_ntoa(addr), int.from_bytes(port, "big"))
    return errqueue_json(
        errno_name(ee_errno) if ee_errno else None,
        ERROR_ORIGINS.get(origin, f"ORIGIN_{origin}"),
        icmp_type,
        icmp_code,
        info,
        data,
        offender,
    )


def ancillary_json(ancillary: list[tuple[int, int, bytes]]) -> dict[str, Any]:
    """The IP_RECVOPTS, IP_RECVTOS and IP_PKTINFO control messages as the `ancillary`
    object of recvmsg: a key for each message the kernel returned."""
    found: dict[str, Any] = {}
    for level, kind, cmsg_data in ancillary:
        if level != socket.IPPROTO_IP:
            continue
        if kind == socket.IP_RECVOPTS:  # ip_cmsg_recv_opts: the options area as received
            found["options"] = data_json(cmsg_data)
        elif kind == socket.IP_TOS and cmsg_data:
            found["tos"] = cmsg_data[0]
        elif kind == IP_PKTINFO and len(cmsg_data) >= IN_PKTINFO.size:
            ifindex, spec_dst, addr = IN_PKTINFO.unpack_from(cmsg_data)
            found["pktinfo"] = pktinfo_json(
                ifindex, socket.inet_ntoa(spec_dst), socket.inet_ntoa(addr)
            )
    return found


def tcp_states_by_inode() -> dict[int, str]:
    """TCP states of this network namespace's sockets, keyed by socket inode."""
    states: dict[int, str] = {}
    try:
        lines = Path("/proc/self/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return states
    for line in lines:
        fields = line.split()
        if len(fields) >= 10:
            state = int(fields[3], 16)
            states[int(fields[9])] = TCP_STATES.get(state, f"STATE_{state}")
    return states


def read_settings() -> dict[str, Any]:
    """The SNAPSHOT_SETTINGS that exist, as integers, lists of integers or text."""
    settings: dict[str, Any] = {}
    for name in SNAPSHOT_SETTINGS:
        try:
            text = (Path("/proc/sys") / name.replace(".", "/")).read_text().strip()
        except OSError:
            continue
        words = text.split()
        try:
            numbers = [int(word) for word in words]
        except ValueError:
            settings[name] = text
            continue
        settings[name] = numbers[0] if len(numbers) == 1 else numbers
    return settings


class LinuxAgent(AgentServer):
    """Performs requests on real sockets; background ones each on a thread."""

    name = "linux"

    def __init__(self, writer: ResponseWriter) -> None:
        self.sockets: HandleTable[socket.socket] = HandleTable()
        super().__init__(writer)

    def close(self) -> None:
        for sock in self.sockets.clear():
            sock.close()

    def sock(self, args: Args) -> socket.socket:
        return self.sockets.get(args.integer("sock"))

    # --- calls --------------------------------------------------------------------------

    def call_socket(self, args: Args) -> int:
        kind = args.choice("type", SOCKET_TYPES)
        sock = socket.socket(socket.AF_INET, kind)
        return self.sockets.add(sock.fileno(), sock)

    def call_bind(self, args: Args) -> None:
        self.sock(args).bind(args.endpoint())

    def call_connect(self, args: Args) -> None:
        self.sock(args).connect(args.endpoint())

    def call_listen(self, args: Args) -> None:
        self.sock(args).listen(args.integer("backlog"))

    def call_accept(self, args: Args) -> dict[str, Any]:
        connection, peer = self.sock(args).accept()
        return {"sock": self.sockets.add(connection.fileno(), connection), **endpoint_json(peer)}

    def call_send(self, args: Args) -> int:
        flags = args.message_flags() | socket.MSG_NOSIGNAL
        return self.sock(args).send(args.data(), flags)

    def call_sendto(self, args: Args) -> int:
        flags = args.message_flags() | socket.MSG_NOSIGNAL
        return self.sock(args).sendto(args.data(), flags, args.endpoint())

    # The recv calls read into a buffer of `size` bytes: with MSG_TRUNC the kernel returns
    # the full datagram length, which may exceed what was copied.

    def call_recv(self, args: Args) -> dict[str, Any]:
        sock, size, flags = self.sock(args), args.integer("size"), args.message_flags()
        buffer = bytearray(size)
        length = sock.recv_into(buffer, size, flags)
        return {"data": data_json(buffer[: min(length, size)])}

    def call_recvfrom(self, args: Args) -> dict[str, Any]:
        sock, size, flags = self.sock(args), args.integer("size"), args.message_flags()
        buffer = bytearray(size)
        length, peer = sock.recvfrom_into(buffer, size, flags)
        return {"data": data_json(buffer[: min(length, size)]), **endpoint_json(peer)}

    def call_recvmsg(self, args: Args) -> dict[str, Any]:
        sock, size, flags = self.sock(args), args.integer("size"), args.message_flags()
        buffer = bytearray(size)
        length, ancillary, msg_flags, peer = sock.recvmsg_into(
            [buffer], ANCILLARY_BUFFER_SIZE, flags
        )
        errqueue = None
        if flags & socket.MSG_ERRQUEUE:
            for level, kind, cmsg_data in ancillary:
                if level == socket.IPPROTO_IP and kind == IP_RECVERR:
                    errqueue = extended_error_json(cmsg_data)
        return {
            "data": data_json(buffer[: min(length, size)]),
            "flags": flag_names(msg_flags, RETURNED_MESSAGE_FLAGS),
            **endpoint_json(peer),
            "errqueue": errqueue,
            "ancillary": ancillary_json(ancillary),
        }

    def call_setsockopt(self, args: Args) -> None:
        sock = self.sock(args)
        name, option = settable_option(args)
        value = option_value(args, name, option)
        if isinstance(value, str):
            value = PMTUDISC_MODES[value]
        elif isinstance(value, tuple):
            value = LINGER.pack(*value)
        sock.setsockopt(option.level, option.number, value)

    def call_getsockopt(self, args: Args) -> Any:
        sock, (_, option) = self.sock(args), socket_option(args)
        if option.kind == "linger":
            return linger_json(
                *LINGER.unpack(sock.getsockopt(option.level, option.number, LINGER.size))
            )
        if option.kind == "bytes":
            return data_json(sock.getsockopt(option.level, option.number, MAX_IP_OPTIONS))
        value = sock.getsockopt(option.level, option.number)
        if option.kind == "errno_name":
            return errno_name(value) if value else None
        if option.kind == "socket_type":
            names = {number: name for name, number in SOCKET_TYPES.items()}
            return names.get(value, f"SOCK_{value}")
        if option.kind == "pmtudisc_mode":
            modes = {number: name for name, number in PMTUDISC_MODES.items()}
            return modes.get(value, f"IP_PMTUDISC_{value}")
        return value

    def call_ioctl(self, args: Args) -> int:
        sock, request = self.sock(args), args.choice("request", IOCTL_REQUESTS)
        answer = fcntl.ioctl(sock.fileno(), request, bytes(4))
        count: int = struct.unpack("i", answer)[0]
        return count

    def call_fcntl(self, args: Args) -> list[str] | None:
        sock, command = self.sock(args), args.text("cmd")
        current = fcntl.fcntl(sock.fileno(), fcntl.F_GETFL)
        if command == "F_GETFL":
            return flag_names(current, FILE_STATUS_FLAGS)
        if command == "F_SETFL":
            wanted = args.names("flags", FILE_STATUS_FLAGS)
            known = 0
            for bit in FILE_STATUS_FLAGS.values():
                known |= bit
            fcntl.fcntl(sock.fileno(), fcntl.F_SETFL, (current & ~known) | wanted)
            return None
        raise NotSupported(f"unknown fcntl cmd {command!r}")

    def call_shutdown(self, args: Args) -> None:
        self.sock(args).shutdown(args.choice("how", SHUTDOWN_HOW))

    def call_close(self, args: Args) -> None:
        self.sockets.remove(args.integer("sock")).close()

    def call_poll(self, args: Args) -> list[str]:
        sock = self.sock(args)
        events = args.names("events", POLL_EVENTS)
        timeout_ms = args.integer("timeout_ms")
        poller = select.poll()
        poller.register(sock.fileno(), events)
        returned = 0
        for _fd, revents in poller.poll(timeout_ms):
            returned |= revents
        return flag_names(returned, POLL_EVENTS)

    def call_getsockname(self, args: Args) -> dict[str, Any]:
        return endpoint_json(self.sock(args).getsockname())

    def call_getpeername(self, args: Args) -> dict[str, Any]:
        return endpoint_json(self.sock(args).getpeername())

    def call_snapshot(self, args: Args) -> dict[str, Any]:
        tcp_states = tcp_states_by_inode()
        return {
            "sockets": [
                self.describe(handle, sock, tcp_states) for handle, sock in self.sockets.items()
            ],
            "settings": read_settings(),
        }

    def describe(
        self, handle: int, sock: socket.socket, tcp_states: Mapping[int, str]
    ) -> dict[str, Any]:
        """One held socket for `snapshot`."""
        is_tcp = sock.type == socket.SOCK_STREAM
        description: dict[str, Any] = {"sock": handle, "type": "tcp" if is_tcp else "udp"}
        for key, query in (("local", sock.getsockname), ("peer", sock.getpeername)):
            try:
                description[key] = endpoint_json(query())
            except OSError:
                description[key] = None
        if is_tcp:
            try:
                inode = os.fstat(handle).st_ino
            except OSError:
                inode = -1
            # A socket that is neither bound nor connected is not listed: it is CLOSE.
            description["state"] = tcp_states.get(inode, "CLOSE")
        return description


CLONE_NEWNET: Final = 0x40000000
NETNS_DIR: Final = Path("/run/netns")


def enter_netns(name: str) -> None:
    """setns(2) into a named namespace (Python 3.11 has no os.setns). A missing one is an
    error, never created."""
    import ctypes  # only the agent started with --netns needs it

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    responses = take_stdout()
    parser = argparse.ArgumentParser(description="Linux DUT agent (docs/agent-protocol.md)")
    parser.add_argument("--netns", help="network namespace to enter before serving")
    options = parser.parse_args(argv)
    if options.netns:
        try:
            enter_netns(options.netns)
        except OSError as exc:
            print(f"cannot enter network namespace {options.netns!r}: {exc}", file=sys.stderr)
            return 2
    LinuxAgent(ResponseWriter(responses)).serve(sys.stdin.buffer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
