"""Every rule a receiver checks, each broken alone by a message that is otherwise valid.

To hit the intended rule, a broken message is re-signed with its author's key whenever
the rule is not about the signature, and its tick is chosen so that its lottery wins
whenever the rule is not about the lottery.
"""

from __future__ import annotations

import pytest

from simulation.ml.training import HashTrainer
from simulation.protocol import lottery
from simulation.protocol.encoding import derive_keypair, sha256
from simulation.protocol.ledger import Genesis, Ledger
from simulation.protocol.messages import BH, TD, StakeholderSignature, WrappedBlock, signing_bytes
from simulation.protocol.reasons import Reason
from simulation.protocol.validation import (
    Context,
    Rejected,
    check_block,
    check_declaration,
    check_header,
    check_stakeholder_signature,
)
from tests.helpers import (
    OTHER_HASH,
    OTHER_SECRET,
    World,
    altered,
    make_employee,
    resign,
    small_scenario,
)

HUGE_COINSTAKE = 2**256 - 1  # every kernel wins


@pytest.fixture
def world():
    return World()


def reason_of(check, ctx, message) -> str:
    with pytest.raises(Rejected) as info:
        check(ctx, message)
    return info.value.reason


def winning_tick(kind, keys, parent: bytes, sid: str, coinstake: int, start: int = 0,
                 win: bool = True) -> int:
    tick = start
    while lottery.wins(lottery.kernel(kind, keys.public, parent, sid, tick), coinstake) != win:
        tick += 1
    return tick


def forged_signature(world, message):
    """A signature over the right bytes by the wrong key."""
    thief = world.outsider
    return thief.sign(signing_bytes(message.wire))


# --- Training declarations -------------------------------------------------------------------


def test_valid_declaration_is_accepted(world):
    td = world.td(1)
    assert check_declaration(world.ctx, td).hash == world.genesis.hash
    assert td.hash in world.ctx.valid_declarations


def test_declaration_on_a_later_block_is_accepted(world):
    b1 = world.block(0)
    td = world.td(2, b1.hash)
    assert check_declaration(world.ctx, td).hash == b1.hash


def test_td_wrong_model_id(world):
    td = world.td(1, model_id="mnist-some-other-task")
    assert reason_of(check_declaration, world.ctx, td) == Reason.WRONG_MODEL_ID


@pytest.mark.parametrize("coinstake", [HUGE_COINSTAKE, 2**200, 2**253])
def test_td_coinstake_differs(world, coinstake):
    # At a tick where the network's lottery loses: only the declared coinstake wins.
    tick = world.lottery_tick(TD, 1, win=False)
    td = world.td(1, tick=tick, coinstake=coinstake)
    assert reason_of(check_declaration, world.ctx, td) == Reason.WRONG_COINSTAKE


def test_td_tick_in_the_future(world):
    td = world.td(1)
    world.ctx.now = td.tick - 1
    assert reason_of(check_declaration, world.ctx, td) == Reason.TICK_IN_THE_FUTURE
    world.ctx.now = td.tick
    check_declaration(world.ctx, td)


def test_td_unknown_parent(world):
    sid = world.sid()
    tick = winning_tick(TD, world.employees[1], OTHER_HASH, sid, world.scenario.td_coinstake)
    td = world.td(1, parent=None, tick=tick)
    td = resign(td, world.employees[1], parent=OTHER_HASH)
    assert reason_of(check_declaration, world.ctx, td) == Reason.UNKNOWN_PARENT_BLOCK


def test_td_stage_not_matching_parent(world):
    sid = f"{world.model_id}:1"  # the genesis block starts stage 0
    tick = winning_tick(TD, world.employees[1], world.genesis.hash, sid,
                        world.scenario.td_coinstake)
    td = world.td(1, tick=tick, stage_id=sid)
    assert reason_of(check_declaration, world.ctx, td) == Reason.WRONG_STAGE


