"""Follow-the-coin: K distinct stakeholders drawn by stake from a seed."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from simulation.protocol.encoding import sha256
from simulation.protocol.follow_the_coin import draw_stakeholders

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
