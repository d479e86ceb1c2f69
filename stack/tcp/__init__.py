"""TCP in the reference stack (RFC 9293, RFC 1122 4.2)."""
