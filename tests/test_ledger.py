"""Balances and nonces, transaction rules, rewards and the genesis allocation."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from simulation.protocol.encoding import derive_keypair, sha256
from simulation.protocol.ledger import (
    Ledger,
    coinbase,
    make_genesis,
    payouts,
    select_transactions,
    transaction_static_problem,
)
from simulation.protocol.messages import Transaction
from simulation.protocol.reasons import Reason

ALICE, BOB, CAROL = (derive_keypair(1, "user", i) for i in range(3))
A, B, C = ALICE.public, BOB.public, CAROL.public
TRAINER = sha256(b"trainer")
S1, S2, ROY = sha256(b"s1"), sha256(b"s2"), sha256(b"roy")


def tx(keys, receiver, amount, nonce):
    return Transaction.create(keys, receiver, amount, nonce)


# --- Coinbase ------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "reward"), [
    (0, 1000),
    (1, 909),  # floor(1000 - 999 * 1 / 11) = floor(909.18)
    (2, 876),  # sqrt 2 = 1.41421: 999 * 1.41421 / 11.41421 = 123.77
    (4, 833),  # 999 * 2 / 12 = 166.5
    (9, 769),  # 999 * 3 / 13 = 230.54
    (25, 667),  # 999 * 5 / 15 = 333 exactly
    (100, 500),  # 999 * 10 / 20 = 499.5
    (10**12, 1),  # 1 + 9990 / (10**6 + 10)
])
def test_coinbase_values(height, reward):
    assert coinbase(height) == reward


def test_coinbase_matches_exact_arithmetic_on_perfect_squares():
    for n in range(0, 400):
        exact = Fraction(1000) - Fraction(999 * n, n + 10)
        assert coinbase(n * n) == math.floor(exact), n


def test_coinbase_decreases_and_stays_positive():
    rewards = [coinbase(h) for h in range(0, 5000)]
    assert all(a >= b for a, b in zip(rewards, rewards[1:], strict=False))
    assert rewards[-1] >= 1 and coinbase(10**15) >= 1
    assert all(isinstance(r, int) for r in rewards)


# --- Payouts --------------------------------------------------------------------------------


def test_payouts_split_by_hand():
    # R(0) = 1000: trainer 500, then 500 / 3 = 166 each, remainder 2 to Roy.
    assert payouts(0, TRAINER, [S1, S2, ROY], 0.5) == [
        (TRAINER, 500), (S1, 166), (S2, 166), (ROY, 168)]
    # R(1) = 909: trainer floor(454.5) = 454, 455 / 3 = 151 rest 2.
    assert payouts(1, TRAINER, [S1, S2, ROY], 0.5) == [
        (TRAINER, 454), (S1, 151), (S2, 151), (ROY, 153)]
    # R(4) = 833 with share 0.1: trainer 83, 750 / 2 = 375 each.
    assert payouts(4, TRAINER, [S1, ROY], 0.1) == [(TRAINER, 83), (S1, 375), (ROY, 375)]


@pytest.mark.parametrize("share", [0, 0.0, 0.1, 0.3, 0.5, 0.7, 1 / 3, 0.99, 1, 1.0])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_payouts_sum_to_the_coinbase_exactly(share, k):
    stakeholders = [sha256(bytes([i])) for i in range(k)]
    for height in (0, 1, 2, 3, 7, 50, 99, 1000, 123456):
        result = payouts(height, TRAINER, stakeholders, share)
        assert sum(coins for _, coins in result) == coinbase(height)
        assert all(isinstance(coins, int) and coins >= 0 for _, coins in result)
        assert [a for a, _ in result] == [TRAINER, *stakeholders]
        trainer_coins = result[0][1]
        assert trainer_coins == math.floor(coinbase(height) * Fraction(str(share)))
        normal = [coins for _, coins in result[1:-1]]
        assert len(set(normal)) <= 1  # the normal stakeholders get the same
        each = (coinbase(height) - trainer_coins) // k
        assert all(c == each for c in normal)
        assert 0 <= result[-1][1] - each < k  # Roy: one share plus the remainder


def test_trainer_share_uses_the_decimal_value():
    # 0.3 is not exact in binary; the rule is floor(R * 0.3) = 300 for R = 1000.
    assert payouts(0, TRAINER, [ROY], 0.3)[0] == (TRAINER, 300)
    assert payouts(0, TRAINER, [ROY], 0.29)[0] == (TRAINER, 290)


def test_k_equal_one_roy_takes_all_the_rest():
    assert payouts(0, TRAINER, [ROY], 0.5) == [(TRAINER, 500), (ROY, 500)]
    assert payouts(1, TRAINER, [ROY], 0.25) == [(TRAINER, 227), (ROY, 682)]


def test_share_one_and_zero():
    assert payouts(0, TRAINER, [S1, ROY], 1.0) == [(TRAINER, 1000), (S1, 0), (ROY, 0)]
    assert payouts(0, TRAINER, [S1, ROY], 0.0) == [(TRAINER, 0), (S1, 500), (ROY, 500)]


def test_trainer_who_is_also_a_stakeholder_is_paid_twice():
    result = payouts(0, TRAINER, [TRAINER, ROY], 0.5)
    ledger = Ledger().apply([], result)
    assert ledger.balance(TRAINER) == 750 and ledger.balance(ROY) == 250


# --- Transactions on a ledger ----------------------------------------------------------------

LEDGER = Ledger({A: 100, B: 5}, {A: 2})


def test_transaction_problems():
    assert LEDGER.transaction_problem(tx(ALICE, B, 10, 2)) is None
    assert LEDGER.transaction_problem(tx(ALICE, B, 10, 1)) == Reason.NONCE_ALREADY_USED
    assert LEDGER.transaction_problem(tx(ALICE, B, 10, 0)) == Reason.NONCE_ALREADY_USED
    assert LEDGER.transaction_problem(tx(ALICE, B, 10, 3)) == (
        "nonce 3 is ahead of the next nonce 2")
    assert LEDGER.transaction_problem(tx(ALICE, B, 100, 2)) is None  # the whole balance
    assert LEDGER.transaction_problem(tx(ALICE, B, 101, 2)) == Reason.INSUFFICIENT_BALANCE
    assert LEDGER.transaction_problem(tx(CAROL, A, 1, 0)) == Reason.INSUFFICIENT_BALANCE
    assert LEDGER.transaction_problem(tx(BOB, A, 5, 0)) is None


def test_static_problems():
    assert transaction_static_problem(tx(ALICE, B, 1, 0)) is None
    assert transaction_static_problem(tx(ALICE, B, 0, 0)) == Reason.AMOUNT_BELOW_1
    assert transaction_static_problem(tx(ALICE, A, 5, 0)) == Reason.SENDER_EQUALS_RECEIVER
    good = tx(ALICE, B, 5, 0)
    forged = Transaction({**good.wire, "amount": 6})
    assert transaction_static_problem(forged) == Reason.BAD_SIGNATURE
    stolen = Transaction({**good.wire, "sender": C})
    assert transaction_static_problem(stolen) == Reason.BAD_SIGNATURE


def test_apply_moves_coins_bumps_nonces_and_credits_payouts():
    after = LEDGER.apply([tx(ALICE, B, 10, 2), tx(ALICE, C, 20, 3), tx(BOB, A, 15, 0)],
                         [(TRAINER, 7), (B, 1)])
    assert after.balance(A) == 100 - 10 - 20 + 15
    assert after.balance(B) == 5 + 10 - 15 + 1
    assert after.balance(C) == 20
    assert after.balance(TRAINER) == 7
    assert after.next_nonce(A) == 4 and after.next_nonce(B) == 1
    assert after.next_nonce(C) == 0
    # The original ledger is unchanged.
    assert LEDGER.balance(A) == 100 and LEDGER.next_nonce(A) == 2
    assert sum(after.balances.values()) == sum(LEDGER.balances.values()) + 8


def test_apply_in_order_lets_received_coins_be_spent():
    # Bob holds 5; Alice's 10 arrive first, so Bob can send 12.
    after = LEDGER.apply([tx(ALICE, B, 10, 2), tx(BOB, C, 12, 0)], [])
    assert after.balance(C) == 12
    with pytest.raises(ValueError, match=Reason.INSUFFICIENT_BALANCE):
        LEDGER.apply([tx(BOB, C, 12, 0), tx(ALICE, B, 10, 2)], [])


@pytest.mark.parametrize(("transactions", "reason"), [
    ([tx(ALICE, B, 1, 2), tx(ALICE, B, 2, 2)], Reason.NONCE_ALREADY_USED),
    ([tx(ALICE, B, 1, 4)], "nonce 4 is ahead of the next nonce 2"),
    ([tx(ALICE, B, 60, 2), tx(ALICE, B, 60, 3)], Reason.INSUFFICIENT_BALANCE),
])
def test_apply_refuses_a_transaction_that_does_not_apply(transactions, reason):
    with pytest.raises(ValueError, match=reason):
        LEDGER.apply(transactions, [])


# --- Roy's selection ------------------------------------------------------------------------


def test_select_respects_nonce_order_whatever_the_input_order():
    txs = [tx(ALICE, B, 1, 4), tx(ALICE, B, 1, 3), tx(ALICE, B, 1, 2)]
    chosen = select_transactions(LEDGER, txs, 10)
    assert [t.nonce for t in chosen] == [2, 3, 4]
    assert select_transactions(LEDGER, list(reversed(txs)), 10) == chosen


def test_select_respects_the_limit():
    txs = [tx(ALICE, B, 1, n) for n in range(2, 12)]
    assert [t.nonce for t in select_transactions(LEDGER, txs, 4)] == [2, 3, 4, 5]
    assert select_transactions(LEDGER, txs, 0) == []


def test_select_skips_what_does_not_apply():
    used = tx(ALICE, B, 1, 1)
    gap = tx(ALICE, B, 1, 5)
    broke = tx(CAROL, A, 1, 0)
    too_much = tx(BOB, A, 6, 0)
    good = tx(ALICE, B, 99, 2)
    overdraft = tx(ALICE, B, 2, 3)  # only 1 coin left after ``good``
    chosen = select_transactions(LEDGER, [used, gap, broke, too_much, good, overdraft], 10)
    assert chosen == [good]


def test_select_is_deterministic_and_applies():
    txs = [tx(ALICE, B, 3, 2), tx(BOB, C, 2, 0), tx(ALICE, C, 4, 3), tx(BOB, A, 1, 1)]
    chosen = select_transactions(LEDGER, txs, 10)
    assert chosen == select_transactions(LEDGER, list(reversed(txs)), 10)
    assert len(chosen) == 4
    LEDGER.apply(chosen, [])  # does not raise


def test_select_picks_one_of_two_transactions_with_the_same_nonce():
    a, b = tx(ALICE, B, 3, 2), tx(ALICE, C, 3, 2)
    chosen = select_transactions(LEDGER, [a, b], 10)
    assert len(chosen) == 1 and chosen == select_transactions(LEDGER, [b, a], 10)


def test_select_counts_coins_received_earlier_in_the_block_exactly():
    """As apply does: a receiver may spend in the same block what it received before, and
    not one coin more. The newcomer holds nothing on LEDGER; Bob (5 coins) pays it first
    because both use nonce 0 and Bob's key sorts first."""
    newcomer = next(k for k in (derive_keypair(1, "user", i) for i in range(3, 40))
                    if k.public > B)
    funding = tx(BOB, newcomer.public, 5, 0)
    spend_all = tx(newcomer, C, 5, 0)
    assert select_transactions(LEDGER, [spend_all, funding], 10) == [funding, spend_all]
    one_more = tx(newcomer, C, 6, 0)
    assert select_transactions(LEDGER, [one_more, funding], 10) == [funding]


