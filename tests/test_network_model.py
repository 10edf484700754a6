"""Issue 8: the network model beyond latency (regions, bandwidth, loss, partitions,
churn), the catch-up protocol (block requests), the refusals of bad scenarios, and the
finality figure."""

from __future__ import annotations

import statistics
from collections import Counter

import pytest
from helpers import make_employee, small_scenario

from simulation.config import default_scenario, parse_churn, parse_partitions, problems
from simulation.net.conditions import Conditions
from simulation.net.latency import REGION_LATENCY_MS, REGION_SHARES, REGIONS, Latency
from simulation.net.lockstep import network_result, run_lockstep
from simulation.net.relay import Router
from simulation.node.adversaries import assign_adversaries
from simulation.node.genesis import genesis_of
from simulation.protocol.encoding import derive_keypair
from simulation.protocol.messages import MAX_LOCATOR, BlockRequest, parse_message
from simulation.protocol.reasons import UNPARSED, Reason
from simulation.protocol.records import ChainEntry
from simulation.report.propagation import finality
from simulation.report.reporting import render, summarize
from simulation.report.self_check import self_check


def _summary(**changes):
    scenario = default_scenario().replace(trainer="hash", **changes)
    run = run_lockstep(scenario)
    return run, summarize(scenario, genesis_of(scenario), network_result(run),
                          assign_adversaries(scenario), 1.0)


# --- Refusals before the run -------------------------------------------------------------

@pytest.mark.parametrize("changes, reason", [
    ({"loss_probability": 1.0}, "LOSS_PROBABILITY must lie in [0, 1), got 1.0"),
    ({"loss_probability": -0.1}, "LOSS_PROBABILITY must lie in [0, 1)"),
    ({"bandwidth": -5}, "BANDWIDTH must be at least 0"),
    ({"tick_milliseconds": 0}, "TICK_MILLISECONDS must be at least 1"),
    ({"latency": "constant:-2"}, "LATENCY: latencies are at least 1 tick"),
    ({"latency": "regions:3"}, "LATENCY: regions takes 0 number(s)"),
    ({"partitions": "0-4|5-11@10:20"}, "names employee 11, but there are only 11"),
    ({"partitions": "0-4|5-10@30:20"}, "ends (heals) at tick 20, not after it starts"),
    ({"partitions": "0-4|5-10@30:30"}, "not after it starts at tick 30"),
    ({"partitions": "0-4@10:20"}, "has one group"),
    ({"partitions": "0-4|4-10@10:20"}, "puts employee 4 in two groups"),
    ({"partitions": "0-4|5-10"}, "is not GROUP|GROUP|...@START:END"),
    ({"partitions": "0-4|x@1:2"}, "'x' is not an employee index"),
    ({"partitions": "0-4|5-10@-1:20"}, "START >= 0"),
    ({"churn": "12@10:20"}, "names employee 12, but there are only 11"),
    ({"churn": "3@50:40"}, "ends (heals) at tick 40"),
    ({"churn": "3@10:40,3@30:50"}, "employee 3 has overlapping offline windows"),
    ({"churn": "3"}, "is not EMPLOYEE@START:END"),
])
def test_bad_network_scenarios_are_refused_before_start(changes, reason):
    found = problems(default_scenario().replace(**changes))
    assert len(found) == 1 and reason in found[0], found


def test_partitions_and_churn_forms():
    assert parse_partitions("0-1|2,4@5:9; 3|0@20:30", 5) == [
        ((frozenset({0, 1}), frozenset({2, 4})), 5, 9),
        ((frozenset({3}), frozenset({0})), 20, 30)]
    assert parse_churn("1-2@5:9, 4@0:1", 5) == {1: [(5, 9)], 2: [(5, 9)], 4: [(0, 1)]}
    assert parse_partitions("", 5) == [] and parse_churn(" ", 5) == {}
    assert Conditions.of(default_scenario()) is None  # nothing set: the plain router


# --- The model's pieces --------------------------------------------------------------------

def test_conditions_split_churn_and_loss():
    scenario = default_scenario().replace(partitions="0-4|5-10@10:20", churn="3@5:8",
                                          loss_probability=0.25)
    c = Conditions.of(scenario)
    assert c.reachable(0, 7, 9) and not c.reachable(0, 7, 10) and not c.reachable(7, 0, 19)
    assert c.reachable(0, 7, 20) and c.reachable(0, 4, 15)
    assert c.reachable(0, -1, 15) and not c.reachable(7, -1, 15)  # employer: first group
    assert [c.online(3, t) for t in (4, 5, 7, 8)] == [True, False, False, True]
    assert c.online(2, 6) and c.offline_at_end(6) == [3] and c.offline_at_end(8) == []
    draws = [c.lost(s, r, q) for s in range(5) for r in range(5) for q in range(200)]
    assert draws == [Conditions.of(scenario).lost(s, r, q)
                     for s in range(5) for r in range(5) for q in range(200)]
    assert 0.22 < sum(draws) / len(draws) < 0.28


