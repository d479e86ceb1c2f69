"""The Linux agent and its client, exercised with real sockets in a private namespace.

Every test gets a fresh network namespace with only `lo` up and talks to 127.0.0.1.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_protocol.names import CALLS, PROTOCOL_VERSION
from conformance.agent.client import AgentClient, AgentError, Errno, StillBlocked, Unsupported

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

LOOPBACK = "127.0.0.1"
WAIT = 5.0  # seconds; a bound on waits, never a sleep


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def agent_argv(namespace: str) -> list[str]:
    return [sys.executable, "-m", "conformance.agent.linux", "--netns", namespace]


@pytest.fixture
def namespace() -> Iterator[str]:
    """A fresh network namespace with `lo` up, removed afterwards on every path."""
    from pyroute2 import NetNS, netns

    name = f"cf-test-agent-{secrets.token_hex(4)}"
    netns.create(name)
    try:
        with NetNS(name, flags=0) as ns:
            (lo,) = ns.link_lookup(ifname="lo")
            ns.link("set", index=lo, state="up")
        yield name
    finally:
        netns.remove(name)


@pytest.fixture
def agent(namespace: str) -> Iterator[AgentClient]:
    client = AgentClient(agent_argv(namespace), name="linux-test")
    try:
        client.hello()
        yield client
    finally:
        client.close()


def udp_socket(agent: AgentClient, port: int = 0) -> tuple[int, int]:
    """A UDP socket bound to 127.0.0.1: its handle and port."""
    sock = agent.call("socket", {"type": "udp"})
    assert agent.call("bind", {"sock": sock, "addr": LOOPBACK, "port": port}) is None
    return sock, agent.call("getsockname", {"sock": sock})["port"]


def closed_udp_port(agent: AgentClient) -> int:
    """A UDP port on 127.0.0.1 with nothing bound to it."""
    sock, port = udp_socket(agent)
    agent.call("close", {"sock": sock})
    return port


def wait_for_error(agent: AgentClient, sock: int) -> None:
    """Waits until the socket has an error pending (the ICMP has come back)."""
    events = agent.call("poll", {"sock": sock, "events": ["POLLIN"], "timeout_ms": 2000})
    assert "POLLERR" in events


def test_hello_lists_every_call(agent: AgentClient) -> None:
    hello = agent.hello()
    assert hello["agent"] == "linux"
    assert hello["protocol"] == PROTOCOL_VERSION
    assert set(hello["calls"]) == set(CALLS)


def test_udp_round_trip_keeps_data_intact(agent: AgentClient) -> None:
    receiver, receiver_port = udp_socket(agent)
    sender, sender_port = udp_socket(agent)
    payload = bytes(range(256))

    sent = agent.call(
        "sendto", {"sock": sender, "data": b64(payload), "addr": LOOPBACK, "port": receiver_port}
    )
    received = agent.call("recvfrom", {"sock": receiver, "size": 1000})

    assert sent == len(payload)
    assert base64.b64decode(received["data"]) == payload
    assert (received["addr"], received["port"]) == (LOOPBACK, sender_port)


def test_connected_udp_reports_refusal_on_a_later_call(agent: AgentClient) -> None:
    port = closed_udp_port(agent)
    sock = agent.call("socket", {"type": "udp"})
    agent.call("connect", {"sock": sock, "addr": LOOPBACK, "port": port})

    assert agent.call("send", {"sock": sock, "data": b64(b"ping")}) == 4
    wait_for_error(agent, sock)

    assert agent.call("send", {"sock": sock, "data": b64(b"again")}) == Errno("ECONNREFUSED")


def test_so_error_reports_and_clears_a_pending_error(agent: AgentClient) -> None:
    port = closed_udp_port(agent)
    sock = agent.call("socket", {"type": "udp"})
    assert agent.call("getsockopt", {"sock": sock, "name": "SO_ERROR"}) is None
    agent.call("connect", {"sock": sock, "addr": LOOPBACK, "port": port})
    agent.call("send", {"sock": sock, "data": b64(b"ping")})
    wait_for_error(agent, sock)

    assert agent.call("getsockopt", {"sock": sock, "name": "SO_ERROR"}) == "ECONNREFUSED"
    assert agent.call("getsockopt", {"sock": sock, "name": "SO_ERROR"}) is None


def test_error_queue_describes_the_icmp_port_unreachable(agent: AgentClient) -> None:
    port = closed_udp_port(agent)
    sock, _ = udp_socket(agent)
    agent.call("setsockopt", {"sock": sock, "name": "IP_RECVERR", "value": 1})
    agent.call("sendto", {"sock": sock, "data": b64(b"probe"), "addr": LOOPBACK, "port": port})
    wait_for_error(agent, sock)

    message = agent.call("recvmsg", {"sock": sock, "size": 100, "flags": ["MSG_ERRQUEUE"]})

    assert "MSG_ERRQUEUE" in message["flags"]
    assert (message["addr"], message["port"]) == (LOOPBACK, port)
    assert base64.b64decode(message["data"]) == b"probe"
    error = message["errqueue"]
    assert error["errno"] == "ECONNREFUSED"
    assert (error["origin"], error["type"], error["code"]) == ("ICMP", 3, 3)
    assert error["offender"] == {"addr": LOOPBACK, "port": 0}


def test_dontwait_recv_on_an_empty_socket_gives_eagain(agent: AgentClient) -> None:
    sock, _ = udp_socket(agent)
    result = agent.call("recv", {"sock": sock, "size": 10, "flags": ["MSG_DONTWAIT"]})
    assert result == Errno("EAGAIN")
    assert str(result) == "EAGAIN"


def test_background_accept_completes_after_a_connect(agent: AgentClient) -> None:
    listener = agent.call("socket", {"type": "tcp"})
    agent.call("bind", {"sock": listener, "addr": LOOPBACK, "port": 0})
    agent.call("listen", {"sock": listener, "backlog": 4})
    port = agent.call("getsockname", {"sock": listener})["port"]

    accepting = agent.start("accept", {"sock": listener})
    assert not accepting.done()
    client = agent.call("socket", {"type": "tcp"})
    agent.call("connect", {"sock": client, "addr": LOOPBACK, "port": port})
    accepted = accepting.result(WAIT)

    client_name = agent.call("getsockname", {"sock": client})
    assert (accepted["addr"], accepted["port"]) == (client_name["addr"], client_name["port"])
    agent.call("send", {"sock": client, "data": b64(b"hello")})
    received = agent.call("recv", {"sock": accepted["sock"], "size": 5, "flags": ["MSG_WAITALL"]})
    assert base64.b64decode(received["data"]) == b"hello"


def test_background_recv_times_out_with_the_call_named(agent: AgentClient) -> None:
    """A call the DUT never lets return, while the agent lives, is StillBlocked: the
    DUT's doing, which a case judges, not a harness fault."""
    sock, _ = udp_socket(agent)
    receiving = agent.start("recv", {"sock": sock, "size": 10})
    with pytest.raises(StillBlocked, match="recv"):
        receiving.result(0.2)
    assert agent.call("getsockname", {"sock": sock})["port"] > 0  # the agent still answers


