"""Initial sequence numbers per RFC 6528: ISN = M + F(localip, localport, remoteip,
remoteport, secretkey), where M is a timer ticking every 4 microseconds and F a keyed
pseudorandom function of the connection's 4-tuple (here HMAC-SHA-256, truncated to 32
bits; Linux uses SipHash)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from stack.endpoints import Endpoint
from stack.timing import Nanoseconds

TICK: Final[Nanoseconds] = 4_000  # RFC 6528 3 / RFC 9293 3.4.1: M ticks every 4 us
MODULUS: Final = 1 << 32


class IsnGenerator:
    def __init__(self, secret: bytes) -> None:
        # RFC 6528 3: the secret key; the caller makes it random, and a test fixes it.
        self._secret = secret

    def isn(self, local: Endpoint, remote: Endpoint, now: Nanoseconds) -> int:
        """The ISN for a connection between ``local`` and ``remote`` starting at ``now``."""
        tuple_bytes = b"".join(
            address.packed + port.to_bytes(2, "big") for address, port in (local, remote)
        )
        offset = int.from_bytes(
            hmac.new(self._secret, tuple_bytes, hashlib.sha256).digest()[:4], "big"
        )
        return (now // TICK + offset) % MODULUS