def test_regions_follow_simblock_shares_and_latencies():
    model = Latency.of(default_scenario().replace(latency="regions", tick_milliseconds=10))
    counts = Counter(model.region(p) for p in range(5000))
    for region, share in enumerate(REGION_SHARES):
        assert abs(counts[region] / 5000 - share) < 0.02
    # Each link's delays have the table's mean (Pareto, shape 5), in ticks of 10 ms.
    europe = [p for p in range(200) if REGIONS[model.region(p)] == "europe"]
    japan = [p for p in range(200) if REGIONS[model.region(p)] == "japan"]
    sender, receiver = europe[0], japan[0]
    delays = [model.delay(sender, receiver, q) for q in range(3000)]
    assert abs(statistics.mean(delays) - REGION_LATENCY_MS[1][4] / 10) < 1.0
    assert min(delays) >= round(REGION_LATENCY_MS[1][4] * 0.8 / 10)
    within = [model.delay(europe[0], europe[1], q) for q in range(500)]
    assert statistics.mean(within) < 2  # 11 ms inside Europe: one tick (the minimum)


def test_bandwidth_makes_big_messages_and_later_copies_slower():
    router = Router(1, receivers=[0, 1, 2, 3], bandwidth=100)
    router.submit(0, 0, [b"x" * 250])  # 2.5 ticks per copy, copies to 1, 2, 3 in turn
    arrivals = {}
    for tick in range(12):
        for envelope in router.take(tick):
            arrivals[envelope.receiver] = tick
    assert arrivals == {1: 1 + 3, 2: 1 + 5, 3: 1 + 8}  # ceil(2.5), ceil(5), ceil(7.5)
    small = Router(1, receivers=[0, 1, 2, 3], bandwidth=100)
    small.submit(0, 0, [b"x" * 10])
    assert {e.receiver for e in small.take(2)} == {1, 2, 3}  # one tick of upload at most
    busy = Router(1, receivers=[0, 1], bandwidth=100)
    busy.submit(0, 0, [b"x" * 500])
    busy.submit(1, 0, [b"y" * 10])  # waits for the uplink: after the 5-tick upload
    assert [e.data[:1] for t in range(8) for e in busy.take(t)] == [b"x", b"y"]
    assert Router(1, receivers=[0, 1]).per_copy is False


def test_direct_messages_reach_only_their_receiver_and_churn_drops_copies():
    scenario = default_scenario().replace(employees_num=3, churn="2@2:4")
    router = Router.for_scenario(scenario)
    router.submit(0, 0, [], [(1, b"to-one"), (0, b"to-self"), (7, b"to-nobody")])
    due = router.take(1)
    assert Router.for_party(due, 1) == [b"to-one"] and Router.for_party(due, 2) == []
    router.submit(1, 0, [b"all"])  # due at tick 2, when E2 is offline
    due = router.take(2)
    assert Router.for_party(due, 1) == [b"all"] and Router.for_party(due, 2) == []
    assert router.dropped == Counter({"offline": 1})
    assert not router.online(2, 3) and router.online(2, 4)


# --- Catch-up: the block request -----------------------------------------------------------

def _chain_of(length: int, **changes):
    """A lockstep run's employee holding a chain of ``length`` blocks."""
    run = run_lockstep(small_scenario(target_blockchain_length=length, **changes))
    assert run.finished
    return run


def test_locator_and_path_from():
    run = _chain_of(6)
    tree = run.employees[0].tree
    path = tree.path(tree.tip_hash)
    locator = tree.locator(MAX_LOCATOR)
    assert locator[0] == tree.tip_hash and locator[-1] == path[0]
    assert locator == list(reversed(path))  # a short chain: every block
    assert len(tree.locator(3)) == 3 and tree.locator(3)[-1] == path[0]
    # A peer that holds blocks up to height 2 gets heights 3.. in order.
    assert tree.path_from({path[2], path[0]}, tree.tip_hash, 10) == path[3:]
    assert tree.path_from({path[0]}, tree.tip_hash, 2) == path[1:3]
    assert tree.path_from({tree.tip_hash}, tree.tip_hash, 10) == []


