"""Builders shared by the protocol tests: small scenarios, a hand-driven "world" that
makes valid (or deliberately broken) messages, and a network driver with fault knobs.

Nothing here imports TensorFlow: training is ``training.HashTrainer``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from simulation.config import MNIST_TRAIN_SIZE, Scenario, default_scenario, problems
from simulation.ml.training import HashTrainer
from simulation.net.relay import Router, target_reached
from simulation.node.employee import Employee, LogEvent
from simulation.node.genesis import genesis_of
from simulation.node.users import Users
from simulation.protocol import lottery
from simulation.protocol.chain import BlockRecord, BlockTree
from simulation.protocol.encoding import KeyPair, derive_keypair, sha256
from simulation.protocol.ledger import Genesis, payouts, selection_order
from simulation.protocol.messages import (
    BH,
    TD,
    BlockHeader,
    Message,
    StakeholderSignature,
    TrainingDeclaration,
    Transaction,
    WrappedBlock,
    signing_bytes,
    stakeholder_bytes,
)
from simulation.protocol.rules import rules_of
from simulation.protocol.stages import (
    StageResult,
    model_id,
    samples_per_stage,
    secret_rule,
    stage_id,
)
from simulation.protocol.validation import Context, check_block, stakeholders_of

# "Now" of a hand-built world: late enough that no crafted tick lies in the future.
WORLD_NOW = 10_000

# A network small enough for a test: 4 employees, K = 3, 3 declarations per header.
SMALL = dict(
    trainer="hash",
    employees_num=4,
    users_num=4,
    max_transactions_num=20,
    stakeholders_num=3,
    employer_confidence=3,
    target_blockchain_length=6,
    network_delay_ticks=1,
    round_timeout_ticks=20,
    max_ticks=2000,
    seed=1,
    log_file="unused.log",
    # The hand-built world crafts messages at any tick (WORLD_NOW is "now"): its tick
    # window covers them all. test_hardening.py checks the window itself.
    tick_window=WORLD_NOW + 1,
)

OTHER_HASH = sha256(b"a block nobody has")
OTHER_SECRET = sha256(b"a secret from poisoned training")


# The small Keras network of conftest's ``keras_run`` (real processes, real training),
# with one poisoned employee of four: a minority whose declarations must be rejected.
KERAS_RUN: dict[str, Any] = {"employees_num": 4, "target_blockchain_length": 3, "seed": 5,
                             "adversaries": "poisoned:1"}


def small_scenario(**changes: Any) -> Scenario:
    scenario = default_scenario().replace(**{**SMALL, **changes})
    assert problems(scenario) == [], problems(scenario)
    return scenario


def genesis_for(scenario: Scenario) -> Genesis:
    return genesis_of(scenario)


def hash_trainer(scenario: Scenario) -> HashTrainer:
    return HashTrainer(
        model_id(scenario.tf_seed, scenario.iterations_per_epoch),
        samples_per_stage(MNIST_TRAIN_SIZE, scenario.iterations_per_epoch),
    )


def trainer_factory(scenario: Scenario) -> Callable[..., HashTrainer]:
    """``trainer_for(index[, behaviour])`` for ``lockstep.run_lockstep``: every employee
    gets the honest hash trainer."""
    return lambda index, *behaviour: hash_trainer(scenario)


def make_employee(scenario: Scenario, index: int, genesis: Genesis | None = None) -> Employee:
    genesis = genesis if genesis is not None else genesis_for(scenario)
    return Employee(index, scenario, genesis, hash_trainer(scenario),
                    derive_keypair(scenario.seed, "employee", index))


# --- Re-signing altered wire maps ------------------------------------------------------


def altered(message: Message, **changes: Any) -> Message:
    """The same kind of message with some wire fields changed and the old signature."""
    wire = dict(message.wire)
    wire.update(changes)
    return type(message)(wire)


def resign(message: Message, keys: KeyPair, **changes: Any) -> Message:
    """The message with some wire fields changed, signed again with ``keys`` (and its
    ``author``/``sender`` unchanged unless a change says otherwise)."""
    wire = {k: v for k, v in message.wire.items() if k != "sig"}
    wire.update(changes)
    if isinstance(message, StakeholderSignature):
        wire["sig"] = keys.sign(stakeholder_bytes(bytes(wire["bh"])))
    else:
        wire["sig"] = keys.sign(signing_bytes(wire))
    return type(message)(wire)


# --- A hand-driven world ----------------------------------------------------------------


class World:
    """Everything a receiver knows (genesis, tree, own training) plus every key, so a
    test can build valid messages and break exactly one rule at a time."""

    def __init__(self, scenario: Scenario | None = None, genesis: Genesis | None = None):
        self.scenario = scenario if scenario is not None else small_scenario()
        self.genesis = genesis if genesis is not None else genesis_for(self.scenario)
        self.model_id = self.genesis.model_id
        seed = self.scenario.seed
        self.employees = [derive_keypair(seed, "employee", i)
                          for i in range(self.scenario.employees_num)]
        self.users = [derive_keypair(seed, "user", i) for i in range(self.scenario.users_num)]
        self.outsider = derive_keypair(seed, "outsider", 0)
        self._by_public = {k.public: k for k in [*self.employees, *self.users, self.outsider]}
        self.trainer = hash_trainer(self.scenario)
        self.tree = BlockTree(self.genesis)
        self.rules = rules_of(self.scenario)
        self.ctx = Context(self.scenario, self.model_id, self.genesis, self.tree,
                           self.trainer.result, now=WORLD_NOW,
                           personal_secret=self.personal_secret)

    def light_ctx(self) -> Context:
        """What a light client (the employer) knows: the same tree, no training."""
        return Context(self.scenario, self.model_id, self.genesis, self.tree, None,
                       now=self.ctx.now)

    # Lookups

    def keys(self, public: bytes) -> KeyPair:
        return self._by_public[public]

    def index(self, public: bytes) -> int:
        return [k.public for k in self.employees].index(public)

    def record(self, parent: bytes | None) -> BlockRecord:
        record = self.tree.get(parent if parent is not None else self.genesis.hash)
        assert record is not None
        return record

    def own(self, stage: int) -> StageResult:
        return self.trainer.result(stage)

    def personal_secret(self, stage: int, author: bytes) -> bytes:
        """Rule personal-secrets: ``author``'s secret for ``stage`` (honest training)."""
        return secret_rule(self.scenario)(stage_id(self.model_id, stage),
                                          self.own(stage).losses, author)

    def commit_secret(self, stage: int, author: bytes) -> bytes:
        """What an honest declaration by ``author`` commits to under the world's rules."""
        return self.personal_secret(stage, author) if self.rules.personal_secrets \
            else self.own(stage).secret

    def sid(self, parent: bytes | None = None) -> str:
        return stage_id(self.model_id, self.record(parent).height)

    # Lottery

    def lottery_tick(self, kind: str, author: int | KeyPair, parent: bytes | None = None,
                     *, start: int | None = None, win: bool = True,
                     sid: str | None = None) -> int:
        """First tick >= start (default: the parent's tick) where the ``kind`` lottery of
        ``author`` on ``parent`` wins (or, with win=False, loses)."""
        keys = self.employees[author] if isinstance(author, int) else author
        record = self.record(parent)
        sid = sid if sid is not None else stage_id(self.model_id, record.height)
        coinstake = self.scenario.td_coinstake if kind == TD else self.scenario.bh_coinstake
        tick = record.tick if start is None else start
        while True:
            kernel = lottery.kernel(kind, keys.public, record.hash, sid, tick,
                                    bind_parent=not self.rules.lottery_kernel)
            if lottery.wins(kernel, coinstake) == win:
                return tick
            tick += 1

    # Builders of valid messages (keyword arguments break one thing on purpose)

    def tx(self, sender: int, receiver: int, amount: int, nonce: int) -> Transaction:
        return Transaction.create(self.users[sender], self.users[receiver].public, amount,
                                  nonce, chain=self.ctx.chain_id())

    def author_keys(self, author: int | KeyPair) -> KeyPair:
        return self.employees[author] if isinstance(author, int) else author

    def td(self, author: int | KeyPair, parent: bytes | None = None, *,
           tick: int | None = None,
           start: int | None = None, **overrides: Any) -> TrainingDeclaration:
        record = self.record(parent)
        own = self.own(record.height)
        if tick is None:
            tick = self.lottery_tick(TD, author, record.hash, start=start)
        fields: dict[str, Any] = dict(
            model_id=self.model_id, stage_id=stage_id(self.model_id, record.height),
            parent=record.hash, tick=tick, model_hash=own.model_hash,
            secret=self.commit_secret(record.height, self.author_keys(author).public),
            coinstake=self.scenario.td_coinstake,
        )
        fields.update(overrides)
        return TrainingDeclaration.create(self.author_keys(author), **fields)

    def declarations(self, authors: Iterable[int], parent: bytes | None = None,
                     **overrides: Any) -> list[TrainingDeclaration]:
        return [self.td(a, parent, **overrides) for a in authors]

    def bh(self, author: int | KeyPair, parent: bytes | None = None, *,
           tds: Sequence[TrainingDeclaration] | None = None, tick: int | None = None,
           **overrides: Any) -> BlockHeader:
        """A valid header by employee ``author``; by default it carries the declarations
        of ``author`` and the next EMPLOYER_CONFIDENCE - 1 employees."""
        record = self.record(parent)
        if tds is None:
            n = self.scenario.employees_num
            authors = [(author + i) % n for i in range(self.scenario.employer_confidence)]
            tds = self.declarations(authors, record.hash)
        if tick is None:
            start = max([record.tick, *(td.tick for td in tds)])
            tick = self.lottery_tick(BH, author, record.hash, start=start)
        # An overridden secret stands for a training of its own (poisoners): under the
        # rule personal-secrets every declarer's revealed secret is then that one too.
        personal = None
        if self.rules.personal_secrets:
            personal = {td.author: overrides.get("secret") or
                        self.personal_secret(record.height, td.author) for td in tds}
        fields: dict[str, Any] = dict(
            model_id=self.model_id, stage_id=stage_id(self.model_id, record.height),
            height=record.height + 1, parent=record.hash, tick=tick,
            secret=self.own(record.height).secret, declarations=list(tds),
            coinstake=self.scenario.bh_coinstake, personal_secrets=personal,
        )
        fields.update(overrides)
        return BlockHeader.create(self.author_keys(author), **fields)

    def stakeholders(self, header: BlockHeader) -> list[bytes]:
        chosen = stakeholders_of(header, self.record(header.parent).ledger, self.genesis,
                                 self.scenario)
        assert chosen is not None
        return chosen

    def ss(self, header: BlockHeader) -> list[StakeholderSignature]:
        """The signatures of the header's K-1 normal stakeholders, in draw order."""
        return [StakeholderSignature.create(self.keys(pk), header.hash)
                for pk in self.stakeholders(header)[:-1]]

    def payouts(self, header: BlockHeader) -> list[tuple[bytes, int]]:
        return payouts(header.height, header.author, self.stakeholders(header),
                       self.scenario.trainer_share)

    def wrap(self, header: BlockHeader, transactions: Sequence[Transaction] = (), *,
             tick: int | None = None, author: KeyPair | None = None,
             signatures: Sequence[StakeholderSignature] | None = None,
             payouts: Sequence[tuple[bytes, int]] | None = None,
             keep_order: bool = False) -> WrappedBlock:
        """Roy's block; its transactions in Roy's selection order (rule roy-rules)
        unless ``keep_order``."""
        roy = author if author is not None else self.keys(self.stakeholders(header)[-1])
        if not keep_order:
            transactions = sorted(transactions, key=selection_order)
        return WrappedBlock.create(
            roy, header=header,
            signatures=list(signatures if signatures is not None else self.ss(header)),
            transactions=list(transactions),
            payouts=list(payouts if payouts is not None else self.payouts(header)),
            tick=header.tick if tick is None else tick,
        )

    def block(self, author: int = 0, parent: bytes | None = None,
              transactions: Sequence[Transaction] = (), *, tick: int | None = None,
              add: bool = True) -> WrappedBlock:
        """A fully valid block by trainer ``author`` on ``parent`` (default: genesis),
        added to the world's tree unless add=False."""
        block = self.wrap(self.bh(author, parent), transactions, tick=tick)
        if add:
            self.add(block)
        return block

    def add(self, block: WrappedBlock) -> BlockRecord:
        ledger = check_block(self.ctx, block)
        self.tree.add(block, ledger)
        record = self.tree.get(block.hash)
        assert record is not None
        return record


