"""Packet-level TCP/UDP/IPv4 conformance tester."""

__version__ = "0.1.0"
