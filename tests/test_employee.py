"""The Employee state machine, alone with crafted messages and in whole networks driven in
lockstep (one process, HashTrainer, the network's own Router)."""

from __future__ import annotations

import functools
from collections import Counter

import pytest

from simulation.net.lockstep import run_lockstep
from simulation.net.relay import Router, target_reached
from simulation.node.employee import UNPARSED, Employee
from simulation.protocol.encoding import DecodeError, decode, encode
from simulation.protocol.ledger import coinbase
from simulation.protocol.messages import TD, StakeholderSignature
from simulation.protocol.reasons import Reason
from simulation.protocol.records import EmployeeReport, Status
from tests.helpers import (
    World,
    altered,
    canonical_transactions,
    drive,
    make_employee,
    small_scenario,
    trainer_factory,
)


@functools.cache
def lockstep(**changes):
    scenario = small_scenario(**changes)
    return run_lockstep(scenario, trainer_factory(scenario), keep_events=True)


def agreed_prefix(employees, length):
    """The canonical chains' first ``length`` block hashes, asserting they agree."""
    chains = {tuple(e.tree.path(e.tree.tip_hash)[:length]) for e in employees}
    assert len(chains) == 1, "employees disagree on the canonical chain"
    (chain,) = chains
    assert len(chain) == length
    return chain


# --- Whole networks --------------------------------------------------------------------------


def test_network_reaches_the_target_and_agrees():
    run = lockstep()
    target = run.employees[0].scenario.target_blockchain_length
    assert run.finished and run.ticks < 2000
    assert all(e.tree.tip.height >= target - 1 for e in run.employees)
    agreed_prefix(run.employees, target)
    assert target_reached([e.status() for e in run.employees], target)
    # Everyone did its part of the work.
    for e in run.employees:
        assert e.sent[TD] >= 1 and not e.rejected.get(UNPARSED)
    authors = Counter(r.block.header.author for r in run.employees[0].tree.canonical()
                      if r.block is not None)
    assert sum(authors.values()) == target - 1


def test_every_canonical_block_is_valid_for_a_fresh_receiver():
    run = lockstep()
    fresh = make_employee(run.employees[0].scenario, 0)
    blocks = [r.block for r in run.employees[1].tree.canonical() if r.block is not None]
    fresh.step(run.ticks, [b.to_bytes() for b in blocks])
    assert fresh.accepted["WB"] == len(blocks) and not fresh.rejected
    assert fresh.tree.tip_hash == run.employees[1].tree.tip_hash


def fingerprint(run):
    return [
        (e.tree.tip_hash, dict(e.sent), dict(e.accepted),
         {k: dict(v) for k, v in e.rejected.items()}, sorted(e.tree.tip.ledger.balances.items()),
         sorted(e.mempool), e.tree.forks)
        for e in run.employees
    ], run.ticks, [ev.text for ev in run.events]


def test_runs_are_deterministic():
    scenario = small_scenario(network_delay_ticks=3)
    first = run_lockstep(scenario, trainer_factory(scenario), keep_events=True)
    second = run_lockstep(scenario, trainer_factory(scenario), keep_events=True)
    assert fingerprint(first) == fingerprint(second)
    assert first.users.report() == second.users.report()


def test_a_different_seed_gives_a_different_chain():
    one, two = lockstep(seed=1), lockstep(seed=2)
    assert one.finished and two.finished
    assert one.employees[0].genesis.hash != two.employees[0].genesis.hash
    assert one.employees[0].tree.tip_hash != two.employees[0].tree.tip_hash
    ticks = [[r.tick for r in run.employees[0].tree.canonical()] for run in (one, two)]
    assert ticks[0] != ticks[1]


def check_transaction_accounting(run):
    issued = [entry["hash"] for entry in run.users.report()["issued"]]
    assert len(set(issued)) == len(issued) > 0
    for employee in run.employees:
        included = Counter(canonical_transactions(employee))
        assert all(n == 1 for n in included.values()), "a transaction included twice"
        assert set(included) <= set(issued)
        for h in issued:
            # Exactly one of: in this employee's canonical chain, pending in its mempool.
            assert (h in included) != (h in employee.mempool), h.hex()
        assert not employee.rejected_transactions
    return issued