# --- A network driver with fault knobs ----------------------------------------------------


@dataclass
class Run:
    employees: list[Employee]
    users: Users
    ticks: int
    finished: bool
    events: list[LogEvent] = field(default_factory=list)
    live: list[Employee] = field(default_factory=list)


def drive(
    scenario: Scenario,
    *,
    silent: Iterable[int] = (),
    inject: Callable[[int], list[bytes]] | None = None,
    keep_events: bool = False,
) -> Run:
    """The lockstep loop of ``lockstep.run_lockstep``, built from ``relay.Router``, with
    two faults: employees in ``silent`` receive everything but nothing they send is
    delivered; ``inject(tick)`` returns extra frames a stranger sends at that tick. The
    run ends when the live employees agree on the target block."""
    silent = set(silent)
    genesis = genesis_for(scenario)
    employees = [make_employee(scenario, i, genesis) for i in range(scenario.employees_num)]
    live = [e for e in employees if e.index not in silent]
    users = Users(scenario, genesis)
    router = Router(scenario.network_delay_ticks)
    users_index, stranger_index = len(employees), len(employees) + 1
    events: list[LogEvent] = []
    tick, finished = 0, False
    for tick in range(scenario.max_ticks + 1):
        due = router.take(tick)
        for employee in employees:
            ready = employee.step(tick, Router.for_party(due, employee.index))
            if employee.index not in silent:
                router.submit(tick, employee.index, ready.outgoing)
            if keep_events:
                events.extend(ready.events)
        router.submit(tick, users_index, users.step(tick))
        if inject is not None:
            router.submit(tick, stranger_index, inject(tick))
        if target_reached([e.status() for e in live], scenario.target_blockchain_length):
            finished = True
            break
    return Run(employees, users, tick, finished, events, live)


def canonical_transactions(employee: Employee) -> list[bytes]:
    return [tx.hash for record in employee.tree.canonical() if record.block is not None
            for tx in record.block.transactions]


# --- Sharing between the session's xdist workers ------------------------------------


def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this session that every xdist worker of it sees (the workers' base
    folders are siblings in it); without xdist, the session's own base folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


class exclusive:  # noqa: N801 - used as a context manager, like a lock
    """An exclusive lock on ``path`` across the session's processes (flock)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> None:
        import fcntl

        self.handle = open(self.path, "a")  # noqa: SIM115 - closed in __exit__
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
