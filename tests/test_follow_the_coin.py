"""Follow-the-coin: K distinct stakeholders drawn by stake from a seed."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import Counter
from decimal import ROUND_FLOOR, Decimal, localcontext

import pytest

from simulation.protocol.encoding import sha256
from simulation.protocol.follow_the_coin import (
    _race_float,
    draw_by_race,
    draw_stakeholders,
    log2_fixed,
    race_value,
)

ACCOUNTS = [sha256(bytes([i])) for i in range(8)]


def seed(i: int) -> bytes:
    return sha256(b"seed" + i.to_bytes(4, "big"))


def equal_stakes(n: int = 6, coins: int = 1000) -> list[tuple[bytes, int]]:
    return [(a, coins) for a in ACCOUNTS[:n]]


def test_same_seed_same_draw():
    stakes = equal_stakes()
    assert draw_stakeholders(seed(1), stakes, 3) == draw_stakeholders(seed(1), stakes, 3)


def test_the_draw_does_not_depend_on_the_order_stakes_are_listed():
    stakes = [(a, 100 + i) for i, a in enumerate(ACCOUNTS)]
    for i in range(50):
        assert draw_stakeholders(seed(i), stakes, 4) == draw_stakeholders(
            seed(i), list(reversed(stakes)), 4)


def test_different_seeds_give_different_draws():
    stakes = equal_stakes()
    draws = {tuple(draw_stakeholders(seed(i), stakes, 3)) for i in range(50)}
    assert len(draws) > 20  # 120 ordered triples are possible


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_k_distinct_accounts_with_stake(k):
    stakes = equal_stakes()
    for i in range(200):
        chosen = draw_stakeholders(seed(i), stakes, k)
        assert chosen is not None and len(chosen) == k
        assert len(set(chosen)) == k
        assert set(chosen) <= set(ACCOUNTS[:6])


def test_k_equal_to_the_number_of_holders_draws_everyone():
    stakes = equal_stakes(4)
    chosen = draw_stakeholders(seed(3), stakes, 4)
    assert chosen is not None and sorted(chosen) == sorted(ACCOUNTS[:4])


def test_none_when_fewer_than_k_hold_stake():
    stakes = [(ACCOUNTS[0], 10), (ACCOUNTS[1], 5), (ACCOUNTS[2], 0), (ACCOUNTS[3], 0)]
    assert draw_stakeholders(seed(0), stakes, 3) is None
    assert draw_stakeholders(seed(0), stakes, 2) is not None
    assert draw_stakeholders(seed(0), [], 1) is None
    assert draw_stakeholders(seed(0), stakes, 0) is None


def test_zero_stake_is_never_drawn():
    stakes = [(a, 0 if i % 2 else 7) for i, a in enumerate(ACCOUNTS)]
    holders = {a for a, coins in stakes if coins > 0}
    for i in range(300):
        chosen = draw_stakeholders(seed(i), stakes, 4)
        assert chosen is not None and set(chosen) == holders


def test_negative_stake_counts_as_none():
    stakes = [(ACCOUNTS[0], -5), (ACCOUNTS[1], 3), (ACCOUNTS[2], 4)]
    for i in range(50):
        assert ACCOUNTS[0] not in draw_stakeholders(seed(i), stakes, 2)


def within(observed: int, trials: int, p: float, sigmas: float = 4.5) -> bool:
    return abs(observed - trials * p) <= sigmas * math.sqrt(trials * p * (1 - p))


def test_first_draw_is_stake_weighted():
    """One account with 3x the stake of three others is drawn first about half the time,
    3x as often as each of the others."""
    heavy, *light = ACCOUNTS[:4]
    stakes = [(heavy, 3000)] + [(a, 1000) for a in light]
    trials = 6000
    first = Counter(draw_stakeholders(seed(i), stakes, 2)[0] for i in range(trials))
    assert within(first[heavy], trials, 0.5)
    for account in light:
        assert within(first[account], trials, 1 / 6)
    ratio = first[heavy] / (sum(first[a] for a in light) / 3)
    assert 2.6 < ratio < 3.4


def test_later_draws_are_weighted_by_the_remaining_stake():
    """Without replacement: P(second = x | first = heavy) = stake(x) / remaining stake."""
    heavy, mid, small = ACCOUNTS[:3]
    stakes = [(heavy, 6), (mid, 3), (small, 1)]
    trials = 6000
    seconds = Counter()
    firsts = Counter()
    for i in range(trials):
        chosen = draw_stakeholders(seed(i), stakes, 2)
        firsts[chosen[0]] += 1
        if chosen[0] == heavy:
            seconds[chosen[1]] += 1
    assert within(firsts[heavy], trials, 0.6)
    assert within(firsts[small], trials, 0.1)
    n = firsts[heavy]
    assert within(seconds[mid], n, 0.75)
    assert within(seconds[small], n, 0.25)
    assert seconds[heavy] == 0


def test_a_tiny_stake_is_almost_always_left_for_roy():
    stakes = [(ACCOUNTS[0], 10**9), (ACCOUNTS[1], 1), (ACCOUNTS[2], 10**9)]
    chosen_last = Counter(draw_stakeholders(seed(i), stakes, 3)[-1] for i in range(200))
    # The 1-coin account is almost always left for the last (Roy) place.
    assert chosen_last[ACCOUNTS[1]] >= 195


# --- The draw as the specification words it (OPEN_RULES=draw) ----------------------------


def protocol_draw(seed_bytes: bytes, stakes, k: int) -> list[bytes]:
    """The specification's words, written out again: SHA-256("PoT-ftc" || seed || counter
    as 8 big-endian bytes), counter from 0, read big-endian; a value at or above the
    largest multiple of the remaining coins below 2**256 is skipped; the point falls on
    the accounts laid out in key order."""
    pool = sorted((account, coins) for account, coins in stakes if coins > 0)
    counter, chosen = 0, []
    for _ in range(k):
        total = sum(coins for _, coins in pool)
        while True:
            block = sha256(b"PoT-ftc" + seed_bytes + counter.to_bytes(8, "big"))
            counter += 1
            value = int.from_bytes(block, "big")
            if value < 2**256 - 2**256 % total:
                break
        # The account whose interval [sum before it, sum through it) holds the point.
        edges = list(itertools.accumulate(coins for _, coins in pool))
        chosen.append(pool.pop(bisect.bisect_right(edges, value % total))[0])
    return chosen


@pytest.mark.parametrize("coins", [[3, 1, 1], [1000] * 6, [10**12, 7, 1, 3**40]])
def test_the_draw_is_the_protocols_counter_mode_draw(coins):
    stakes = list(zip(ACCOUNTS, coins, strict=False))
    k = min(3, len(stakes))
    for i in range(300):
        assert draw_stakeholders(seed(i), stakes, k) == protocol_draw(seed(i), stakes, k)


# --- The rule draw: the exponential race -----------------------------------------------------


def exact_log2_fixed(value: int) -> int:
    with localcontext() as context:
        context.prec = 120
        scaled = Decimal(value).ln() / Decimal(2).ln() * Decimal(2) ** 64
        return int(scaled.to_integral_value(rounding=ROUND_FLOOR))


def test_log2_fixed_is_exact_to_the_last_of_its_64_bits():
    rng = random.Random(3)
    values = [1, 2, 3, 5, 7, 10, 1000, 2**80 - 1, 2**80, 2**80 + 1, 2**81 + 12345,
              2**200 + 7, 2**256 - 1, 2**256]
    values += [rng.randrange(1, 2**bits) for bits in (8, 40, 79, 81, 120, 256)
               for _ in range(40)]
    for value in values:
        assert log2_fixed(value) == exact_log2_fixed(value), value
    with pytest.raises(ValueError, match="below 1"):
        log2_fixed(0)


def exact_race(draw: int) -> Decimal:
    """-log2(draw / 2**256), to 200 digits (U next to 1 needs the 78 digits of 2**-256)."""
    with localcontext() as context:
        context.prec = 200
        return -(Decimal(draw) / Decimal(2) ** 256).ln() / Decimal(2).ln()


@pytest.mark.parametrize("draw", [1, 2, 3, 2**10, 2**128 + 1, 2**254 + 5, 2**255, 2**255 + 1,
                                  2**256 - 2**200, 2**256 - 2**100, 2**256 - 1, 2**256])
def test_race_float_is_minus_log2_u_to_the_last_few_places(draw):
    """Also where U is next to 0 (about 256) and next to 1 (about 1e-77), where a plain
    log2 or a plain log1p loses every digit."""
    exact = exact_race(draw)
    if exact == 0:
        assert _race_float(draw) == 0
    else:
        assert abs(Decimal(_race_float(draw)) - exact) / exact < Decimal("1e-14")


def race_draw(seed_bytes: bytes, account: bytes) -> int:
    return int.from_bytes(sha256(b"PoT-race" + seed_bytes + account), "big") + 1


def test_draw_by_race_settles_an_exact_tie_for_the_smaller_account():
    """With each account's stake equal to its integer race value, both E / stake are
    exactly 2**-64: a tie the floats cannot see. On seeds where the floats happen to rank
    the larger account first, the integer settling still gives the smaller one."""
    small, large = sorted(ACCOUNTS[:2])
    settled = 0
    for i in range(300):
        s = seed(i)
        coins = {a: race_value(race_draw(s, a)) for a in (small, large)}
        floats = {a: _race_float(race_draw(s, a)) / coins[a] for a in (small, large)}
        if floats[small] <= floats[large]:
            continue
        settled += 1
        stakes = [(large, coins[large]), (small, coins[small]), (ACCOUNTS[2], 1)]
        assert draw_by_race(s, stakes, 2) == [small, large]
        assert draw_by_race(s, stakes, 1) == [small]
    assert settled >= 10


def test_draw_by_race_draws_everyone_when_k_is_the_number_of_holders():
    stakes = [(ACCOUNTS[0], 1), (ACCOUNTS[1], 5), (ACCOUNTS[2], 0)]
    for i in range(20):
        assert sorted(draw_by_race(seed(i), stakes, 2)) == sorted(ACCOUNTS[:2])
    assert draw_by_race(seed(0), stakes, 3) is None and draw_by_race(seed(0), stakes, 0) is None
