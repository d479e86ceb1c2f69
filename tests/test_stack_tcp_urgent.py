"""Stack TCP: urgent data as the reader sees it (RFC 9293 3.8.5, Linux tcp(7)): the mark
at the last urgent octet where reads stop (SIOCATMARK), in the stream with SO_OOBINLINE
or out of it for MSG_OOB, and POLLPRI until the urgent data is read."""

from __future__ import annotations

import pytest
from scapy.layers.inet import TCP

from stack.errors import SocketError
from tests.stack_link import Link
from tests.stack_tcp import Peer, established_passive


def urgent(link: Link, peer: Peer, data: bytes, pointer: int) -> None:
    """``data`` with URG and ``pointer`` (relative to its first octet)."""
    segment = peer.segment("PAU", data)
    segment[TCP].urgptr = pointer
    link.inject(segment)
    peer.flow.sent("PAU", data)


def at_mark(link: Link, handle: int) -> int:
    return link.api.ioctl(handle, "SIOCATMARK")


def test_inline_urgent_data_stays_in_the_stream_and_reads_stop_at_the_mark() -> None:
    link, peer, handle = established_passive()
    link.api.setsockopt(handle, "SO_OOBINLINE", 1, link.now)
    peer.send("PA", b"norm")
    urgent(link, peer, b"urgent", 12)  # the pointer lies in the next segment
    assert link.api.poll(handle, {"POLLPRI"}) == set()  # its last octet has not come
    urgent(link, peer, b"-data!", 6)
    peer.send("PA", b"tail")
    assert link.api.poll(handle, {"POLLPRI"}) == {"POLLPRI"}
    assert at_mark(link, handle) == 0
    assert link.api.recvmsg(handle, 100, set()).data == b"normurgent-data"
    assert at_mark(link, handle) == 1
    with pytest.raises(SocketError, match="EINVAL"):
        link.api.recvmsg(handle, 10, {"MSG_OOB"})
    assert link.api.recvmsg(handle, 100, set()).data == b"!tail"
    assert at_mark(link, handle) == 0
    assert link.api.poll(handle, {"POLLPRI"}) == set()


def test_reads_stop_at_the_mark_without_oobinline_too() -> None:
    """Linux tcp_recvmsg: the urgent octet leaves the stream, and a read stops where it
    was; reading on passes the mark and urgent data is over."""
    link, peer, handle = established_passive()
    urgent(link, peer, b"abc", 3)
    peer.send("PA", b"de")
    assert link.api.recvmsg(handle, 1, set()).data == b"a"
    assert at_mark(link, handle) == 0
    assert link.api.recvmsg(handle, 100, set()).data == b"b"
    assert at_mark(link, handle) == 1
    assert link.api.recvmsg(handle, 10, {"MSG_OOB"}).data == b"c"
    assert link.api.poll(handle, {"POLLPRI"}) == set()
    assert at_mark(link, handle) == 1
    assert link.api.recvmsg(handle, 100, set()).data == b"de"
    assert at_mark(link, handle) == 0


def test_passing_the_mark_unread_ends_the_urgent_data() -> None:
    link, peer, handle = established_passive()
    urgent(link, peer, b"xy", 2)
    peer.send("PA", b"z")
    assert link.api.recvmsg(handle, 100, set()).data == b"x"
    assert link.api.recvmsg(handle, 100, set()).data == b"z"
    with pytest.raises(SocketError, match="EINVAL"):
        link.api.recvmsg(handle, 10, {"MSG_OOB"})


def test_a_peek_leaves_the_mark_where_it_is() -> None:
    link, peer, handle = established_passive()
    link.api.setsockopt(handle, "SO_OOBINLINE", 1, link.now)
    urgent(link, peer, b"abc", 3)
    assert link.api.recvmsg(handle, 100, {"MSG_PEEK"}).data == b"ab"
    assert link.api.recvmsg(handle, 100, set()).data == b"ab"
    assert at_mark(link, handle) == 1