def test_every_transaction_is_included_once_or_pending():
    run = lockstep(max_block_transactions=2)
    issued = check_transaction_accounting(run)
    chain_txs = canonical_transactions(run.employees[0])
    assert 0 < len(chain_txs) < len(issued)  # some are still pending
    assert all(h in run.employees[0].mempool for h in issued if h not in chain_txs)


def test_all_transactions_get_included_when_blocks_have_room():
    run = lockstep(max_transactions_num=8, target_blockchain_length=5)
    issued = check_transaction_accounting(run)
    assert set(canonical_transactions(run.employees[0])) == set(issued)
    assert all(not e.mempool for e in run.employees)


def test_balances_follow_the_chain():
    run = lockstep()
    employee = run.employees[0]
    genesis = employee.genesis
    blocks = [r.block for r in employee.tree.canonical() if r.block is not None]
    balances = dict(employee.tree.tip.ledger.balances)
    rewards = Counter()
    for block in blocks:
        for account, coins in block.payouts:
            rewards[account] += coins
    # Employees never transact: their coins are the genesis stake plus their payouts.
    for pk in genesis.employees:
        assert balances[pk] == genesis.ledger.balance(pk) + rewards[pk]
    assert sum(rewards.values()) == sum(coinbase(b.height) for b in blocks)
    assert sum(balances.values()) == sum(genesis.ledger.balances.values()) + sum(
        coinbase(h) for h in range(1, len(blocks) + 1))
    # Users: genesis plus the transfers in the chain.
    net = Counter()
    for block in blocks:
        for tx in block.transactions:
            net[tx.sender] -= tx.amount
            net[tx.receiver] += tx.amount
    for pk in genesis.users:
        assert balances.get(pk, 0) == genesis.ledger.balance(pk) + net[pk]
    assert any(net.values())


def test_forks_with_a_long_network_delay():
    """A long delay makes two employees win in the same window; the network still
    converges and every issued transaction is accounted for."""
    runs = [lockstep(network_delay_ticks=4, seed=s) for s in range(1, 6)]
    assert any(e.tree.forks > 0 for run in runs for e in run.employees)
    for run in runs:
        assert run.finished
        agreed_prefix(run.employees, run.employees[0].scenario.target_blockchain_length)
        check_transaction_accounting(run)


def test_longer_delay_gives_more_forks():
    seeds = range(1, 9)
    def forks(delay):
        return sum(lockstep(network_delay_ticks=delay, seed=s).employees[0].tree.forks
                   for s in seeds)
    assert forks(6) > forks(1)


def test_a_reorganisation_happens_and_is_survived():
    """At least one employee in the long-delay runs switched branches."""
    runs = [lockstep(network_delay_ticks=6, seed=s) for s in range(1, 9)]
    reorgs = [ev.text for run in runs for ev in run.events if "reorganisation" in ev.text]
    assert reorgs
    for run in runs:
        assert run.finished
        check_transaction_accounting(run)


@pytest.mark.parametrize("changes", [
    dict(stakeholders_num=1),
    dict(employer_confidence=1),
    dict(stakeholders_num=1, employer_confidence=1),
    dict(stakeholders_num=4, employer_confidence=4),
    dict(employees_num=1, stakeholders_num=1, employer_confidence=1),
    dict(users_num=0, max_transactions_num=0),
])
def test_corner_case_scenarios_work(changes):
    run = lockstep(**changes)
    scenario = run.employees[0].scenario
    assert run.finished
    agreed_prefix(run.employees, scenario.target_blockchain_length)
    blocks = [r.block for r in run.employees[0].tree.canonical() if r.block is not None]
    for block in blocks:
        assert len(block.stakeholder_signatures) == scenario.stakeholders_num - 1
        assert len(block.header.declarations) >= scenario.employer_confidence
    if scenario.stakeholders_num == 1:
        assert all(e.sent["SS"] == 0 for e in run.employees)