def test_a_block_request_is_answered_with_the_missing_path_to_the_requester_only():
    run = _chain_of(5)
    holder = run.employees[1]
    scenario = run.scenario
    newcomer = make_employee(scenario, 2)  # knows genesis only
    assert newcomer.tree.tip.height == 0
    request = BlockRequest.create(derive_keypair(scenario.seed, "employee", 2),
                                  want=holder.tree.tip_hash,
                                  locator=newcomer.tree.locator(MAX_LOCATOR), tick=1)
    assert parse_message(request.to_bytes()) == request
    ready = holder.step(holder.now + 1, [request.to_bytes()])
    assert ready.direct and {party for party, _ in ready.direct} == {2}
    assert holder.served_blocks == len(ready.direct) == holder.tree.tip.height
    newcomer.step(holder.now, [data for _, data in ready.direct])
    assert newcomer.tree.tip_hash == holder.tree.tip_hash
    # The same request again within ROUND_TIMEOUT_TICKS is refused, with the reason.
    again = holder.step(holder.now + 1, [request.to_bytes()])
    assert again.direct == () and holder.rejected["RQ"][Reason.REPEATED_REQUEST] == 1


@pytest.mark.parametrize("forge, reason", [
    ("stranger", Reason.UNKNOWN_REQUESTER),
    ("future", Reason.TICK_IN_THE_FUTURE),
    ("signature", Reason.BAD_SIGNATURE),
    ("own", Reason.OWN_REQUEST),
])
def test_bad_block_requests_are_rejected_with_a_reason(forge, reason):
    run = _chain_of(3)
    holder = run.employees[0]
    scenario = run.scenario
    keys = {"stranger": derive_keypair(99, "employee", 0),
            "own": derive_keypair(scenario.seed, "employee", 0)}.get(
        forge, derive_keypair(scenario.seed, "employee", 1))
    request = BlockRequest.create(keys, want=holder.tree.tip_hash,
                                  locator=[holder.tree.genesis_hash],
                                  tick=holder.now + (50 if forge == "future" else 0))
    data = request.to_bytes()
    if forge == "signature":
        wire = dict(request.wire, sig=bytes(64))
        data = BlockRequest(wire).to_bytes()
    ready = holder.step(holder.now + 1, [data])
    assert ready.direct == () and holder.rejected["RQ"] == {reason: 1}


def test_a_malformed_block_request_is_rejected_and_the_node_goes_on():
    run = _chain_of(3)
    holder = run.employees[0]
    keys = derive_keypair(run.scenario.seed, "employee", 1)
    too_long = BlockRequest.create(keys, want=bytes(32), locator=[bytes(32)] * 65, tick=0)
    empty = BlockRequest.create(keys, want=bytes(32), locator=[], tick=0)
    ready = holder.step(holder.now + 1, [too_long.to_bytes(), empty.to_bytes()])
    assert ready.direct == ()
    assert sum(holder.rejected[UNPARSED].values()) == 2
    assert all("locator must be a list of 1 to 64" in r for r in holder.rejected[UNPARSED])


# --- Whole networks ------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [2, 4, 5, 12, 13])
def test_after_a_partition_heals_every_honest_employee_holds_one_chain(seed):
    """Seeds at which both sides build blocks of their own while split (a header needs
    all its stakeholders on its side, so at some seeds one side builds nothing)."""
    run, s = _summary(seed=seed, partitions="0-4|5-10@20:160")
    assert run.finished and run.ticks > 160  # it cannot end while split
    assert s["agreement"]["all_honest_agree"], s["agreement"]
    assert len({e.tree.tip_hash for e in run.employees}) == 1
    assert run.employer.tree.tip_hash == run.employees[0].tree.tip_hash
    assert s["network"]["copies_dropped"]["partition"] > 0
    # Both sides built on their own during the split: one side's blocks went stale.
    index = {e.keys.public: e.index for e in run.employees}
    roys = {index[r.block.author] < 5 for e in run.employees for r in e.tree.records.values()
            if r.block is not None and 20 <= r.tick < 160}
    assert roys == {True, False}, "only one side built blocks during the split"
    assert s["network"]["stale_blocks"] > 0
    s["exit_codes"] = {n: 0 for n in [*s["employees_reporting"], "network"]}
    assert self_check(s) == []


def test_a_split_that_heals_really_converges_through_catch_up():
    """Seed 2: both sides grow their own branch while split; after healing, the side that
    lost learns the winning branch by block requests (the messages that built on it name
    blocks it never received) and reorganises."""
    run, s = _summary(seed=2, partitions="0-4|5-10@20:160")
    assert s["network"]["block_requests"] > 0 and s["network"]["blocks_served"] > 0
    assert "reorganisation" in "".join(e.text for e in _summary_events(seed=2))


