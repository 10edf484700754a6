"""The PoS waiting mechanism: kernel inputs, the win rule and the win rate."""

from __future__ import annotations

import math

import pytest

from simulation.protocol import lottery
from simulation.protocol.encoding import derive_keypair, encode, sha256
from simulation.protocol.messages import BH, TD

AUTHOR = derive_keypair(1, "employee", 0).public
OTHER_AUTHOR = derive_keypair(1, "employee", 1).public
PARENT = sha256(b"parent")
SID = "model:0"
BASE = (TD, AUTHOR, PARENT, SID, 17)


def test_kernel_is_deterministic_and_32_bytes():
    assert lottery.kernel(*BASE) == lottery.kernel(*BASE)
    assert len(lottery.kernel(*BASE)) == 32


def test_kernel_is_sha256_of_the_canonical_inputs():
    expected = sha256(b"PoT-lottery" + encode([TD, AUTHOR, PARENT, SID, 17]))
    assert lottery.kernel(*BASE) == expected


@pytest.mark.parametrize(("position", "value"), [
    (0, BH),
    (1, OTHER_AUTHOR),
    (2, sha256(b"another parent")),
    (3, "model:1"),
    (4, 18),
])
def test_kernel_depends_on_each_input(position, value):
    changed = list(BASE)
    changed[position] = value
    assert lottery.kernel(*changed) != lottery.kernel(*BASE)


def test_kernel_parts_cannot_be_shifted_into_each_other():
    # Plain concatenation would make these two equal; the CBOR array does not.
    assert lottery.kernel(TD, AUTHOR, PARENT, "model:1", 2) != lottery.kernel(
        TD, AUTHOR, PARENT, "model:", 12)


def kernel_with_zero_bits(bits: int) -> bytes:
    """A 256-bit value with exactly ``bits`` leading zero bits."""
    return (1 << (255 - bits)).to_bytes(32, "big")


@pytest.mark.parametrize("d", [0, 1, 4, 5, 8, 100, 255])
def test_power_of_two_coinstake_is_the_leading_zero_bit_rule(d):
    coinstake = 2 ** (256 - d)
    assert lottery.difficulty_bits(coinstake) == d
    # Exactly d zero bits wins, d - 1 loses, more wins.
    assert lottery.wins(kernel_with_zero_bits(d), coinstake)
    if d > 0:
        assert not lottery.wins(kernel_with_zero_bits(d - 1), coinstake)
    assert lottery.wins(bytes(32), coinstake)
    # The largest kernel with d zero bits wins, the smallest with d - 1 loses.
    assert lottery.wins((coinstake - 1).to_bytes(32, "big"), coinstake)
    if d > 0:
        assert not lottery.wins(coinstake.to_bytes(32, "big"), coinstake)


@pytest.mark.parametrize("coinstake", [2**252, 2**251, 2**255, 2**240])
def test_wins_agrees_with_leading_zero_bits_on_real_kernels(coinstake):
    d = round(lottery.difficulty_bits(coinstake))
    for tick in range(2000):
        kernel = lottery.kernel(TD, AUTHOR, PARENT, SID, tick)
        assert lottery.wins(kernel, coinstake) == (lottery.leading_zero_bits(kernel) >= d)


def test_leading_zero_bits():
    assert lottery.leading_zero_bits(bytes(32)) == 256
    assert lottery.leading_zero_bits(b"\x80" + bytes(31)) == 0
    assert lottery.leading_zero_bits(b"\x01" + bytes(31)) == 7
    assert lottery.leading_zero_bits(bytes(1) + b"\x10" + bytes(30)) == 11
    for bits in range(256):
        assert lottery.leading_zero_bits(kernel_with_zero_bits(bits)) == bits


def test_difficulty_of_the_default_coinstakes():
    assert lottery.difficulty_bits(2**252) == 4
    assert lottery.difficulty_bits(2**251) == 5
    assert lottery.difficulty_bits(2**256) == 0


def test_non_power_of_two_coinstake_is_a_finer_threshold():
    coinstake = 3 * 2**250
    assert lottery.wins((coinstake - 1).to_bytes(32, "big"), coinstake)
    assert not lottery.wins(coinstake.to_bytes(32, "big"), coinstake)
    assert 4 < lottery.difficulty_bits(coinstake) < 5  # between 2**251 and 2**252


def win_rate(coinstake: int, tries: int, kind: str = TD) -> float:
    wins = sum(
        lottery.wins(lottery.kernel(kind, AUTHOR, PARENT, SID, tick), coinstake)
        for tick in range(tries)
    )
    return wins / tries


@pytest.mark.parametrize(("coinstake", "expected"), [(2**252, 1 / 16), (2**251, 1 / 32)])
def test_empirical_win_rate(coinstake, expected):
    tries = 40_000
    sigma = math.sqrt(expected * (1 - expected) / tries)
    assert abs(win_rate(coinstake, tries) - expected) < 4 * sigma


def test_each_author_gets_its_own_tries():
    """Two authors win at different ticks: the lottery is per author."""
    coinstake = 2**252
    ticks = [
        {t for t in range(3000)
         if lottery.wins(lottery.kernel(TD, author, PARENT, SID, t), coinstake)}
        for author in (AUTHOR, OTHER_AUTHOR)
    ]
    assert ticks[0] != ticks[1]
    # Independent 1/16 events: about 1/256 of ticks are won by both.
    assert len(ticks[0] & ticks[1]) < 3000 / 256 * 3