def test_a_malformed_delivery_is_rejected_and_the_network_goes_on():
    scenario = small_scenario()
    garbage = [b"", b"\xff", encode({"kind": "XX"}), encode([1, 2]), b"\x18\x05"]

    def inject(tick):
        return [garbage[tick % len(garbage)]] if tick < 100 else []

    clean = drive(scenario)
    noisy = drive(scenario, inject=inject)
    assert clean.finished and noisy.finished and noisy.ticks == clean.ticks
    for a, b in zip(clean.employees, noisy.employees, strict=True):
        assert a.tree.tip_hash == b.tree.tip_hash
        assert a.sent == b.sent and a.accepted == b.accepted
        assert sum(b.rejected[UNPARSED].values()) == 100
        reasons = {r.split(" (")[0] for r in b.rejected[UNPARSED]}  # "malformed CBOR (...)"
        assert reasons == {"empty frame", "malformed CBOR", "unknown message kind 'XX'",
                           "message is not a map", "not in canonical CBOR form"}


@pytest.mark.parametrize("seed, delay", [(1, 2), (2, 2), (1, 4), (20, 1), (1, 10)])
def test_a_tie_between_two_branches_does_not_stall_the_network(seed, delay, monkeypatch):
    """EMPLOYER_CONFIDENCE = EMPLOYEES_NUM: after a tie (first seen stays) neither branch
    can gather enough declarations. Each of these cases stalls for good without the
    stalled-tie rule (checked below); with it the employees move to the same
    equal-height tip."""
    scenario = small_scenario(stakeholders_num=4, employer_confidence=4, seed=seed,
                              network_delay_ticks=delay, max_ticks=1500)
    run = drive(scenario, keep_events=True)
    assert max(e.tree.forks for e in run.employees) > 0, "no tie: the case proves nothing"
    assert any("round stalled" in ev.text for ev in run.events)
    tips = {e.tree.tip_hash for e in run.employees}
    height = run.employees[0].tree.tip.height
    assert run.finished, f"stalled at height {height} with {len(tips)} different tips"
    agreed_prefix(run.employees, scenario.target_blockchain_length)
    monkeypatch.setattr(Employee, "_break_stalled_tie", lambda self: None)
    assert not drive(scenario).finished, "it does not stall without the rule either"


def test_a_silent_employee_does_not_stop_the_chain():
    """Employee 0's messages are all dropped (a withheld Roy and a silent stakeholder);
    ROUND_TIMEOUT_TICKS lets the others try new headers until one avoids it."""
    scenario = small_scenario(max_ticks=1500)
    run = drive(scenario, silent={0}, keep_events=True)
    silent = run.employees[0].keys.public
    withheld = [h for e in run.live for h, held in e.headers.items()
                if held.stakeholders and held.stakeholders[-1] == silent]
    assert withheld, "the silent employee was never Roy: the test proves nothing"
    assert any("round timeout" in ev.text for ev in run.events)
    assert run.finished
    agreed_prefix(run.live, scenario.target_blockchain_length)
    for block in (r.block for r in run.live[0].tree.canonical() if r.block is not None):
        assert block.author != silent
        assert silent not in [s.author for s in block.stakeholder_signatures]
    # Without the retry the same network stalls.
    stalled = drive(scenario.replace(round_timeout_ticks=10**9), silent={0})
    assert not stalled.finished


# --- One employee, crafted messages -------------------------------------------------------------


def test_step_refuses_a_tick_that_is_not_after_the_last():
    employee = make_employee(small_scenario(), 0)
    with pytest.raises(ValueError):
        employee.step(-1, [])
    employee.step(0, [])
    employee.step(5, [])
    for tick in (5, 4, 0):
        with pytest.raises(ValueError):
            employee.step(tick, [])
    assert employee.step(6, []).tick == 6