def test_a_call_outliving_its_agent_is_a_harness_error(namespace: str) -> None:
    client = AgentClient(agent_argv(namespace), name="linux-test")
    client.hello()
    sock, _ = udp_socket(client)
    receiving = client.start("recv", {"sock": sock, "size": 10})
    client.close()
    with pytest.raises(AgentError) as raised:
        receiving.result(0.2)
    assert not isinstance(raised.value, StillBlocked)


def test_fcntl_sets_and_reads_nonblocking(agent: AgentClient) -> None:
    sock, _ = udp_socket(agent)
    assert agent.call("fcntl", {"sock": sock, "cmd": "F_GETFL"}) == []

    assert agent.call("fcntl", {"sock": sock, "cmd": "F_SETFL", "flags": ["O_NONBLOCK"]}) is None
    assert agent.call("fcntl", {"sock": sock, "cmd": "F_GETFL"}) == ["O_NONBLOCK"]
    assert agent.call("recv", {"sock": sock, "size": 10}) == Errno("EAGAIN")

    agent.call("fcntl", {"sock": sock, "cmd": "F_SETFL", "flags": []})
    assert agent.call("fcntl", {"sock": sock, "cmd": "F_GETFL"}) == []


def test_ioctl_fionread_counts_the_queued_datagram(agent: AgentClient) -> None:
    receiver, port = udp_socket(agent)
    sender, _ = udp_socket(agent)
    assert agent.call("ioctl", {"sock": receiver, "request": "FIONREAD"}) == 0

    agent.call("sendto", {"sock": sender, "data": b64(b"12345"), "addr": LOOPBACK, "port": port})
    assert agent.call("poll", {"sock": receiver, "events": ["POLLIN"], "timeout_ms": 2000}) == [
        "POLLIN"
    ]

    assert agent.call("ioctl", {"sock": receiver, "request": "FIONREAD"}) == 5
    assert agent.call("ioctl", {"sock": sender, "request": "SIOCOUTQ"}) == 0


