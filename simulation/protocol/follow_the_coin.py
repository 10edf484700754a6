"""Follow-the-coin: the stakeholders of a block header, drawn by stake.

K distinct employees are drawn by stake-weighted sampling without replacement. The
randomness is SHA-256 in counter mode seeded with the header's lottery kernel, which its
author cannot grind (the kernel holds no content it chooses). Each draw is exactly
uniform over the remaining coins (rejection sampling), so every node gets the same list.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from simulation.protocol.encoding import sha256

_SPACE = 2**256


def _random_below(stream: Iterator[int], bound: int) -> int:
    limit = _SPACE - _SPACE % bound
    for value in stream:
        if value < limit:
            return value % bound
    raise AssertionError("unreachable: the stream is infinite")


def _counter_stream(seed: bytes) -> Iterator[int]:
    counter = 0
    while True:
        yield int.from_bytes(sha256(b"PoT-ftc" + seed + counter.to_bytes(8, "big")), "big")
        counter += 1


def draw_stakeholders(
    seed: bytes, stakes: Sequence[tuple[bytes, int]], k: int
) -> list[bytes] | None:
    """``stakes``: (account, coins) for every employee. Returns K accounts in draw order
    (the last one is Roy), or None when fewer than K employees hold any coins."""
    pool = sorted((account, coins) for account, coins in stakes if coins > 0)
    if k < 1 or len(pool) < k:
        return None
    stream = _counter_stream(seed)
    chosen: list[bytes] = []
    for _ in range(k):
        total = sum(coins for _, coins in pool)
        point = _random_below(stream, total)
        for position, (account, coins) in enumerate(pool):
            if point < coins:
                chosen.append(account)
                del pool[position]
                break
            point -= coins
    return chosen