def test_a_malformed_frame_is_rejected_and_the_employee_keeps_going():
    world = World()
    employee = make_employee(world.scenario, 0, world.genesis)
    ready = employee.step(0, [b"", b"\xa1\x01\x02", world.tx(0, 1, 5, 0).to_bytes()])
    assert dict(employee.rejected[UNPARSED]) == {"empty frame": 1, "map key is not text": 1}
    assert employee.accepted["TX"] == 1
    assert any("rejected ??: empty frame" in ev.text for ev in ready.events)
    # It still does its duties: it declares once its TD lottery wins.
    tick = world.lottery_tick(TD, 0)
    for t in range(1, tick + 1):
        employee.step(t, [])
    assert employee.sent[TD] == 1


def test_own_declaration_is_the_world_one():
    """The employee's TD at its first winning tick is exactly the TD a receiver expects."""
    world = World()
    employee = make_employee(world.scenario, 2, world.genesis)
    tick = world.lottery_tick(TD, 2)
    outgoing = []
    for t in range(tick + 1):
        outgoing += employee.step(t, []).outgoing
    assert outgoing == [world.td(2).to_bytes()]


def test_a_round_by_hand():
    """Header -> normal stakeholders sign -> Roy wraps the pending transactions."""
    world = World()
    header = world.bh(0)
    stakeholders = world.stakeholders(header)
    roles = {world.index(pk): role for pk, role in zip(
        stakeholders, ["normal", "normal", "roy"], strict=True)}
    tx = world.tx(0, 1, 5, 0)
    now = header.tick
    employees = [make_employee(world.scenario, i, world.genesis) for i in range(4)]
    signatures = []
    for e in employees:
        e.step(0, [tx.to_bytes()])
        out = e.step(now, [header.to_bytes()]).outgoing
        assert e.accepted["BH"] == 1
        if roles.get(e.index) == "normal":
            assert e.sent["SS"] == 1
            signatures.append(StakeholderSignature.create(e.keys, header.hash))
            assert signatures[-1].to_bytes() in out
        else:  # Roy and the bystander do not sign
            assert e.sent["SS"] == 0
    roy = employees[world.index(stakeholders[-1])]
    out = roy.step(now + 1, [s.to_bytes() for s in signatures]).outgoing
    expected = world.wrap(header, [tx], tick=now + 1)
    assert expected.to_bytes() in out
    assert roy.tree.tip_hash == expected.hash and not roy.mempool
    # Every other employee accepts Roy's block and drops the transaction from its pool.
    for e in employees:
        if e is not roy:
            e.step(now + 2, [expected.to_bytes()])
            assert e.tree.tip_hash == expected.hash and not e.mempool


def test_roy_waits_for_every_normal_signature():
    world = World()
    header = world.bh(0)
    stakeholders = world.stakeholders(header)
    roy = make_employee(world.scenario, world.index(stakeholders[-1]), world.genesis)
    first, second = world.ss(header)
    roy.step(header.tick, [header.to_bytes(), first.to_bytes()])
    assert roy.sent["WB"] == 0
    roy.step(header.tick + 1, [second.to_bytes()])
    assert roy.sent["WB"] == 1 and roy.tree.tip.height == 1


def test_a_stale_header_is_not_signed():
    world = World()
    b1 = world.block(0)
    old = world.bh(1)  # another header for height 1, seen after block 1
    signer = next(pk for pk in world.stakeholders(old)[:-1])
    employee = make_employee(world.scenario, world.index(signer), world.genesis)
    employee.step(max(b1.tick, old.tick), [b1.to_bytes(), old.to_bytes()])
    assert employee.accepted["BH"] == 1 and employee.sent["SS"] == 0


def rejections(employee, kind):
    return dict(employee.rejected.get(kind, {}))


def test_declaration_duplicates():
    world = World()
    employee = make_employee(world.scenario, 0, world.genesis)
    td = world.td(1)
    again = world.td(1, start=td.tick + 1)  # the same author, same stage, later tick
    employee.step(again.tick, [td.to_bytes(), td.to_bytes(), again.to_bytes()])
    assert employee.accepted[TD] == 1
    assert rejections(employee, TD) == {Reason.DUPLICATE_DECLARATION: 1,
                                        Reason.SECOND_DECLARATION_FOR_THE_ROUND: 1}