def _summary_events(seed):
    scenario = default_scenario().replace(trainer="hash", seed=seed,
                                          partitions="0-4|5-10@20:160")
    return run_lockstep(scenario, keep_events=True).events


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_employee_back_from_offline_catches_up(seed):
    run, s = _summary(seed=seed, churn="3@15:60", target_blockchain_length=12)
    assert run.finished and run.ticks >= 60
    returned = run.employees[3]
    assert returned.tree.tip_hash == run.employees[0].tree.tip_hash
    assert returned.sent["RQ"] >= 1  # it asked for what it missed
    assert s["network"]["copies_dropped"]["offline"] > 0 and s["network"]["offline_at_end"] == []


def test_an_employee_still_offline_at_the_end_is_left_out_and_named():
    run, s = _summary(seed=1, churn="3@15:1500")
    assert run.finished and s["network"]["offline_at_end"] == ["E3"]
    assert "E3" not in s["agreement"]["tips"] and s["agreement"]["all_honest_agree"]


@pytest.mark.parametrize("loss", [0.1, 0.3])
def test_lossy_networks_still_converge(loss):
    run, s = _summary(seed=2, loss_probability=loss)
    assert run.finished and s["agreement"]["common_prefix_length"] >= 6  # the target
    assert s["network"]["copies_dropped"]["loss"] > 0
    assert s["transactions"]["lost"] == 0


def test_regions_and_bandwidth_run_reproducibly_and_blocks_travel_slower_than_votes():
    changes = dict(seed=3, latency="regions", bandwidth=2000)
    run, s = _summary(**changes)
    assert run.finished and s["agreement"]["all_honest_agree"]
    assert set(s["network"]["regions"].values()) <= set(REGIONS)
    assert _summary(**changes)[1]["chain"] == s["chain"]
    _, fast = _summary(seed=3, latency="regions")
    assert s["network"]["propagation_p50_ticks"] > fast["network"]["propagation_p50_ticks"]
    assert "copies dropped none" in render(s)


def test_the_default_scenario_sends_no_block_request():
    run, s = _summary(seed=1)
    assert s["messages"]["sent"]["RQ"] == 0 and s["network"]["copies_dropped"] == {}


# --- Finality --------------------------------------------------------------------------------

def test_finality_waits_for_every_honest_employee_to_hold_the_covering_block():
    chain = [ChainEntry(h, bytes([h]), 10 * h) for h in range(5)]
    arrivals = {"E0": {bytes([h]): 10 * h + 1 for h in range(5)},
                "E1": {bytes([h]): 10 * h + 4 for h in range(4)}}  # E1 lacks block 4
    # depth 2: block 1 is final when block 3 is everywhere (tick 34), block 2 never yet.
    assert finality(chain, arrivals, 2) == [34 - 10]
    assert finality(chain, arrivals, 1) == [24 - 10, 34 - 20]
    assert finality(chain[:2], arrivals, 3) == []


# --- The process backend -------------------------------------------------------------------

@pytest.mark.processes
def test_the_process_backend_gives_the_same_run_under_split_loss_churn_and_bandwidth(
        tmp_path):
    from simulation.net import runner

    changes = dict(employees_num=6, seed=4, latency="uniform:1:3", bandwidth=4000,
                   loss_probability=0.1, partitions="0-2|3-5@10:60", churn="4@70:90")
    scenario = default_scenario().replace(trainer="hash", log_file=str(tmp_path / "r.log"),
                                          **changes)
    outcome = runner.run(scenario, quiet=True)
    _, lockstep = _summary(**changes)
    assert outcome.exit_code == 0, outcome.summary.get("self_check")
    for key in ("chain", "ticks", "forks"):
        assert outcome.summary[key] == lockstep[key], key
    for key in ("propagation_p90_ticks", "stale_blocks", "block_requests", "blocks_served",
                "copies_dropped", "finality_p50_ticks"):
        assert outcome.summary["network"][key] == lockstep["network"][key], key


def test_a_hash_trainer_summary_says_why_it_has_no_accuracy_instead_of_none():
    _, s = _summary(adversaries="poisoned:6")
    accuracy_lines = [line for line in render(s).splitlines() if "accuracy" in line]
    assert len(accuracy_lines) == 3 and not any("None" in line for line in accuracy_lines)
    assert "(test accuracy none: hash trainer)" in accuracy_lines[-1]
