"""The kernel side of a TAP device whose other end a user-space stack holds.

For the reference stack (and other user-space stacks), the stack owns the TAP
descriptor; the tester reads and writes frames through an AF_PACKET socket bound to the
same device inside a lab namespace where the kernel has no address, so the kernel itself
stays silent. The socket also returns the frames it sent (PACKET_OUTGOING); those are
skipped, since the capture records what the tester injects when it injects it.
"""

import socket

from conformance.lab.netns import Lab, run_in_namespace

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


class PacketSocketWire:
    """A packet socket on an interface inside a lab namespace."""

    def __init__(self, lab: Lab, ifname: str) -> None:
        def open_socket() -> socket.socket:
            # A packet socket belongs to the namespace of the thread that creates it.
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.bind((ifname, ETH_P_ALL))
            sock.setblocking(False)
            return sock

        self._socket = run_in_namespace(lab.name, open_socket)

    def fileno(self) -> int:
        return self._socket.fileno()

    def read_frame(self) -> bytes | None:
        while True:
            try:
                data, address = self._socket.recvfrom(65536)
            except BlockingIOError:
                return None
            if address[2] != PACKET_OUTGOING:
                return data

    def write_frame(self, frame: bytes) -> None:
        self._socket.send(frame)

    def close(self) -> None:
        self._socket.close()