def test_td_tick_before_parent_block(world):
    b1 = world.block(0, tick=300)
    tick = world.lottery_tick(TD, 1, b1.hash, start=0)
    assert tick < 300
    td = world.td(1, b1.hash, tick=tick)
    assert reason_of(check_declaration, world.ctx, td) == Reason.TICK_BEFORE_ITS_PARENT_BLOCK
    # The same author's next winning tick after the block is fine.
    check_declaration(world.ctx, world.td(1, b1.hash))


def test_td_lottery_not_won(world):
    td = world.td(1, tick=world.lottery_tick(TD, 1, win=False))
    assert reason_of(check_declaration, world.ctx, td) == Reason.LOTTERY_NOT_WON


def test_td_bad_signature(world):
    td = world.td(1)
    assert reason_of(check_declaration, world.ctx,
                     altered(td, sig=forged_signature(world, td))) == Reason.BAD_SIGNATURE
    # Someone else's valid TD with this author's key written in (at a tick where both
    # win their lottery): the signature is not this author's.
    tick = next(t for t in range(100_000)
                if world.lottery_tick(TD, 1, start=t) == t == world.lottery_tick(TD, 2, start=t))
    stolen = altered(world.td(2, tick=tick), author=world.employees[1].public)
    assert reason_of(check_declaration, world.ctx, stolen) == Reason.BAD_SIGNATURE


def test_td_model_hash_differs_from_own_training(world):
    td = world.td(1, model_hash=sha256(b"weights after poisoned training"))
    assert reason_of(check_declaration, world.ctx, td) == Reason.MODEL_HASH_NOT_OWN_TRAINING


def test_td_commitment_not_matching_own_secret(world):
    td = world.td(1, secret=OTHER_SECRET)
    assert reason_of(check_declaration, world.ctx, td) == (
        Reason.COMMITMENT_NOT_OWN_SECRET)


def test_td_copied_commitment_is_rejected(world):
    """A lazy employee that copies another's commitment (it has no secret of its own)."""
    theirs = world.td(2)
    td = world.td(1, commitment=theirs.commitment)
    assert reason_of(check_declaration, world.ctx, td) == (
        Reason.COMMITMENT_NOT_OWN_SECRET)


def test_a_receiver_with_poisoned_training_rejects_honest_declarations(world):
    honest = world.td(1)
    labels = [(i + 1) % 10 for i in range(100)]  # relabelled data
    poisoned = HashTrainer(world.model_id, world.trainer.per_stage, labels=labels)
    ctx = Context(world.scenario, world.model_id, world.genesis, world.tree, poisoned.result,
                  now=world.ctx.now)
    assert reason_of(check_declaration, ctx, honest) == Reason.MODEL_HASH_NOT_OWN_TRAINING


def test_td_cache_still_applies_the_round_checks(world):
    td = world.td(1)
    check_declaration(world.ctx, td)
    world.ctx.now = td.tick - 1
    assert reason_of(check_declaration, world.ctx, td) == Reason.TICK_IN_THE_FUTURE


# --- Block headers ---------------------------------------------------------------------------


def test_valid_header_is_accepted(world):
    bh = world.bh(0)
    assert check_header(world.ctx, bh).hash == world.genesis.hash
    assert {td.hash for td in bh.declarations} <= world.ctx.valid_declarations


def test_header_with_more_declarations_than_needed_is_accepted(world):
    bh = world.bh(1, tds=world.declarations([0, 1, 2, 3]))
    check_header(world.ctx, bh)


def test_bh_wrong_model_id(world):
    bh = world.bh(0, model_id="mnist-some-other-task")
    assert reason_of(check_header, world.ctx, bh) == Reason.WRONG_MODEL_ID


def test_bh_coinstake_differs(world):
    tds = world.declarations([0, 1, 2])
    start = max(td.tick for td in tds)
    tick = world.lottery_tick(BH, 0, start=start, win=False)
    bh = world.bh(0, tds=tds, tick=tick, coinstake=HUGE_COINSTAKE)
    assert reason_of(check_header, world.ctx, bh) == Reason.WRONG_COINSTAKE


