"""The PoS waiting mechanism: one lottery try per message kind, author, round and tick.

The kernel is SHA-256(kind || author || parent hash || id_s || tick), with the parts
joined as a canonical CBOR array so that no two different inputs share bytes. A try wins
when the kernel, read as a big-endian 256-bit number, is below the coinstake c. For a
power of two c = 2**(256-d) that is exactly "at least d leading zero bits", the rule of
PROTOCOL.md; other coinstakes get the same rule with a finer threshold.
"""

from __future__ import annotations

import math

from simulation.protocol.encoding import encode, sha256

KERNEL_BITS = 256


def kernel(kind: str, author: bytes, parent: bytes, stage_id: str, tick: int) -> bytes:
    return sha256(b"PoT-lottery" + encode([kind, author, parent, stage_id, tick]))


def wins(kernel_bytes: bytes, coinstake: int) -> bool:
    return int.from_bytes(kernel_bytes, "big") < coinstake


def difficulty_bits(coinstake: int) -> float:
    """d = 256 - log2(c): leading zero bits a winning kernel needs (for the log)."""
    return KERNEL_BITS - math.log2(coinstake)


def leading_zero_bits(kernel_bytes: bytes) -> int:
    value = int.from_bytes(kernel_bytes, "big")
    return KERNEL_BITS - value.bit_length()
