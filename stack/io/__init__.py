"""The only part of the reference stack that touches the OS: a TAP device, a clock, an
event loop and the agent server that drives the socket API for the tester."""
