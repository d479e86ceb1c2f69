"""The DUT agent protocol (docs/agent-protocol.md), shared by the tester and every agent.

`names`: calls, flags, options and the protocol version; `requests`: reading a request;
`responses`: writing the answers; `values`: the JSON shapes of the values they carry;
`server`: the base of an agent written in Python. It imports neither the tester
(`conformance`) nor `stack`.
"""