def test_bh_tick_in_the_future(world):
    bh = world.bh(0)
    world.ctx.now = bh.tick - 1
    assert reason_of(check_header, world.ctx, bh) == Reason.TICK_IN_THE_FUTURE


def test_bh_unknown_parent(world):
    bh = world.bh(0)
    tick = winning_tick(BH, world.employees[0], OTHER_HASH, bh.stage_id,
                        world.scenario.bh_coinstake, start=bh.tick)
    bh = resign(bh, world.employees[0], parent=OTHER_HASH, tick=tick)
    assert reason_of(check_header, world.ctx, bh) == Reason.UNKNOWN_PARENT_BLOCK


def test_bh_stage_not_matching_parent(world):
    tds = world.declarations([0, 1, 2])
    sid = f"{world.model_id}:1"
    tick = world.lottery_tick(BH, 0, start=max(td.tick for td in tds), sid=sid)
    bh = world.bh(0, tds=tds, tick=tick, stage_id=sid)
    assert reason_of(check_header, world.ctx, bh) == Reason.WRONG_STAGE


def test_bh_tick_before_parent_block(world):
    b1 = world.block(0, tick=400)
    tds = world.declarations([0, 1, 2], b1.hash)
    tick = world.lottery_tick(BH, 0, b1.hash, start=0)
    assert tick < 400
    bh = world.bh(0, b1.hash, tds=tds, tick=tick)
    assert reason_of(check_header, world.ctx, bh) == Reason.TICK_BEFORE_ITS_PARENT_BLOCK


def test_bh_lottery_not_won(world):
    tds = world.declarations([0, 1, 2])
    tick = world.lottery_tick(BH, 0, start=max(td.tick for td in tds), win=False)
    bh = world.bh(0, tds=tds, tick=tick)
    assert reason_of(check_header, world.ctx, bh) == Reason.LOTTERY_NOT_WON


@pytest.mark.parametrize("height", [0, 2, 7])
def test_bh_height_not_parent_plus_one(world, height):
    bh = world.bh(0, height=height)
    assert reason_of(check_header, world.ctx, bh) == Reason.WRONG_HEIGHT


def test_bh_too_few_declarations(world):
    bh = world.bh(0, tds=world.declarations([0, 1]))
    assert reason_of(check_header, world.ctx, bh) == Reason.TOO_FEW_TRAINING_DECLARATIONS


def test_bh_declarations_not_sorted(world):
    bh = world.bh(0)
    reordered = resign(bh, world.employees[0], tds=list(reversed(bh.wire["tds"])))
    assert reason_of(check_header, world.ctx, reordered) == (
        Reason.DECLARATIONS_NOT_IN_ORDER)


def test_bh_declarations_not_distinct(world):
    bh = world.bh(0)
    tds = bh.wire["tds"]
    doubled = resign(bh, world.employees[0], tds=sorted([tds[0], *tds],
                                                        key=lambda w: w["author"]))
    assert reason_of(check_header, world.ctx, doubled) == (
        Reason.DECLARATIONS_NOT_IN_ORDER)


def test_bh_two_declarations_by_one_author_count_once(world):
    """Two different TDs of one author (two winning ticks) cannot fill the quota."""
    first = world.td(1)
    second = world.td(1, start=first.tick + 1)
    own = world.td(0)
    tds = sorted([own.wire, first.wire, second.wire], key=lambda w: w["author"])
    bh = resign(world.bh(0, tds=[own, first, world.td(2)]), world.employees[0], tds=tds)
    assert reason_of(check_header, world.ctx, bh) == (
        Reason.DECLARATIONS_NOT_IN_ORDER)


def test_bh_author_without_its_own_declaration(world):
    bh = world.bh(3, tds=world.declarations([0, 1, 2]))
    assert reason_of(check_header, world.ctx, bh) == Reason.AUTHOR_NOT_DECLARED