def test_socket_options_round_trip(agent: AgentClient) -> None:
    sock = agent.call("socket", {"type": "tcp"})
    options: dict[str, Any] = {
        "SO_REUSEADDR": 1,
        "IP_TTL": 17,
        "IP_MTU_DISCOVER": "IP_PMTUDISC_PROBE",
        "SO_LINGER": {"onoff": 1, "linger": 3},
        "TCP_NODELAY": 1,
    }
    for name, value in options.items():
        agent.call("setsockopt", {"sock": sock, "name": name, "value": value})
        assert agent.call("getsockopt", {"sock": sock, "name": name}) == value
    assert agent.call("getsockopt", {"sock": sock, "name": "SO_TYPE"}) == "tcp"
    assert agent.call("getsockopt", {"sock": sock, "name": "IP_MTU"}) == Errno("ENOTCONN")


def test_unknown_call_option_and_flag_are_unsupported(agent: AgentClient) -> None:
    sock, _ = udp_socket(agent)
    with pytest.raises(Unsupported, match="frobnicate"):
        agent.call("frobnicate", {})
    with pytest.raises(Unsupported, match="SO_FROB"):
        agent.call("getsockopt", {"sock": sock, "name": "SO_FROB"})
    with pytest.raises(Unsupported, match="MSG_FROB"):
        agent.call("recv", {"sock": sock, "size": 1, "flags": ["MSG_FROB"]})


def test_bad_requests_are_harness_errors(agent: AgentClient) -> None:
    with pytest.raises(AgentError, match="handle"):
        agent.call("close", {"sock": 9999})
    with pytest.raises(AgentError, match="type"):
        agent.call("socket", {})
    # The agent keeps serving after rejecting requests.
    assert agent.call("socket", {"type": "udp"}) >= 0


def test_snapshot_lists_sockets_and_settings(agent: AgentClient) -> None:
    listener = agent.call("socket", {"type": "tcp"})
    agent.call("bind", {"sock": listener, "addr": LOOPBACK, "port": 0})
    agent.call("listen", {"sock": listener, "backlog": 1})

    snapshot = agent.call("snapshot", {})

    (described,) = snapshot["sockets"]
    assert described["sock"] == listener
    assert described["type"] == "tcp"
    assert described["state"] == "LISTEN"
    assert described["local"]["addr"] == LOOPBACK
    assert described["peer"] is None
    assert "net.ipv4.tcp_rfc1337" in snapshot["settings"]


def test_close_leaves_no_process(namespace: str) -> None:
    client = AgentClient(agent_argv(namespace))
    try:
        client.hello()
        pid = client.pid
    finally:
        client.close()
    client.close()  # idempotent

    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(AgentError):
        client.call("hello", {})


def test_agent_exits_cleanly_on_eof_and_prints_only_responses(namespace: str) -> None:
    requests = b'{"id": 1, "call": "hello", "args": {}}\n{"id": 2, "call": "socket", "args": {}}\n'
    finished = subprocess.run(
        agent_argv(namespace), input=requests, capture_output=True, timeout=30, check=False
    )
    assert finished.returncode == 0, finished.stderr.decode()
    lines = finished.stdout.decode().splitlines()
    assert len(lines) == 2
    assert '"id": 1, "result"' in lines[0]
    assert '"id": 2, "error"' in lines[1]