def test_header_and_signature_duplicates():
    world = World()
    header = world.bh(0)
    stakeholders = world.stakeholders(header)
    roy = make_employee(world.scenario, world.index(stakeholders[-1]), world.genesis)
    first, _ = world.ss(header)
    stray = StakeholderSignature.create(world.employees[0], world.bh(1).hash)
    roy.step(header.tick, [first.to_bytes(), header.to_bytes(), header.to_bytes(),
                           first.to_bytes(), first.to_bytes(), stray.to_bytes()])
    assert rejections(roy, "BH") == {Reason.DUPLICATE_HEADER: 1}
    assert rejections(roy, "SS") == {Reason.UNKNOWN_HEADER: 2,
                                     Reason.DUPLICATE_STAKEHOLDER_SIGNATURE: 1}
    assert roy.accepted["SS"] == 1


def test_block_duplicates_and_rejections():
    world = World()
    b1 = world.block(0)
    bad = altered(b1, tick=b1.tick + 1)  # Roy did not sign this tick
    employee = make_employee(world.scenario, 0, world.genesis)
    employee.step(b1.tick + 1, [bad.to_bytes(), b1.to_bytes(), b1.to_bytes()])
    assert rejections(employee, "WB") == {Reason.BAD_SIGNATURE: 1, Reason.DUPLICATE_BLOCK: 1}
    assert employee.tree.tip_hash == b1.hash


def test_orphans_wait_for_their_parent():
    world = World()
    b1 = world.block(0)
    b2 = world.block(1, b1.hash)
    b3 = world.block(2, b2.hash)
    employee = make_employee(world.scenario, 3, world.genesis)
    employee.step(b3.tick, [b3.to_bytes(), b2.to_bytes()])
    assert employee.tree.tip.height == 0 and len(employee.tree.orphans) == 2
    employee.step(b3.tick + 1, [b2.to_bytes(), b1.to_bytes()])
    assert rejections(employee, "WB") == {Reason.DUPLICATE_BLOCK: 1}
    assert employee.tree.tip_hash == b3.hash and not employee.tree.orphans
    assert employee.accepted["WB"] == 3


def test_an_orphan_is_checked_when_its_parent_arrives():
    world = World()
    b1 = world.block(0)
    header = world.bh(1, b1.hash)
    right = world.payouts(header)
    wrong = [(right[0][0], right[0][1] + 1), *right[1:]]
    bad_child = world.wrap(header, payouts=wrong)
    forged = altered(world.wrap(header), tick=header.tick + 1)
    employee = make_employee(world.scenario, 0, world.genesis)
    employee.step(bad_child.tick + 1, [bad_child.to_bytes(), forged.to_bytes()])
    assert len(employee.tree.orphans) == 1  # the forged one is not even held
    assert rejections(employee, "WB") == {Reason.BAD_SIGNATURE: 1}
    employee.step(bad_child.tick + 2, [b1.to_bytes()])
    assert rejections(employee, "WB") == {Reason.BAD_SIGNATURE: 1,
                                          Reason.PAYOUTS_NOT_REWARD_RULE: 1}
    assert employee.tree.tip_hash == b1.hash and not employee.tree.orphans


def test_a_reorg_returns_abandoned_transactions_to_the_mempool():
    world = World()
    tx, kept = world.tx(0, 1, 5, 0), world.tx(2, 3, 1, 0)
    a1 = world.block(0, transactions=[tx, kept])
    b1 = world.block(1, transactions=[kept])
    b2 = world.block(2, b1.hash)
    employee = make_employee(world.scenario, 3, world.genesis)
    employee.step(0, [tx.to_bytes(), kept.to_bytes()])
    now = max(a1.tick, b2.tick)
    employee.step(now, [a1.to_bytes()])
    assert employee.tree.tip_hash == a1.hash and not employee.mempool
    employee.step(now + 1, [b1.to_bytes()])
    assert employee.tree.tip_hash == a1.hash  # a tie: the first seen stays
    employee.step(now + 2, [b2.to_bytes()])
    assert employee.tree.tip_hash == b2.hash
    # ``tx`` left the canonical chain; ``kept`` is in the new branch too.
    assert set(employee.mempool) == {tx.hash}
    assert employee.tree.forks == 1


