"""How the socket API fails: an errno by name, or a facility the stack lacks."""


class SocketError(Exception):
    """A call failed as a POSIX call fails: ``errno`` is the name, e.g. "ECONNREFUSED"."""

    def __init__(self, errno: str, detail: str = "") -> None:
        super().__init__(errno, detail)
        self.errno = errno
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.errno}: {self.detail}" if self.detail else self.errno


class Unsupported(Exception):
    """The reference stack does not implement this call, option or socket type."""