def test_missing_namespace_is_reported_on_stderr() -> None:
    client = AgentClient(agent_argv(f"cf-test-agent-missing-{secrets.token_hex(4)}"))
    try:
        with pytest.raises(AgentError):
            client.hello()
    finally:
        client.close()
    # Kept after close, whose file is closed (not left to the garbage collector).
    assert "cannot enter network namespace" in client.stderr_text
    assert client._stderr.closed


STREAM_ID_OPTION = bytes([136, 4, 0x12, 0x34])  # RFC 791 Stream Identifier, one word


def test_ip_options_are_set_read_back_and_sent(agent: AgentClient) -> None:
    receiver, port = udp_socket(agent)
    sender, _ = udp_socket(agent)
    agent.call("setsockopt", {"sock": receiver, "name": "IP_RECVOPTS", "value": 1})
    agent.call("setsockopt", {"sock": sender, "name": "IP_OPTIONS", "value": b64(STREAM_ID_OPTION)})
    assert agent.call("getsockopt", {"sock": sender, "name": "IP_OPTIONS"}) == b64(
        STREAM_ID_OPTION
    )

    agent.call("sendto", {"sock": sender, "data": b64(b"opt"), "addr": LOOPBACK, "port": port})
    message = agent.call("recvmsg", {"sock": receiver, "size": 100})

    assert base64.b64decode(message["ancillary"]["options"]) == STREAM_ID_OPTION
    assert agent.call("getsockopt", {"sock": receiver, "name": "IP_OPTIONS"}) == ""


def test_recvmsg_returns_the_tos_and_destination_asked_for(agent: AgentClient) -> None:
    receiver, port = udp_socket(agent)
    sender, _ = udp_socket(agent)
    agent.call("setsockopt", {"sock": sender, "name": "IP_TOS", "value": 0x28})
    payload = {"sock": sender, "data": b64(b"tos"), "addr": LOOPBACK, "port": port}

    agent.call("sendto", payload)
    assert agent.call("recvmsg", {"sock": receiver, "size": 100})["ancillary"] == {}

    for name in ("IP_RECVTOS", "IP_PKTINFO"):
        agent.call("setsockopt", {"sock": receiver, "name": name, "value": 1})
        assert agent.call("getsockopt", {"sock": receiver, "name": name}) == 1
    agent.call("sendto", payload)
    ancillary = agent.call("recvmsg", {"sock": receiver, "size": 100})["ancillary"]

    assert ancillary["tos"] == 0x28
    assert ancillary["pktinfo"] == {"ifindex": 1, "spec_dst": LOOPBACK, "addr": LOOPBACK}
    assert "options" not in ancillary


def test_urgent_data_inline_stops_reads_at_the_mark(agent: AgentClient) -> None:
    listener = agent.call("socket", {"type": "tcp"})
    agent.call("bind", {"sock": listener, "addr": LOOPBACK, "port": 0})
    agent.call("listen", {"sock": listener, "backlog": 1})
    port = agent.call("getsockname", {"sock": listener})["port"]
    client = agent.call("socket", {"type": "tcp"})
    agent.call("connect", {"sock": client, "addr": LOOPBACK, "port": port})
    server = agent.call("accept", {"sock": listener})["sock"]
    agent.call("setsockopt", {"sock": server, "name": "SO_OOBINLINE", "value": 1})
    assert agent.call("getsockopt", {"sock": server, "name": "SO_OOBINLINE"}) == 1

    agent.call("send", {"sock": client, "data": b64(b"ab")})
    agent.call("send", {"sock": client, "data": b64(b"xyz"), "flags": ["MSG_OOB"]})
    events = agent.call("poll", {"sock": server, "events": ["POLLPRI"], "timeout_ms": 2000})

    assert events == ["POLLPRI"]
    assert agent.call("ioctl", {"sock": server, "request": "SIOCATMARK"}) == 0
    assert agent.call("recv", {"sock": server, "size": 100}) == {"data": b64(b"abxy")}
    assert agent.call("ioctl", {"sock": server, "request": "SIOCATMARK"}) == 1
    assert agent.call("recv", {"sock": server, "size": 100, "flags": ["MSG_OOB"]}) == Errno(
        "EINVAL"
    )
    assert agent.call("recv", {"sock": server, "size": 100}) == {"data": b64(b"z")}
    assert agent.call("ioctl", {"sock": server, "request": "SIOCATMARK"}) == 0
