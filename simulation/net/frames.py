"""Control frames between the network process and the parties (employees, users).

They travel as canonical CBOR bytes, like the protocol messages they carry:

network -> party: {"type": "tick", "t", "msgs"}, {"type": "stop", "evaluate"}
party -> network: {"type": "ready"}, {"type": "done", "t", "out", "to", "status"},
                  {"type": "report", "report"}
network -> parent: {"type": "result", ...}
Ray driver -> shard: {"type": "window", "first", "ticks"}, {"type": "stop", "evaluate"}
shard -> Ray driver: {"type": "stepped", "steps"}, {"type": "report", "reports"}
"""

from __future__ import annotations

from typing import Any

from simulation.protocol.encoding import DecodeError, decode, encode

# A report holds a whole chain and mempool: allow more than a protocol frame.
MAX_CONTROL_FRAME_BYTES = 64 * 1024 * 1024


def pack(kind: str, **fields: Any) -> bytes:
    return encode({"type": kind, **fields})


def unpack(data: bytes, expected: str | None = None) -> dict[str, Any]:
    frame = decode(data, max_bytes=MAX_CONTROL_FRAME_BYTES, allow_float=True)
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise DecodeError("control frame without a type")
    if expected is not None and frame["type"] != expected:
        raise DecodeError(f"expected a {expected} frame, got {frame['type']!r}"[:80])
    return frame