def test_bh_bad_signature(world):
    bh = world.bh(0)
    assert reason_of(check_header, world.ctx,
                     altered(bh, sig=forged_signature(world, bh))) == Reason.BAD_SIGNATURE


def test_bh_declaration_for_another_parent(world):
    b1 = world.block(1)
    elsewhere = world.td(2, b1.hash)  # a valid TD, but for the next round
    tds = [world.td(0), world.td(1), elsewhere]
    bh = world.bh(0, tds=tds, tick=world.lottery_tick(BH, 0, start=elsewhere.tick))
    assert reason_of(check_header, world.ctx, bh) == Reason.DECLARATION_FOR_ANOTHER_ROUND


def test_bh_declaration_for_another_stage(world):
    other = world.td(2)
    other = resign(other, world.employees[2], id_s=f"{world.model_id}:1")
    bh = world.bh(0, tds=[world.td(0), world.td(1), other])
    assert reason_of(check_header, world.ctx, bh) == Reason.DECLARATION_FOR_ANOTHER_ROUND


def test_bh_declaration_newer_than_the_header(world):
    early = world.declarations([0, 1])
    tick = world.lottery_tick(BH, 0, start=max(td.tick for td in early))
    late = world.td(2, start=tick + 1)
    bh = world.bh(0, tds=[*early, late], tick=tick)
    assert reason_of(check_header, world.ctx, bh) == Reason.DECLARATION_NEWER_THAN_THE_HEADER


def test_bh_commitment_not_verifying_against_the_revealed_secret(world):
    tds = [world.td(0), world.td(1), world.td(2, secret=OTHER_SECRET)]
    bh = world.bh(0, tds=tds)
    assert reason_of(check_header, world.ctx, bh) == (
        Reason.COMMITMENT_NOT_REVEALED_SECRET)


def test_bh_revealed_secret_differs_from_own_training(world):
    """Poisoners agreeing among themselves: consistent commitments, wrong secret."""
    tds = world.declarations([0, 1, 2], secret=OTHER_SECRET)
    bh = world.bh(0, tds=tds, secret=OTHER_SECRET)
    assert reason_of(check_header, world.ctx, bh) == Reason.SECRET_NOT_OWN_TRAINING


def test_bh_invalid_declaration_lottery_not_won(world):
    loser = world.td(2, tick=world.lottery_tick(TD, 2, win=False))
    bh = world.bh(0, tds=[world.td(0), world.td(1), loser])
    assert reason_of(check_header, world.ctx, bh) == \
        Reason.INVALID_DECLARATION.because(Reason.LOTTERY_NOT_WON)


def test_bh_invalid_declaration_bad_signature(world):
    td = world.td(2)
    bh = world.bh(0, tds=[world.td(0), world.td(1),
                          altered(td, sig=forged_signature(world, td))])
    assert reason_of(check_header, world.ctx, bh) == \
        Reason.INVALID_DECLARATION.because(Reason.BAD_SIGNATURE)


def test_bh_invalid_declaration_model_hash(world):
    td = world.td(2, model_hash=OTHER_HASH)
    bh = world.bh(0, tds=[world.td(0), world.td(1), td])
    assert reason_of(check_header, world.ctx, bh) == (
        Reason.INVALID_DECLARATION.because(Reason.MODEL_HASH_NOT_OWN_TRAINING))


def test_bh_invalid_declaration_coinstake(world):
    td = world.td(2, tick=world.lottery_tick(TD, 2, win=False), coinstake=HUGE_COINSTAKE)
    bh = world.bh(0, tds=[world.td(0), world.td(1), td])
    assert reason_of(check_header, world.ctx, bh) == (
        Reason.INVALID_DECLARATION.because(Reason.WRONG_COINSTAKE))


def test_bh_invalid_declaration_wrong_model(world):
    td = world.td(2, model_id="mnist-some-other-task")
    bh = world.bh(0, tds=[world.td(0), world.td(1), td])
    assert reason_of(check_header, world.ctx, bh) == \
        Reason.INVALID_DECLARATION.because(Reason.WRONG_MODEL_ID)


