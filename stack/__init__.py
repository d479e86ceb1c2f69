"""The reference TCP/UDP/IPv4 stack, sans-I/O. So far only its wire codecs (`stack/wire`):
the protocol layers, `stack/io` and the `ref` target come next (issue 3).
"""
