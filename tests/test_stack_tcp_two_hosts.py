"""Stack TCP: two reference stacks joined by a virtual link, on the virtual clock.

Frames go from one host straight to the other; time jumps to the next timer whenever
the link is quiet. A whole conversation runs with no sleeps and no I/O.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Network

from stack.errors import SocketError
from stack.host import Host, InterfaceConfig
from stack.settings import Settings
from stack.sockets import SocketApi
from stack.tcp.state import State
from stack.timing import SECOND, Nanoseconds, earliest
from stack.wire.ethernet import MacAddress

NETWORK = IPv4Network("192.0.2.0/24")
SERVER_IP, CLIENT_IP = IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")
PORT = 7000


def make_host(address: IPv4Address, mac: str, seed: int, settings: Settings) -> Host:
    config = InterfaceConfig(MacAddress.from_string(mac), address, NETWORK)
    return Host(config, settings, random.Random(seed))


class TwoHosts:
    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or Settings()
        self.now: Nanoseconds = 1_000 * SECOND
        self.server = make_host(SERVER_IP, "02:00:00:00:00:01", 1, settings)
        self.client = make_host(CLIENT_IP, "02:00:00:00:00:02", 2, settings)
        self.server_api, self.client_api = SocketApi(self.server), SocketApi(self.client)

    def exchange(self) -> bool:
        """Deliver every frame in flight; True if any moved."""
        moved = False
        while True:
            to_client, to_server = self.server.take_frames(), self.client.take_frames()
            if not to_client and not to_server:
                return moved
            moved = True
            for frame in to_client:
                self.client.receive(frame, self.now)
            for frame in to_server:
                self.server.receive(frame, self.now)

    def run_until(self, done: object, limit: Nanoseconds = 600 * SECOND) -> None:
        """Exchange frames and run timers until ``done()`` holds (it is a callable)."""
        assert callable(done)
        deadline = self.now + limit
        while not done():
            if self.exchange():
                continue
            due = earliest(self.server.next_timer(), self.client.next_timer())
            assert due is not None and due <= deadline, "stuck: nothing left to happen"
            self.now = max(self.now, due)
            self.server.poll(self.now)
            self.client.poll(self.now)


def receive_all(api: SocketApi, handle: int, into: bytearray) -> bool:
    """Read what is there; True at the end of the stream."""
    while True:
        try:
            data = api.recvmsg(handle, 65536, set()).data
        except SocketError as error:
            assert error.errno == "EAGAIN", error
            return False
        if not data:
            return True
        into += data


def test_a_megabyte_each_way_then_both_close() -> None:
    pair = TwoHosts()
    listener = pair.server_api.socket("tcp")
    pair.server_api.bind(listener, SERVER_IP, PORT)
    pair.server_api.listen(listener, 4, pair.now)
    client = pair.client_api.socket("tcp")
    try:
        pair.client_api.connect(client, SERVER_IP, PORT, pair.now)
    except SocketError as error:
        assert error.errno == "EINPROGRESS"
    pair.run_until(lambda: pair.client_api.finish_connect(client))
    server = pair.server_api.accept(listener).handle

    upload = random.Random(3).randbytes(1 << 20)
    download = random.Random(4).randbytes(1 << 20)
    sent = {"up": 0, "down": 0}
    got_up, got_down = bytearray(), bytearray()
    ended = {"up": False, "down": False}

    def step() -> bool:
        if sent["up"] < len(upload):
            try:
                sent["up"] += pair.client_api.sendto(client, upload[sent["up"]:], None, set(),
                                                     pair.now)
            except SocketError as error:
                assert error.errno == "EAGAIN"
            if sent["up"] == len(upload):
                pair.client_api.shutdown(client, "SHUT_WR", pair.now)
        if sent["down"] < len(download):
            try:
                sent["down"] += pair.server_api.sendto(server, download[sent["down"]:], None,
                                                       set(), pair.now)
            except SocketError as error:
                assert error.errno == "EAGAIN"
            if sent["down"] == len(download):
                pair.server_api.shutdown(server, "SHUT_WR", pair.now)
        ended["up"] = ended["up"] or receive_all(pair.server_api, server, got_up)
        ended["down"] = ended["down"] or receive_all(pair.client_api, client, got_down)
        return ended["up"] and ended["down"]

    pair.run_until(step)
    assert bytes(got_up) == upload and bytes(got_down) == download
    pair.client_api.close(client, pair.now)
    pair.server_api.close(server, pair.now)
    pair.exchange()
    states = {sock.state for host in (pair.server, pair.client)
              for sock in host.tcp.connections.values()}
    assert states <= {State.TIME_WAIT}
    pair.run_until(lambda: not pair.client.tcp.connections and not pair.server.tcp.connections)