def test_bh_with_employer_confidence_one():
    world = World(small_scenario(employer_confidence=1))
    bh = world.bh(2, tds=[world.td(2)])
    check_header(world.ctx, bh)
    assert reason_of(check_header, world.ctx, world.bh(2, tds=[world.td(1)])) == (
        Reason.AUTHOR_NOT_DECLARED)


def test_bh_declaration_of_the_headers_own_tick_is_accepted(world):
    """A declaration may be as new as the header ("newer than" is strict): an author that
    wins both lotteries at one tick declares and heads at once."""
    others = [world.td(a) for a in (1, 2)]
    start = max(td.tick for td in others)
    for tick in range(start, start + 5000):
        if all(world.lottery_tick(kind, 0, start=tick) == tick for kind in (TD, BH)):
            break
    else:
        pytest.fail("no tick wins both of employee 0's lotteries")
    bh = world.bh(0, tds=[world.td(0, tick=tick), *others], tick=tick)
    assert max(td.tick for td in bh.declarations) == bh.tick
    assert check_header(world.ctx, bh).hash == world.genesis.hash


def test_bh_exactly_max_header_declarations_is_accepted():
    world = World(small_scenario(max_header_declarations=3))
    check_header(world.ctx, world.bh(0, tds=world.declarations([0, 1, 2])))
    assert reason_of(check_header, world.ctx, world.bh(0, tds=world.declarations(
        [0, 1, 2, 3]))) == Reason.TOO_MANY_DECLARATIONS


def test_bh_without_personal_secrets_is_checked_against_its_stage_secret():
    """OPEN_RULES=personal-secrets: the header's one revealed secret opens every
    declaration's commitment."""
    world = World(small_scenario(open_rules="personal-secrets"))
    bh = world.bh(0)
    assert bh.personal_secrets is None
    assert check_header(world.ctx, bh).hash == world.genesis.hash
    light = world.light_ctx()
    assert check_header(light, bh).hash == world.genesis.hash
    other = resign(bh, world.employees[0], ts=OTHER_SECRET)
    assert reason_of(check_header, light, other) == (
        Reason.COMMITMENT_NOT_REVEALED_SECRET)


def test_a_light_client_remembers_the_declarations_it_checked(world):
    light = world.light_ctx()
    td = world.td(1)
    check_declaration(light, td)
    assert light.valid_declarations == {td.hash}


def test_a_rejection_reads_as_its_reason():
    assert str(Rejected(Reason.BAD_SIGNATURE)) == Reason.BAD_SIGNATURE
    assert Rejected(Reason.BAD_SIGNATURE).reason == Reason.BAD_SIGNATURE


# --- Stakeholder signatures ------------------------------------------------------------------


def test_normal_stakeholders_may_sign(world):
    bh = world.bh(0)
    stakeholders = world.stakeholders(bh)
    assert len(stakeholders) == 3 and len(set(stakeholders)) == 3
    for ss in world.ss(bh):
        check_stakeholder_signature(ss, stakeholders)


def test_roy_may_not_sign(world):
    bh = world.bh(0)
    stakeholders = world.stakeholders(bh)
    ss = StakeholderSignature.create(world.keys(stakeholders[-1]), bh.hash)
    assert reason_of(check_stakeholder_signature, ss, stakeholders) == (
        Reason.SIGNER_NOT_STAKEHOLDER)


def test_non_stakeholders_may_not_sign(world):
    bh = world.bh(0)
    stakeholders = world.stakeholders(bh)
    bystander = next(k for k in world.employees if k.public not in stakeholders)
    for keys in (bystander, world.outsider, derive_keypair(1, "user", 0)):
        ss = StakeholderSignature.create(keys, bh.hash)
        assert reason_of(check_stakeholder_signature, ss, stakeholders) == (
            Reason.SIGNER_NOT_STAKEHOLDER)


