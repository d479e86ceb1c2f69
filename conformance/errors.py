"""Error types shared across the tester; each maps to a verdict or an exit status."""


class HarnessError(Exception):
    """The tester itself failed: verdict `error`, never blamed on the DUT."""


class EnvironmentProblem(HarnessError):
    """The machine lacks something required (privilege, /dev/net/tun, tshark): exit 3."""


class UsageError(Exception):
    """The user asked for something that does not exist: exit 2."""
