"""A real agent behind a proxy that breaks one rule of docs/agent-protocol.md, for
tests/test_agent_check.py: `python3 tests/agents/misbehaving.py --fault FAULT -- CMD ...`.

The proxy runs CMD as its child (passing on the TAP descriptor of `CF_TAP_FD`), hands it
the requests of its stdin and hands its responses to its stdout, except for the fault:

  none           none: the agent as it is, to show that the proxy alone breaks nothing
  greeting       a banner line on stdout before any response
  banner         a banner line on stdout once stdin has ended
  unknown-error  a call the protocol lacks answered "error", not "unsupported"
  errno-number   every errno answered as its number ({"errno": 11}), not its name
  ignore-eof     the child is left running when stdin ends, and the proxy with it
  in-order       responses in the order of the requests: none while a background call waits
  twice          the last response sent again once stdin has ended

Each fault says on stderr what it did, so that the tester's evidence shows it.
"""

import argparse
import errno
import json
import os
import subprocess
import sys
import threading
from typing import IO, Any

from agent_protocol.names import CALLS

FAULTS = ("none", "greeting", "banner", "unknown-error", "errno-number", "ignore-eof", "in-order",
          "twice")


class Proxy:
    """Pumps requests to the child and responses back, breaking the rule of `fault`."""

    def __init__(self, fault: str, child: subprocess.Popen[bytes]) -> None:
        self.fault = fault
        self.child = child
        self.lock = threading.Lock()  # guards stdout, `order` and `held`
        self.order: list[int] = []  # ids not yet answered, in the order of the requests
        self.held: dict[int, bytes] = {}  # responses waiting for an earlier one
        self.last = b""  # the latest response written

    def emit(self, line: bytes) -> None:
        with self.lock:
            self._write(line)

    def _write(self, line: bytes) -> None:
        self.last = line
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()

    def pump_requests(self, requests: IO[bytes]) -> None:
        child_stdin = self.child.stdin
        assert child_stdin is not None
        for line in requests:
            request: Any = json.loads(line)
            if self.fault == "unknown-error" and request["call"] not in CALLS:
                say(f"answering the unknown call {request['call']!r} with error")
                self.emit(
                    json.dumps({"id": request["id"], "error": "no such call"}).encode() + b"\n"
                )
                continue
            with self.lock:
                self.order.append(request["id"])
            child_stdin.write(line)
            child_stdin.flush()

    def pump_responses(self) -> None:
        child_stdout = self.child.stdout
        assert child_stdout is not None
        for line in child_stdout:
            response = json.loads(line)
            if self.fault == "errno-number" and isinstance(response.get("errno"), str):
                say(f"answering errno {response['errno']} by its number")
                response["errno"] = getattr(errno, response["errno"])
                line = json.dumps(response).encode() + b"\n"
            with self.lock:
                if self.fault != "in-order":
                    self._write(line)
                    continue
                self.held[response["id"]] = line
                if self.order and self.order[0] != response["id"]:
                    say(
                        f"holding the response to {response['id']} until {self.order[0]} "
                        "is answered"
                    )
                while self.order and self.order[0] in self.held:
                    self._write(self.held.pop(self.order.pop(0)))


def say(message: str) -> None:
    print(f"misbehaving: {message}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=FAULTS, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    options = parser.parse_args()
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    tap_fd = os.environ.get("CF_TAP_FD")
    child = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=(int(tap_fd),) if tap_fd else (),
    )
    proxy = Proxy(options.fault, child)
    if options.fault == "greeting":
        say("greeting on stdout")
        proxy.emit(b"agent ready\n")
    responses = threading.Thread(target=proxy.pump_responses, name="responses")
    responses.start()
    proxy.pump_requests(sys.stdin.buffer)
    if options.fault == "banner":
        say("a banner on stdout at the end of input")
        proxy.emit(b"end of input: closing every socket\n")
    if options.fault == "twice":
        say("the last response again at the end of input")
        proxy.emit(proxy.last)
    if options.fault == "ignore-eof":
        say("ignoring the end of input")
    else:
        assert child.stdin is not None
        child.stdin.close()
    status = child.wait()
    responses.join()
    return status


if __name__ == "__main__":
    sys.exit(main())