def test_ss_bad_signature(world):
    bh = world.bh(0)
    stakeholders = world.stakeholders(bh)
    first, second = world.ss(bh)
    assert reason_of(check_stakeholder_signature, altered(first, sig=second.signature),
                     stakeholders) == Reason.BAD_SIGNATURE
    # A signature over another header, relabelled as this one.
    other = StakeholderSignature.create(world.keys(first.author), OTHER_HASH)
    assert reason_of(check_stakeholder_signature, altered(other, bh=bh.hash),
                     stakeholders) == Reason.BAD_SIGNATURE


# --- Wrapped blocks --------------------------------------------------------------------------


@pytest.fixture
def header(world):
    bh = world.bh(0)
    assert bh.tick > 0
    return bh


def test_valid_block_is_accepted(world, header):
    txs = [world.tx(0, 1, 5, 0), world.tx(0, 2, 1, 1), world.tx(1, 0, 2, 0)]
    wb = world.wrap(header, txs)
    ledger = check_block(world.ctx, wb)
    assert ledger == world.genesis.ledger.apply(txs, world.payouts(header))
    assert ledger.next_nonce(world.users[0].public) == 2


def test_block_spending_coins_received_in_its_parent(world):
    genesis_balance = world.genesis.ledger.balance(world.users[1].public)
    b1 = world.block(0, transactions=[world.tx(0, 1, 1, 0)])
    spend = world.tx(1, 2, genesis_balance + 1, 0)
    assert world.genesis.ledger.transaction_problem(spend) == Reason.INSUFFICIENT_BALANCE
    b2 = world.wrap(world.bh(1, b1.hash), [spend])
    check_block(world.ctx, b2)


def test_wb_tick_in_the_future(world, header):
    wb = world.wrap(header, tick=world.ctx.now + 1)
    assert reason_of(check_block, world.ctx, wb) == Reason.TICK_IN_THE_FUTURE


def test_wb_invalid_header(world):
    tds = world.declarations([0, 1, 2])
    losing = world.bh(0, tds=tds, tick=world.lottery_tick(BH, 0, start=max(
        td.tick for td in tds), win=False))
    assert reason_of(check_block, world.ctx, world.wrap(losing)) == (
        Reason.INVALID_HEADER.because(Reason.LOTTERY_NOT_WON))
    poisoned = world.bh(0, tds=world.declarations([0, 1, 2], secret=OTHER_SECRET),
                        secret=OTHER_SECRET)
    assert reason_of(check_block, world.ctx, world.wrap(poisoned)) == (
        Reason.INVALID_HEADER.because(Reason.SECRET_NOT_OWN_TRAINING))


def test_wb_older_than_its_header(world, header):
    wb = world.wrap(header, tick=header.tick - 1)
    assert reason_of(check_block, world.ctx, wb) == Reason.BLOCK_OLDER_THAN_ITS_HEADER


def test_wb_author_not_roy(world, header):
    stakeholders = world.stakeholders(header)
    for impostor in [world.keys(stakeholders[0]), world.keys(header.author), world.outsider]:
        if impostor.public == stakeholders[-1]:
            continue
        wb = world.wrap(header, author=impostor)
        assert reason_of(check_block, world.ctx, wb) == Reason.AUTHOR_NOT_ROY


def test_wb_signatures_not_exactly_the_first_k_minus_1(world, header):
    stakeholders = world.stakeholders(header)
    first, second = world.ss(header)
    roys = StakeholderSignature.create(world.keys(stakeholders[-1]), header.hash)
    bystander = next(k for k in world.employees if k.public not in stakeholders)
    strangers = StakeholderSignature.create(bystander, header.hash)
    for signatures in ([second, first], [first], [], [first, second, roys],
                       [first, strangers], [first, first]):
        wb = world.wrap(header, signatures=signatures)
        assert reason_of(check_block, world.ctx, wb) == (
            Reason.SIGNATURES_NOT_FIRST_STAKEHOLDERS)


