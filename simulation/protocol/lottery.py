"""The PoS waiting mechanism: one lottery try per message kind, author, round and tick.

The kernel is SHA-256(kind || author || id_s || tick), with the parts joined as a
canonical CBOR array so that no two different inputs share bytes. The specification's kernel
also holds the parent block's hash; the rule lottery-kernel drops it, since the parent's
Roy can grind that hash (OPEN_RULES=lottery-kernel puts it back). A try wins
when the kernel, read as a big-endian 256-bit number, is below the coinstake c. For a
power of two c = 2**(256-d) that is exactly "at least d leading zero bits", the rule of
the specification; other coinstakes get the same rule with a finer threshold.
"""

from __future__ import annotations

import math

from simulation.protocol.encoding import encode, sha256

KERNEL_BITS = 256


def kernel(kind: str, author: bytes, parent: bytes, stage_id: str, tick: int,
           bind_parent: bool = True) -> bytes:
    """The lottery kernel; ``bind_parent`` False under the rule lottery-kernel."""
    parts = [kind, author, parent, stage_id, tick] if bind_parent else \
        [kind, author, stage_id, tick]
    return sha256(b"PoT-lottery" + encode(parts))


def wins(kernel_bytes: bytes, coinstake: int) -> bool:
    return int.from_bytes(kernel_bytes, "big") < coinstake


def difficulty_bits(coinstake: int) -> float:
    """d = 256 - log2(c): leading zero bits a winning kernel needs (for the log)."""
    return KERNEL_BITS - math.log2(coinstake)


def leading_zero_bits(kernel_bytes: bytes) -> int:
    value = int.from_bytes(kernel_bytes, "big")
    return KERNEL_BITS - value.bit_length()
