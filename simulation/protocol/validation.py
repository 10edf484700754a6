"""The rules a receiver checks, one function per message kind.

Each function raises ``Rejected(reason)`` (a ``reasons.Reason``) for the first rule the
message breaks. The order is cheap structural checks first (membership before anything
that costs a signature check, so a flood from unknown keys is cheap to refuse), then
signatures, then the checks that need the receiver's own training (which trains the
stage if it has not yet). The hardening rules (``protocol.rules``) are applied where the
scenario has them in force; each check names its rule.

``live``: a declaration or header that arrives on its own is checked against the tick
window; one inside a header or block (which may be old: a block fetched by catch-up)
is not, since its window was checked by those who received it live.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from simulation.config import Scenario
from simulation.protocol import lottery
from simulation.protocol.chain import BlockRecord, BlockTree
from simulation.protocol.follow_the_coin import draw_by_race, draw_seed, draw_stakeholders
from simulation.protocol.ledger import (
    Genesis,
    Ledger,
    payouts,
    selection_order,
    transaction_static_problem,
)
from simulation.protocol.messages import (
    BH,
    TD,
    BlockHeader,
    RoundMessage,
    StakeholderSignature,
    TrainingDeclaration,
    WrappedBlock,
)
from simulation.protocol.reasons import Reason
from simulation.protocol.rules import Rules, rules_of, slot_of
from simulation.protocol.stages import StageResult, stage_id


class Rejected(Exception):
    """A message breaks ``rule``; ``reason`` is the text counted and logged (the rule, or
    the rule wrapping ``inner``, the reason of a part of the message)."""

    def __init__(self, rule: Reason, inner: str | None = None):
        self.rule = rule
        self.reason: str = rule if inner is None else rule.because(inner)
        super().__init__(self.reason)


@dataclass
class Context:
    """What a receiver knows when it checks a message."""

    scenario: Scenario
    model_id: str
    genesis: Genesis
    tree: BlockTree
    # Trains the stage if needed. None for a light client (the employer, a lazy node):
    # then the checks against one's own training are skipped.
    own_stage: Callable[[int], StageResult] | None
    now: int = 0
    valid_declarations: set[bytes] = field(default_factory=set)  # TD hashes checked
    # Rule personal-secrets: (stage, author) -> that author's personal secret computed
    # from one's own training (None for a light client).
    personal_secret: Callable[[int, bytes], bytes] | None = None
    rules: Rules = field(init=False)
    members: frozenset[bytes] = field(init=False)  # the genesis employees' keys
    min_stage_ticks: int = field(init=False)  # rule stage-time: the fastest stage

    def __post_init__(self) -> None:
        self.rules = rules_of(self.scenario)
        self.members = frozenset(self.genesis.employees)
        self.min_stage_ticks = min_stage_ticks(self.scenario)

    def stakeholders(self, header: BlockHeader) -> list[bytes] | None:
        parent = self.tree.get(header.parent)
        if parent is None:
            return None
        return stakeholders_of(header, parent.ledger, self.genesis, self.scenario)

    def chain_id(self) -> bytes | None:
        """The chain a transaction must name (rule chain-id), or None."""
        return self.genesis.hash if self.rules.chain_id else None


def min_stage_ticks(scenario: Scenario) -> int:
    """Ticks the fastest hardware of the scenario needs per stage (rule stage-time)."""
    fastest = min(scenario.speed_factors, default=1.0)
    return math.ceil(scenario.stage_ticks * fastest)


def kernel_of(scenario: Scenario, kind: str, author: bytes, parent: bytes, sid: str,
              tick: int) -> bytes:
    """The lottery kernel of a try under the scenario's rules (lottery-kernel)."""
    return lottery.kernel(kind, author, parent, sid, tick,
                          bind_parent=not rules_of(scenario).lottery_kernel)


def round_kernel(scenario: Scenario, kind: str, message: RoundMessage) -> bytes:
    """The lottery kernel of a declaration or header under the scenario's rules."""
    return kernel_of(scenario, kind, message.author, message.parent, message.stage_id,
                     message.tick)


def stakeholders_for(scenario: Scenario, genesis: Genesis, parent_ledger: Ledger,
                     author: bytes, parent: bytes, sid: str, tick: int) -> list[bytes] | None:
    """The stakeholders a header by ``author`` on ``parent`` at ``tick`` would draw."""
    stakes = [(pk, parent_ledger.balance(pk)) for pk in genesis.employees]
    if rules_of(scenario).draw:
        seed = draw_seed(genesis.hash, sid, slot_of(scenario, tick), author)
        return draw_by_race(seed, stakes, scenario.stakeholders_num)
    return draw_stakeholders(kernel_of(scenario, BH, author, parent, sid, tick), stakes,
                             scenario.stakeholders_num)