def test_wb_signature_for_another_header(world, header):
    first, second = world.ss(header)
    other = StakeholderSignature.create(world.keys(second.author), OTHER_HASH)
    wb = world.wrap(header, signatures=[first, other])
    assert reason_of(check_block, world.ctx, wb) == Reason.SIGNATURE_FOR_ANOTHER_HEADER


def test_wb_stakeholder_signature_forged(world, header):
    first, second = world.ss(header)
    wb = world.wrap(header, signatures=[first, altered(second, sig=first.signature)])
    assert reason_of(check_block, world.ctx, wb) == Reason.BAD_SIGNATURE
    assert world.wrap(header, signatures=[first, second]).signature_valid()


def test_wb_too_many_transactions():
    world = World(small_scenario(max_block_transactions=2))
    header = world.bh(0)
    txs = [world.tx(0, 1, 1, 0), world.tx(0, 1, 1, 1), world.tx(0, 1, 1, 2)]
    assert reason_of(check_block, world.ctx, world.wrap(header, txs)) == \
        Reason.TOO_MANY_TRANSACTIONS
    check_block(world.ctx, world.wrap(header, txs[:2]))


def test_wb_invalid_transaction(world, header):
    good = world.tx(0, 1, 5, 0)
    cases = {
        Reason.INVALID_TRANSACTION.because(Reason.AMOUNT_BELOW_1): world.tx(0, 1, 0, 0),
        Reason.INVALID_TRANSACTION.because(Reason.SENDER_EQUALS_RECEIVER): world.tx(0, 0, 5, 0),
        Reason.INVALID_TRANSACTION.because(Reason.BAD_SIGNATURE): altered(good, amount=6),
    }
    for reason, tx in cases.items():
        assert reason_of(check_block, world.ctx, world.wrap(header, [tx])) == reason


def test_wb_transaction_that_does_not_apply(world, header):
    balance = world.genesis.ledger.balance(world.users[0].public)
    cases = {
        "transaction does not apply: nonce 1 is ahead of the next nonce 0":
            [world.tx(0, 1, 1, 1)],
        Reason.TRANSACTION_DOES_NOT_APPLY.because(Reason.NONCE_ALREADY_USED):
            [world.tx(0, 1, 1, 0), world.tx(0, 2, 1, 0)],
        Reason.TRANSACTION_DOES_NOT_APPLY.because(Reason.INSUFFICIENT_BALANCE):
            [world.tx(0, 1, balance + 1, 0)],
    }
    for reason, txs in cases.items():
        assert reason_of(check_block, world.ctx, world.wrap(header, txs)) == reason


def test_wb_payouts_differ_from_the_rule(world, header):
    right = world.payouts(header)
    (trainer, coins), *rest = right
    variants = [
        [(trainer, coins + 1), *rest],
        [(trainer, coins - 1), *rest[:-1], (rest[-1][0], rest[-1][1] + 1)],  # same total
        [*rest, (trainer, coins)],  # reordered
        right[:-1],
        [*right, (world.outsider.public, 1)],
        [(world.outsider.public, coins), *rest],
        [],
    ]
    for payouts in variants:
        wb = world.wrap(header, payouts=payouts)
        assert reason_of(check_block, world.ctx, wb) == (
            Reason.PAYOUTS_NOT_REWARD_RULE)


def test_wb_bad_signature(world, header):
    wb = world.wrap(header)
    assert reason_of(check_block, world.ctx,
                     altered(wb, sig=forged_signature(world, wb))) == Reason.BAD_SIGNATURE
    # Roy's signature does not cover a block with one more transaction.
    more = altered(wb, txs=[world.tx(0, 1, 1, 0).wire])
    assert reason_of(check_block, world.ctx, more) == Reason.BAD_SIGNATURE


