"""TAP devices: opened through /dev/net/tun; the opener holds the wire end."""

import fcntl
import os
import struct

from conformance.errors import EnvironmentProblem

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFNAMSIZ = 16


def open_tap(ifname: str) -> int:
    """Create a non-persistent TAP device and return its descriptor (non-blocking).

    The device disappears when the last descriptor is closed, so a killed tester never
    leaves one behind.
    """
    if len(ifname) >= IFNAMSIZ:
        raise ValueError(f"interface name too long: {ifname!r}")
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise EnvironmentProblem(f"cannot open /dev/net/tun: {error.strerror}") from error
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", ifname.encode(), IFF_TAP | IFF_NO_PI))
    except OSError as error:
        os.close(fd)
        raise EnvironmentProblem(f"cannot create TAP device {ifname}: {error.strerror}") from error
    return fd