def stakeholders_of(
    header: BlockHeader, parent_ledger: Ledger, genesis: Genesis, scenario: Scenario
) -> list[bytes] | None:
    return stakeholders_for(scenario, genesis, parent_ledger, header.author, header.parent,
                            header.stage_id, header.tick)


def header_key(scenario: Scenario, header: BlockHeader) -> tuple[bytes, bytes, int]:
    """What one lottery win allows one header for: (author, parent, slot) under the rule
    draw (a second header in the slot could only try the same draw again), else
    (author, parent, tick)."""
    when = slot_of(scenario, header.tick) if rules_of(scenario).draw else header.tick
    return header.author, header.parent, when


def _round_checks(ctx: Context, kind: str, message: TrainingDeclaration | BlockHeader,
                  coinstake: int, live: bool) -> BlockRecord:
    """Rules a TD and a BH share: author, model, coinstake, tick, parent, stage, lottery."""
    rules = ctx.rules
    if rules.members and message.author not in ctx.members:
        raise Rejected(Reason.NOT_AN_EMPLOYEE)
    if message.model_id != ctx.model_id:
        raise Rejected(Reason.WRONG_MODEL_ID)
    if message.coinstake != coinstake:
        raise Rejected(Reason.WRONG_COINSTAKE)
    if message.tick > ctx.now:
        raise Rejected(Reason.TICK_IN_THE_FUTURE)
    if rules.tick_window and live and message.tick < ctx.now - ctx.scenario.tick_window:
        raise Rejected(Reason.TICK_BEFORE_WINDOW)
    parent = ctx.tree.get(message.parent)
    if parent is None:
        raise Rejected(Reason.UNKNOWN_PARENT_BLOCK)
    if message.stage_id != stage_id(ctx.model_id, parent.height):
        raise Rejected(Reason.WRONG_STAGE)
    if message.tick < parent.tick:
        raise Rejected(Reason.TICK_BEFORE_ITS_PARENT_BLOCK)
    if rules.stage_time and kind == TD and message.tick < parent.tick + ctx.min_stage_ticks:
        raise Rejected(Reason.DECLARED_TOO_SOON)
    if not lottery.wins(round_kernel(ctx.scenario, kind, message), coinstake):
        raise Rejected(Reason.LOTTERY_NOT_WON)
    return parent


def check_declaration(ctx: Context, td: TrainingDeclaration, live: bool = True
                      ) -> BlockRecord:
    """A TD is valid when it won its lottery, is signed, and (checked here already, as an
    honest receiver knows ts for the stage) its model hash and commitment match the
    receiver's own training."""
    parent = _round_checks(ctx, TD, td, ctx.scenario.td_coinstake, live)
    if td.hash in ctx.valid_declarations:
        return parent
    if not td.signature_valid():
        raise Rejected(Reason.BAD_SIGNATURE)
    if ctx.own_stage is None:
        ctx.valid_declarations.add(td.hash)
        return parent
    own = ctx.own_stage(parent.height)
    # Tolerant verification: honest weights differ in their last bits across hardware,
    # so the model hash is informational; the (quantized) secret is the check.
    if ctx.scenario.verification == "exact" and td.model_hash != own.model_hash:
        raise Rejected(Reason.MODEL_HASH_NOT_OWN_TRAINING)
    secret = own.secret
    if ctx.rules.personal_secrets and ctx.personal_secret is not None:
        secret = ctx.personal_secret(parent.height, td.author)
    if not td.commitment_valid(secret):
        raise Rejected(Reason.COMMITMENT_NOT_OWN_SECRET)
    ctx.valid_declarations.add(td.hash)
    return parent


