"""Wire codecs: parse bytes into immutable representations and emit them back.

One module per header; no state, no I/O. Parsing bad input raises only ``WireError``,
whose ``reason`` says why. Fields left as None (lengths, checksums) are computed on
emit; parse always fills them in.
"""
