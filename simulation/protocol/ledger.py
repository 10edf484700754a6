"""Account balances and nonces, transaction rules, the genesis allocation and rewards.

Coins are integers everywhere. A ledger is immutable from the outside: applying a block
gives a new ledger, so every block in the tree keeps the state after it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

from simulation.protocol.encoding import derive_keypair, encode, sha256
from simulation.protocol.messages import Transaction
from simulation.protocol.reasons import Reason


@dataclass(frozen=True)
class Ledger:
    balances: Mapping[bytes, int] = field(default_factory=dict)
    nonces: Mapping[bytes, int] = field(default_factory=dict)

    def balance(self, account: bytes) -> int:
        return self.balances.get(account, 0)

    def next_nonce(self, account: bytes) -> int:
        return self.nonces.get(account, 0)

    def transaction_problem(self, tx: Transaction) -> str | None:
        """Why ``tx`` cannot be applied on this ledger now, or None if it can."""
        expected = self.next_nonce(tx.sender)
        if tx.nonce < expected:
            return Reason.NONCE_ALREADY_USED
        if tx.nonce > expected:
            return f"nonce {tx.nonce} is ahead of the next nonce {expected}"
        if self.balance(tx.sender) < tx.amount:
            return Reason.INSUFFICIENT_BALANCE
        return None

    def apply(
        self, transactions: Iterable[Transaction], payouts: Iterable[tuple[bytes, int]]
    ) -> Ledger:
        """Apply transactions in order, then credit payouts. Raises ValueError if one
        transaction does not apply; callers check ``transaction_problem`` first."""
        balances = dict(self.balances)
        nonces = dict(self.nonces)
        for tx in transactions:
            view = Ledger(balances, nonces)
            problem = view.transaction_problem(tx)
            if problem is not None:
                raise ValueError(problem)
            balances[tx.sender] -= tx.amount
            balances[tx.receiver] = balances.get(tx.receiver, 0) + tx.amount
            nonces[tx.sender] = tx.nonce + 1
        for account, amount in payouts:
            balances[account] = balances.get(account, 0) + amount
        return Ledger(balances, nonces)


def transaction_static_problem(tx: Transaction, chain: bytes | None = None) -> Reason | None:
    """Rules that hold on any ledger: signature, amount, distinct parties and, when
    ``chain`` is given (rule chain-id: the genesis hash), the chain it names."""
    if chain is not None and tx.chain != chain:
        return Reason.TRANSACTION_FOR_ANOTHER_CHAIN if tx.chain is not None else \
            Reason.TRANSACTION_NAMES_NO_CHAIN
    if tx.amount < 1:
        return Reason.AMOUNT_BELOW_1
    if tx.sender == tx.receiver:
        return Reason.SENDER_EQUALS_RECEIVER
    if not tx.signature_valid():
        return Reason.BAD_SIGNATURE
    return None


def selection_order(tx: Transaction) -> tuple[int, bytes, bytes]:
    """The order of Roy's selection, which the rule roy-rules checks a block against."""
    return tx.nonce, tx.sender, tx.hash


def select_transactions(
    ledger: Ledger, candidates: Iterable[Transaction], limit: int
) -> list[Transaction]:
    """Roy's deterministic choice: by (nonce, sender, hash), keep each one that applies on
    the ledger so far, at most ``limit``. A sender's transactions go in nonce order."""
    chosen: list[Transaction] = []
    balances = dict(ledger.balances)
    nonces = dict(ledger.nonces)
    for tx in sorted(candidates, key=selection_order):
        if len(chosen) >= limit:
            break
        if Ledger(balances, nonces).transaction_problem(tx) is not None:
            continue
        balances[tx.sender] -= tx.amount
        balances[tx.receiver] = balances.get(tx.receiver, 0) + tx.amount
        nonces[tx.sender] = tx.nonce + 1
        chosen.append(tx)
    return chosen


# --- Rewards ---------------------------------------------------------------------------


def coinbase(height: int) -> int:
    """R(h) = floor(1000 - 999 * sqrt(h) / (sqrt(h) + 10)); IEEE sqrt and division are
    correctly rounded, so every node computes the same integer."""
    root = math.sqrt(height)
    return math.floor(1000 - 999 * root / (root + 10))


def payouts(
    height: int, trainer: bytes, stakeholders: Sequence[bytes], trainer_share: float
) -> list[tuple[bytes, int]]:
    """Trainer first, then each stakeholder in draw order; the remainder goes to Roy."""
    reward = coinbase(height)
    trainer_coins = math.floor(reward * Fraction(repr(trainer_share)))
    rest = reward - trainer_coins
    each, remainder = divmod(rest, len(stakeholders))
    result = [(trainer, trainer_coins)]
    result += [(s, each) for s in stakeholders[:-1]]
    result.append((stakeholders[-1], each + remainder))
    return result


# --- Genesis ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Genesis:
    """Height 0: every employee's stake and every user's seeded balance."""

    model_id: str
    employees: tuple[bytes, ...]
    users: tuple[bytes, ...]
    ledger: Ledger

    @cached_property
    def hash(self) -> bytes:
        allocation = sorted(self.ledger.balances.items())
        return sha256(
            b"PoT-genesis"
            + encode([self.model_id, list(self.employees), list(self.users),
                      [[a, n] for a, n in allocation]])
        )


def make_genesis(
    *,
    seed: int,
    model_id: str,
    employees_num: int,
    users_num: int,
    genesis_stake: int,
    user_max_balance: int,
) -> Genesis:
    employees = tuple(derive_keypair(seed, "employee", i).public for i in range(employees_num))
    users = tuple(derive_keypair(seed, "user", i).public for i in range(users_num))
    rng = random.Random(f"PoT-genesis-{seed}")
    balances = {pk: genesis_stake for pk in employees}
    for pk in users:
        balances[pk] = rng.randint(1, user_max_balance)
    return Genesis(model_id, employees, users, Ledger(balances, {}))