def check_header(ctx: Context, bh: BlockHeader, live: bool = True) -> BlockRecord:
    parent = _round_checks(ctx, BH, bh, ctx.scenario.bh_coinstake, live)
    if bh.height != parent.height + 1:
        raise Rejected(Reason.WRONG_HEIGHT)
    tds = bh.declarations
    authors = [td.author for td in tds]
    if len(tds) < ctx.scenario.employer_confidence:
        raise Rejected(Reason.TOO_FEW_TRAINING_DECLARATIONS)
    if ctx.rules.header_cap and len(tds) > ctx.scenario.max_header_declarations:
        raise Rejected(Reason.TOO_MANY_DECLARATIONS)
    if authors != sorted(set(authors)):
        raise Rejected(Reason.DECLARATIONS_NOT_IN_ORDER)
    if bh.author not in authors:
        raise Rejected(Reason.AUTHOR_NOT_DECLARED)
    revealed = bh.personal_secrets
    if ctx.rules.personal_secrets and revealed is None:
        raise Rejected(Reason.NO_PERSONAL_SECRETS_REVEALED)
    if not ctx.rules.personal_secrets and revealed is not None:
        raise Rejected(Reason.UNEXPECTED_PERSONAL_SECRETS)
    if not bh.signature_valid():
        raise Rejected(Reason.BAD_SIGNATURE)
    for position, td in enumerate(tds):
        if td.parent != bh.parent or td.stage_id != bh.stage_id:
            raise Rejected(Reason.DECLARATION_FOR_ANOTHER_ROUND)
        if td.tick > bh.tick:
            raise Rejected(Reason.DECLARATION_NEWER_THAN_THE_HEADER)
        secret = bh.secret if revealed is None else revealed[position]
        if not td.commitment_valid(secret):
            raise Rejected(Reason.COMMITMENT_NOT_REVEALED_SECRET)
    if ctx.own_stage is not None and bh.secret != ctx.own_stage(parent.height).secret:
        raise Rejected(Reason.SECRET_NOT_OWN_TRAINING)
    for td in tds:
        try:
            check_declaration(ctx, td, live=False)
        except Rejected as inner:
            raise Rejected(Reason.INVALID_DECLARATION, inner.reason) from None
    return parent


def check_stakeholder_signature(
    ss: StakeholderSignature, stakeholders: list[bytes]
) -> None:
    if ss.author not in stakeholders[:-1]:
        raise Rejected(Reason.SIGNER_NOT_STAKEHOLDER)
    if not ss.signature_valid():
        raise Rejected(Reason.BAD_SIGNATURE)


def check_block(ctx: Context, wb: WrappedBlock) -> Ledger:
    """Full check of a wrapped block whose parent is known; returns the ledger after it."""
    if wb.tick > ctx.now:
        raise Rejected(Reason.TICK_IN_THE_FUTURE)
    header = wb.header
    try:
        parent = check_header(ctx, header, live=False)
    except Rejected as inner:
        raise Rejected(Reason.INVALID_HEADER, inner.reason) from None
    if wb.tick < header.tick:
        raise Rejected(Reason.BLOCK_OLDER_THAN_ITS_HEADER)
    if ctx.rules.roy_rules and wb.tick > header.tick + ctx.scenario.tick_window:
        raise Rejected(Reason.BLOCK_AFTER_TICK_WINDOW)
    stakeholders = stakeholders_of(header, parent.ledger, ctx.genesis, ctx.scenario)
    if stakeholders is None:
        raise Rejected(Reason.TOO_FEW_STAKEHOLDERS)
    if wb.author != stakeholders[-1]:
        raise Rejected(Reason.AUTHOR_NOT_ROY)
    signatures = wb.stakeholder_signatures
    if [s.author for s in signatures] != stakeholders[:-1]:
        raise Rejected(Reason.SIGNATURES_NOT_FIRST_STAKEHOLDERS)
    for ss in signatures:
        if ss.header_hash != header.hash:
            raise Rejected(Reason.SIGNATURE_FOR_ANOTHER_HEADER)
        check_stakeholder_signature(ss, stakeholders)
    transactions = wb.transactions
    if len(transactions) > ctx.scenario.max_block_transactions:
        raise Rejected(Reason.TOO_MANY_TRANSACTIONS)
    chain = ctx.chain_id()
    for tx in transactions:
        problem = transaction_static_problem(tx, chain)
        if problem is not None:
            raise Rejected(Reason.INVALID_TRANSACTION, problem)
    if ctx.rules.roy_rules and [selection_order(t) for t in transactions] != sorted(
            selection_order(t) for t in transactions):
        raise Rejected(Reason.TRANSACTIONS_NOT_IN_ORDER)
    expected = payouts(header.height, header.author, stakeholders, ctx.scenario.trainer_share)
    if list(wb.payouts) != expected:
        raise Rejected(Reason.PAYOUTS_NOT_REWARD_RULE)
    if not wb.signature_valid():
        raise Rejected(Reason.BAD_SIGNATURE)
    try:
        return parent.ledger.apply(transactions, expected)
    except ValueError as exc:
        raise Rejected(Reason.TRANSACTION_DOES_NOT_APPLY, str(exc)) from None