def test_wb_too_few_employees_hold_stake():
    base = World()
    balances = dict(base.genesis.ledger.balances)
    for pk in base.genesis.employees[2:]:
        balances[pk] = 0
    genesis = Genesis(base.model_id, base.genesis.employees, base.genesis.users,
                      Ledger(balances, {}))
    world = World(genesis=genesis)
    header = world.bh(0)
    wb = WrappedBlock.create(world.employees[0], header=header, signatures=[],
                             transactions=[], payouts=[], tick=header.tick)
    assert reason_of(check_block, world.ctx, wb) == (
        Reason.TOO_FEW_STAKEHOLDERS)
    assert world.ctx.stakeholders(header) is None


def test_k_equal_one_block_has_no_signatures():
    world = World(small_scenario(stakeholders_num=1))
    header = world.bh(0)
    assert world.ss(header) == []
    check_block(world.ctx, world.wrap(header))
    intruder = StakeholderSignature.create(world.employees[0], header.hash)
    assert reason_of(check_block, world.ctx, world.wrap(header, signatures=[intruder])) == (
        Reason.SIGNATURES_NOT_FIRST_STAKEHOLDERS)


# --- Transaction admission by an employee -------------------------------------------------------


@pytest.fixture
def employee(world):
    return make_employee(world.scenario, 0, world.genesis)


def tx_rejections(employee):
    return dict(employee.rejected.get("TX", {}))


def test_employee_admits_a_valid_transaction_once(world, employee):
    tx = world.tx(0, 1, 5, 0)
    employee.step(0, [tx.to_bytes()])
    assert tx.hash in employee.mempool and employee.accepted["TX"] == 1
    employee.step(1, [tx.to_bytes()])
    assert tx_rejections(employee) == {Reason.DUPLICATE_TRANSACTION: 1}
    assert employee.accepted["TX"] == 1


@pytest.mark.parametrize(("make", "reason"), [
    (lambda w: w.tx(0, 1, 0, 0), Reason.AMOUNT_BELOW_1),
    (lambda w: w.tx(0, 0, 5, 0), Reason.SENDER_EQUALS_RECEIVER),
    (lambda w: altered(w.tx(0, 1, 5, 0), amount=500), Reason.BAD_SIGNATURE),
])
def test_employee_refuses_invalid_transactions(world, employee, make, reason):
    tx = make(world)
    employee.step(0, [tx.to_bytes()])
    assert tx_rejections(employee) == {reason: 1}
    assert tx.hash not in employee.mempool
    assert employee.rejected_transactions[tx.hash] == reason


def test_employee_refuses_a_used_nonce_and_keeps_future_ones(world, employee):
    spent = world.tx(0, 1, 5, 0)
    b1 = world.block(1, transactions=[spent])
    employee.step(0, [spent.to_bytes()])
    employee.step(b1.tick, [b1.to_bytes()])
    assert employee.tree.tip_hash == b1.hash
    assert spent.hash not in employee.mempool  # included, so no longer pending
    replay = world.tx(0, 2, 3, 0)
    later = world.tx(0, 2, 3, 1)
    far = world.tx(0, 2, 3, 9)
    employee.step(b1.tick + 1, [replay.to_bytes(), later.to_bytes(), far.to_bytes()])
    assert tx_rejections(employee) == {Reason.NONCE_ALREADY_USED: 1}
    assert employee.rejected_transactions == {replay.hash: Reason.NONCE_ALREADY_USED}
    assert later.hash in employee.mempool and far.hash in employee.mempool


def test_each_reject_reason_has_its_own_text():
    """The results count rejections by the reason's text: two reasons with one text would
    make the second an alias of the first (an Enum merges equal values) and mix counts."""
    assert len(Reason.__members__) == len({r.value for r in Reason.__members__.values()})
    assert Reason.INVALID_HEADER.because(Reason.LOTTERY_NOT_WON) == \
        "invalid header: lottery not won"
    assert Rejected(Reason.INVALID_HEADER, "lottery not won").reason == \
        "invalid header: lottery not won"
    assert Rejected(Reason.BAD_SIGNATURE).reason == "bad signature"
