"""The rules a receiver checks, one function per message kind.

Each function raises ``Rejected(reason)`` for the first rule the message breaks. The
order is cheap structural checks first, then signatures, then the checks that need the
receiver's own training (which trains the stage if it has not yet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from simulation.config import Scenario
from simulation.protocol import lottery
from simulation.protocol.chain import BlockRecord, BlockTree
from simulation.protocol.follow_the_coin import draw_stakeholders
from simulation.protocol.ledger import Genesis, Ledger, payouts, transaction_static_problem
from simulation.protocol.messages import (
    BH,
    TD,
    BlockHeader,
    StakeholderSignature,
    TrainingDeclaration,
    WrappedBlock,
)
from simulation.protocol.stages import StageResult, stage_id


class Rejected(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


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

    def stakeholders(self, header: BlockHeader) -> list[bytes] | None:
        parent = self.tree.get(header.parent)
        if parent is None:
            return None
        return stakeholders_of(header, parent.ledger, self.genesis, self.scenario)


def stakeholders_of(
    header: BlockHeader, parent_ledger: Ledger, genesis: Genesis, scenario: Scenario
) -> list[bytes] | None:
    seed = lottery.kernel(BH, header.author, header.parent, header.stage_id, header.tick)
    stakes = [(pk, parent_ledger.balance(pk)) for pk in genesis.employees]
    return draw_stakeholders(seed, stakes, scenario.stakeholders_num)


def _round_checks(
    ctx: Context, kind: str, message: TrainingDeclaration | BlockHeader, coinstake: int
) -> BlockRecord:
    """Rules a TD and a BH share: model, coinstake, tick, parent, stage, lottery."""
    if message.model_id != ctx.model_id:
        raise Rejected("wrong model id")
    if message.coinstake != coinstake:
        raise Rejected("coinstake differs from the network's")
    if message.tick > ctx.now:
        raise Rejected("tick in the future")
    parent = ctx.tree.get(message.parent)
    if parent is None:
        raise Rejected("unknown parent block")
    if message.stage_id != stage_id(ctx.model_id, parent.height):
        raise Rejected("stage does not match the parent block")
    if message.tick < parent.tick:
        raise Rejected("tick before its parent block")
    kernel = lottery.kernel(kind, message.author, message.parent, message.stage_id,
                            message.tick)
    if not lottery.wins(kernel, coinstake):
        raise Rejected("lottery not won")
    return parent


def check_declaration(ctx: Context, td: TrainingDeclaration) -> BlockRecord:
    """A TD is valid when it won its lottery, is signed, and (checked here already, as an
    honest receiver knows ts for the stage) its model hash and commitment match the
    receiver's own training."""
    parent = _round_checks(ctx, TD, td, ctx.scenario.td_coinstake)
    if td.hash in ctx.valid_declarations:
        return parent
    if not td.signature_valid():
        raise Rejected("bad signature")
    if ctx.own_stage is None:
        ctx.valid_declarations.add(td.hash)
        return parent
    own = ctx.own_stage(parent.height)
    # Tolerant verification: honest weights differ in their last bits across hardware,
    # so the model hash is informational; the (quantized) secret is the check.
    if ctx.scenario.verification == "exact" and td.model_hash != own.model_hash:
        raise Rejected("model hash differs from own training")
    if not td.commitment_valid(own.secret):
        raise Rejected("commitment does not match own training secret")
    ctx.valid_declarations.add(td.hash)
    return parent


def check_header(ctx: Context, bh: BlockHeader) -> BlockRecord:
    parent = _round_checks(ctx, BH, bh, ctx.scenario.bh_coinstake)
    if bh.height != parent.height + 1:
        raise Rejected("height is not parent height + 1")
    tds = bh.declarations
    authors = [td.author for td in tds]
    if len(tds) < ctx.scenario.employer_confidence:
        raise Rejected("too few training declarations")
    if authors != sorted(set(authors)):
        raise Rejected("declarations not from distinct authors in order")
    if bh.author not in authors:
        raise Rejected("author has no declaration in the header")
    if not bh.signature_valid():
        raise Rejected("bad signature")
    for td in tds:
        if td.parent != bh.parent or td.stage_id != bh.stage_id:
            raise Rejected("declaration for another round")
        if td.tick > bh.tick:
            raise Rejected("declaration newer than the header")
        if not td.commitment_valid(bh.secret):
            raise Rejected("commitment does not verify against the revealed secret")
    if ctx.own_stage is not None and bh.secret != ctx.own_stage(parent.height).secret:
        raise Rejected("revealed secret differs from own training")
    for td in tds:
        try:
            check_declaration(ctx, td)
        except Rejected as inner:
            raise Rejected(f"invalid declaration: {inner.reason}") from None
    return parent


def check_stakeholder_signature(
    ss: StakeholderSignature, stakeholders: list[bytes]
) -> None:
    if ss.author not in stakeholders[:-1]:
        raise Rejected("signer is not a normal stakeholder of the header")
    if not ss.signature_valid():
        raise Rejected("bad signature")


def check_block(ctx: Context, wb: WrappedBlock) -> Ledger:
    """Full check of a wrapped block whose parent is known; returns the ledger after it."""
    if wb.tick > ctx.now:
        raise Rejected("tick in the future")
    header = wb.header
    try:
        parent = check_header(ctx, header)
    except Rejected as inner:
        raise Rejected(f"invalid header: {inner.reason}") from None
    if wb.tick < header.tick:
        raise Rejected("block older than its header")
    stakeholders = stakeholders_of(header, parent.ledger, ctx.genesis, ctx.scenario)
    if stakeholders is None:
        raise Rejected("too few employees hold stake to draw stakeholders")
    if wb.author != stakeholders[-1]:
        raise Rejected("author is not the header's Roy")
    signatures = wb.stakeholder_signatures
    if [s.author for s in signatures] != stakeholders[:-1]:
        raise Rejected("stakeholder signatures are not exactly the first K-1 stakeholders")
    for ss in signatures:
        if ss.header_hash != header.hash:
            raise Rejected("stakeholder signature for another header")
        check_stakeholder_signature(ss, stakeholders)
    transactions = wb.transactions
    if len(transactions) > ctx.scenario.max_block_transactions:
        raise Rejected("too many transactions")
    for tx in transactions:
        problem = transaction_static_problem(tx)
        if problem is not None:
            raise Rejected(f"invalid transaction: {problem}")
    expected = payouts(header.height, header.author, stakeholders, ctx.scenario.trainer_share)
    if list(wb.payouts) != expected:
        raise Rejected("coinbase payouts differ from the reward rule")
    if not wb.signature_valid():
        raise Rejected("bad signature")
    try:
        return parent.ledger.apply(transactions, expected)
    except ValueError as exc:
        raise Rejected(f"transaction does not apply: {exc}") from None