def test_status_and_report():
    run = lockstep()
    employee = run.employees[0]
    status = employee.status()
    target = employee.scenario.target_blockchain_length
    assert status.height == employee.tree.tip.height
    assert status.anchor == employee.tree.path(employee.tree.tip_hash)[target - 1]
    assert Status.from_wire(decode(encode(status.to_wire()))) == status
    report = employee.report()
    assert [b.height for b in report.chain] == list(range(status.height + 1))
    assert report.sent == dict(employee.sent)
    assert len(report.tree) == len(employee.tree.records) - 1  # all but genesis
    # Through the pipes and back: canonical CBOR, and the same record.
    assert EmployeeReport.from_wire(decode(encode(report.to_wire()))) == report
    fresh = make_employee(employee.scenario, 0)
    assert fresh.status() == Status(0, fresh.genesis.hash, None)


@pytest.mark.parametrize(("change", "message"), [
    (lambda w: w.pop("secrets"), "report: secrets must be a list"),
    (lambda w: w.update(index="0"), "report: index must be an integer"),
    (lambda w: w.update(behaviour=None), "report: behaviour must be text"),
    (lambda w: w.update(sent={"TD": "1"}), "report: sent must map texts to integers"),
    (lambda w: w.update(rejected={"TD": {"bad signature": None}}), "report: rejected"),
    (lambda w: w["chain"][1].pop("secret"), "chain must be a list of chain entries"),
    (lambda w: w["tree"][0].pop(), "tree must be a list of tree entries"),
    (lambda w: w.update(balances=[[b"a", "5"]]), "balances must be a list of"),
    (lambda w: w.update(accuracies=[[0, "high"]]), "accuracies must be a list of"),
])
def test_a_malformed_report_is_refused_with_the_reason(change, message):
    """What the network checks of an employee's final report before the summary reads
    it (a report of another shape is a bad frame: the party is cut off)."""
    report = lockstep().employees[0].report()
    assert len(report.chain) > 1 and report.tree
    wire = report.to_wire()
    change(wire)
    with pytest.raises(DecodeError, match=message):
        EmployeeReport.from_wire(wire)


@pytest.mark.parametrize("wire", [None, [], {"height": 0, "tip": b"t"},
                                  {"height": "0", "tip": b"t", "anchor": None},
                                  {"height": 0, "tip": "t", "anchor": None},
                                  {"height": 0, "tip": b"t", "anchor": 5},
                                  {"height": 0, "tip": b"t", "anchor": None, "x": 1}])
def test_a_malformed_status_is_refused_with_the_reason(wire):
    with pytest.raises(DecodeError, match="status"):
        Status.from_wire(wire)


# --- The router ---------------------------------------------------------------------------------


def test_router_delivers_after_the_delay_in_canonical_order():
    router = Router(2)
    router.submit(0, 1, [b"b0", b"b1"])
    router.submit(0, 0, [b"a0"])
    router.submit(1, 0, [b"a1"])
    assert router.take(1) == []
    due = router.take(2)
    assert [e.data for e in due] == [b"a0", b"b0", b"b1"]
    assert Router.for_party(due, 1) == [b"a0"]
    assert Router.for_party(due, 5) == [b"a0", b"b0", b"b1"]
    assert [e.data for e in router.take(3)] == [b"a1"]
    assert router.take(2) == []  # taken once


def test_router_refuses_a_delay_below_one():
    with pytest.raises(ValueError):
        Router(0)


def test_target_reached():
    a, b = b"a" * 32, b"b" * 32
    tip = b"t" * 32
    assert target_reached([Status(5, tip, a), Status(6, tip, a)], 6)
    assert not target_reached([Status(5, tip, a), Status(5, tip, b)], 6)
    assert not target_reached([Status(5, tip, a), Status(3, tip, None)], 6)
    assert not target_reached([], 6)
