"""Property: between two reference stacks, whatever the link drops, duplicates or
reorders, a TCP connection delivers each byte stream exactly, in order, and both sides
close cleanly (RFC 9293 3.10: reliable, ordered delivery; 3.6: closing). The schedules
stay below the retransmission limits (see `Faults`), so only a bug can fail them."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stack.timing import MILLISECOND, SECOND
from tests.tcp_pair import Faults, Pair, StreamReader, StreamWriter

MAX_STREAM = 200_000
CLOSE_WITHIN = 120 * SECOND
# The slowest reader pauses 5 s and drains 200 kB at 500 bytes per 50 ms (20 s), plus
# what losses cost.
SLOW_READER_WITHIN = 1200 * SECOND
CLEAN_ENDS = {("TIME-WAIT", "CLOSED"), ("CLOSED", "TIME-WAIT"), ("TIME-WAIT", "TIME-WAIT")}
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def stream_lengths(longest: int) -> st.SearchStrategy[int]:
    """Any length, with long streams as likely as short ones (hypothesis favours small
    integers)."""
    return st.integers(0, longest) | st.integers(longest // 2, longest)


faults = st.builds(
    Faults,
    seed=st.integers(0, 2**32 - 1),
    drop=st.floats(0.0, 0.2),
    duplicate=st.floats(0.0, 0.1),
    reorder=st.floats(0.0, 0.3),
)
chunk_sizes = st.lists(st.integers(1, 30_000), min_size=1, max_size=8)


def stream(length: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(length)


@PROPERTY_SETTINGS
@given(
    length=stream_lengths(MAX_STREAM), seed=st.integers(0, 2**16), chunks=chunk_sizes,
    faults=faults,
)
def test_one_way_stream_arrives_intact_and_both_sides_close(
    length: int, seed: int, chunks: list[int], faults: Faults,
) -> None:
    pair = Pair(faults=faults)
    client, server = pair.connect()
    data = stream(length, seed)
    writer = StreamWriter(pair.a, client, data, chunks)
    reader = StreamReader(pair.b, server)
    pair.run(lambda: all([writer.pump(), reader.pump()]))
    assert bytes(reader.received) == data
    # B has read A's FIN (the end of the stream); it shuts down in turn, and A reads
    # the end of the stream.
    pair.b.shutdown(server, "SHUT_WR")
    back = StreamReader(pair.a, client)
    pair.run(back.pump)
    assert back.received == b""
    # RFC 9293 3.6: A closed first and waits in TIME-WAIT; B is CLOSED once A's ACK of
    # its FIN arrived.
    pair.run(lambda: (pair.a.state(client), pair.b.state(server)) == ("TIME-WAIT", "CLOSED"),
             within=CLOSE_WITHIN)
    pair.a.close(client)
    pair.b.close(server)


@PROPERTY_SETTINGS
@given(
    lengths=st.tuples(stream_lengths(MAX_STREAM // 2), stream_lengths(MAX_STREAM // 2)),
    seed=st.integers(0, 2**16), chunks=st.tuples(chunk_sizes, chunk_sizes), faults=faults,
)
# Found by this test: after timeouts sent both sides back (go-back-N), each side's ACKs
# carried the rewound SND.NXT, which the other found old and dropped unread: deadlock.
@example(lengths=(49980, 24822), seed=0, chunks=([1], [1]),
         faults=Faults(seed=90, drop=0.1875, duplicate=0.0, reorder=0.0))
def test_streams_both_ways_at_once_arrive_intact(
    lengths: tuple[int, int], seed: int, chunks: tuple[list[int], list[int]], faults: Faults,
) -> None:
    pair = Pair(faults=faults)
    client, server = pair.connect()
    to_b, to_a = stream(lengths[0], seed), stream(lengths[1], seed + 1)
    pumps = [
        StreamWriter(pair.a, client, to_b, chunks[0]), StreamReader(pair.b, server),
        StreamWriter(pair.b, server, to_a, chunks[1]), StreamReader(pair.a, client),
    ]
    # Every pump runs on every step: the four directions progress together.
    pair.run(lambda: all([pump.pump() for pump in pumps]))
    from_a, from_b = pumps[1], pumps[3]
    assert isinstance(from_a, StreamReader) and isinstance(from_b, StreamReader)
    assert bytes(from_a.received) == to_b
    assert bytes(from_b.received) == to_a
    # Both sent FIN and read the other's; once the last ACKs arrive, the side that
    # closed first waits in TIME-WAIT and the other is CLOSED (both wait in TIME-WAIT
    # after a simultaneous close, RFC 9293 3.6 case 2).
    pair.run(lambda: final_states(pair, client, server) in CLEAN_ENDS, within=CLOSE_WITHIN)
    pair.a.close(client)
    pair.b.close(server)


def final_states(pair: Pair, client: int, server: int) -> tuple[str | None, str | None]:
    return pair.a.state(client), pair.b.state(server)


@PROPERTY_SETTINGS
@given(
    length=stream_lengths(MAX_STREAM), seed=st.integers(0, 2**16), chunks=chunk_sizes,
    per_read=st.integers(500, 30_000), interval_ms=st.integers(1, 50),
    pause_ms=st.integers(0, 5_000), faults=faults,
)
def test_a_slow_reader_closes_the_window_and_the_stream_still_arrives_intact(
    length: int, seed: int, chunks: list[int], per_read: int, interval_ms: int,
    pause_ms: int, faults: Faults,
) -> None:
    # RFC 9293 3.8.6: the window closes (to zero while the reader pauses) and reopens
    # as the reader drains the buffer; RFC 1122 4.2.2.17: a zero window is probed,
    # also when the window update is lost.
    pair = Pair(faults=faults)
    client, server = pair.connect()
    data = stream(length, seed)
    writer = StreamWriter(pair.a, client, data, chunks)
    reader = StreamReader(pair.b, server, per_read=per_read,
                          interval=interval_ms * MILLISECOND,
                          start=pair.now + pause_ms * MILLISECOND)
    pair.run(lambda: all([writer.pump(), reader.pump()]), wake=reader.wake,
             within=SLOW_READER_WITHIN)
    assert bytes(reader.received) == data
