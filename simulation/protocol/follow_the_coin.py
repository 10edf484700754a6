"""Follow-the-coin: the stakeholders of a block header, drawn by stake.

K distinct employees are drawn by stake-weighted sampling without replacement, two ways:

- ``draw_stakeholders`` (the specification, and OPEN_RULES=draw): SHA-256 in counter mode
  seeded with the header's lottery kernel; each draw is exactly uniform over the
  remaining coins (rejection sampling) laid out account after account in key order.
- ``draw_by_race`` (the rule draw): an exponential race. Account i draws
  E_i = -log2(U_i) from its own hash of the seed, and the K smallest E_i / stake_i win,
  in that order (Efraimidis and Spirakis, "Weighted random sampling with a reservoir",
  Information Processing Letters 97(5), 2006: this is exactly stake-weighted sampling
  without replacement). An account's chance rests on its own stake and its own hash, so
  moving coins between accounts does not move anybody else's chance, as it does when
  fixed random points fall on a list of intervals. Near ties are settled in integer
  arithmetic, so every node on every machine orders the accounts alike.

Either way every node computes the same list from the same chain.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from fractions import Fraction

from simulation.protocol.encoding import encode, sha256

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


# Fractional bits of the integer logarithm that settles near ties (LOG_BITS) and the
# relative gap below which two race values count as a near tie.
LOG_BITS = 64
_MANTISSA_BITS = 80
NEAR_TIE = 1e-9
_SPACE_BITS = 256


def log2_fixed(value: int, bits: int = LOG_BITS) -> int:
    """floor(log2(value) * 2**bits) for an integer value >= 1, up to the last bit, by
    repeated squaring of the mantissa (integer arithmetic only)."""
    if value < 1:
        raise ValueError("log2 of a number below 1")
    exponent = value.bit_length() - 1
    if exponent <= _MANTISSA_BITS:
        mantissa = value << (_MANTISSA_BITS - exponent)
    else:
        mantissa = value >> (exponent - _MANTISSA_BITS)
    two = 2 << _MANTISSA_BITS
    result = exponent << bits
    for position in range(bits - 1, -1, -1):
        mantissa = (mantissa * mantissa) >> _MANTISSA_BITS
        if mantissa >= two:
            mantissa >>= 1
            result |= 1 << position
    return result


def draw_seed(genesis_hash: bytes, stage_id: str, slot: int, author: bytes) -> bytes:
    """The rule draw's seed: nothing in it is any party's choice but the author (who had
    to win the lottery in this slot) and the slot (bounded by the tick window)."""
    return sha256(b"PoT-draw" + encode([genesis_hash, stage_id, slot, author]))


def _uniform(seed: bytes, account: bytes) -> int:
    """The account's draw, u + 1 in 1 .. 2**256: U = (u + 1) / 2**256 lies in (0, 1]."""
    return int.from_bytes(sha256(b"PoT-race" + seed + account), "big") + 1


def _race_float(draw: int) -> float:
    """-log2(U) as a float, accurate to a few units in the last place over all of (0, 1]
    (through log1p where U is close to 1, so that small values keep their precision)."""
    if draw <= 1 << (_SPACE_BITS - 1):  # U <= 1/2
        return _SPACE_BITS - math.log2(draw)
    return -math.log1p(-((1 << _SPACE_BITS) - draw) / (1 << _SPACE_BITS)) / math.log(2)


def race_value(draw: int) -> int:
    """-log2(U) in integer fixed point (LOG_BITS fractional bits)."""
    return (_SPACE_BITS << LOG_BITS) - log2_fixed(draw)


def draw_by_race(seed: bytes, stakes: Sequence[tuple[bytes, int]], k: int
                 ) -> list[bytes] | None:
    """``stakes``: (account, coins) for every employee. Returns K accounts in race order
    (the last one is Roy), or None when fewer than K employees hold any coins.

    The race values E / stake are ranked in floating point, which every libm computes to
    within far less than NEAR_TIE; where two of the first K + 1 lie within NEAR_TIE of
    each other, their order is settled in integer arithmetic (``race_value``), which is
    the same on every machine. Exact ties (a 2**-64 event) go to the smaller account."""
    pool = [(account, coins) for account, coins in stakes if coins > 0]
    if k < 1 or len(pool) < k:
        return None
    ranked = sorted((_race_float(draw) / coins, account, draw, coins)
                    for account, coins in pool
                    for draw in (_uniform(seed, account),))
    # Every account that may belong to the first K, in exact order.
    bound = ranked[k - 1][0] * (1 + 4 * NEAR_TIE)
    head = [r for r in ranked if r[0] <= bound]
    if all(b[0] > a[0] * (1 + NEAR_TIE) for a, b in zip(head, head[1:], strict=False)):
        return [r[1] for r in head[:k]]
    exact = sorted((Fraction(race_value(draw), coins), account)
                   for _, account, draw, coins in head)
    return [account for _, account in exact[:k]]