# --- Genesis ---------------------------------------------------------------------------------


def genesis(seed=1, **changes):
    args = dict(seed=seed, model_id="m", employees_num=4, users_num=5, genesis_stake=1000,
                user_max_balance=50)
    args.update(changes)
    return make_genesis(**args)


def test_genesis_is_deterministic_from_the_seed():
    assert genesis(1) == genesis(1)
    assert genesis(1).hash == genesis(1).hash
    assert genesis(1).hash != genesis(2).hash
    assert genesis(1).employees != genesis(2).employees


def test_genesis_allocation():
    g = genesis(3)
    assert g.employees == tuple(derive_keypair(3, "employee", i).public for i in range(4))
    assert g.users == tuple(derive_keypair(3, "user", i).public for i in range(5))
    assert all(g.ledger.balance(pk) == 1000 for pk in g.employees)
    assert all(1 <= g.ledger.balance(pk) <= 50 for pk in g.users)
    assert g.ledger.nonces == {}
    assert len(g.ledger.balances) == 9


def test_genesis_users_hold_at_least_one_coin():
    g = genesis(4, user_max_balance=1)
    assert [g.ledger.balance(pk) for pk in g.users] == [1] * 5


def test_genesis_hash_covers_every_part():
    base = genesis(1).hash
    assert genesis(1, model_id="other").hash != base
    assert genesis(1, genesis_stake=999).hash != base
    assert genesis(1, users_num=4).hash != base
    assert genesis(1, employees_num=3).hash != base
