"""Each adversarial behaviour against the network, with the pure state machine
(lockstep, hash trainer); crash and spam, which are about processes, in
test_processes.py; the poisoned majority with real Keras in test_integration.py."""

from __future__ import annotations

from collections import Counter

import pytest

from simulation.config import BEHAVIOURS, Role, default_scenario, problems
from simulation.net.lockstep import build_employees, network_result, run_lockstep
from simulation.node.adversaries import (
    assign_adversaries,
    hash_trainer_for,
    make_employee,
    poison_labels,
)
from simulation.node.behaviour import Behaviour
from simulation.node.genesis import genesis_of
from simulation.protocol.encoding import derive_keypair
from simulation.protocol.reasons import Reason
from simulation.report.reporting import summarize


def scenario(**changes):
    base = dict(trainer="hash", employees_num=7, seed=4, max_ticks=600,
                log_file="unused.log")
    base.update(changes)
    return default_scenario().replace(**base)


def honest_rejections(run) -> Counter:
    total: Counter = Counter()
    for e in run.honest():
        for kind, reasons in e.rejected.items():
            for reason, n in reasons.items():
                total[(kind, reason)] += n
    return total


def summary_of(s, run) -> dict:
    return summarize(s, genesis_of(s), network_result(run), assign_adversaries(s), 0.0)


def test_assignment_is_deterministic_from_the_seed_and_complete():
    s = scenario(adversaries="poisoned:3,lazy:1,forger:1")
    roles = assign_adversaries(s)
    assert roles == assign_adversaries(s)
    assert Counter(roles.values()) == {"poisoned": 3, "lazy": 1, "forger": 1}
    assert assign_adversaries(s.replace(seed=5)) != roles


@pytest.mark.parametrize("text, problem", [
    ("poisoned:8", "ADVERSARIES lists 8 adversaries but EMPLOYEES_NUM is 7"),
    ("poisoned:7", "ADVERSARIES leaves no honest employee"),
    ("sneaky:1", "unknown behaviour 'sneaky'"),
    ("poisoned", "is not behaviour:count"),
    ("lazy:x", "count of 'lazy' is not an integer"),
    ("lazy:-1", "count of 'lazy' is negative"),
    ("lazy:1,lazy:2", "'lazy' is listed twice"),
])
def test_invalid_adversary_settings_are_refused(text, problem):
    found = problems(scenario(adversaries=text))
    assert len(found) == 1 and problem in found[0], found


def test_poisoning_changes_the_share_of_labels_it_says_and_is_shared():
    labels = list(range(10))
    first = poison_labels(7, 0.3)(4, list(range(40, 50)), labels)
    assert first == poison_labels(7, 0.3)(4, list(range(40, 50)), labels)  # colluders
    changed = [i for i, (a, b) in enumerate(zip(labels, first, strict=True)) if a != b]
    assert len(changed) == 3
    assert all(first[i] == (labels[i] + 1) % 10 for i in changed)



def test_a_poisoned_minority_never_enters_the_honest_chain():
    s = scenario(adversaries="poisoned:2")
    run = run_lockstep(s)
    summary = summary_of(s, run)
    assert run.finished
    assert summary["agreement"]["all_honest_agree"]
    assert summary["honest"]["poisoned_blocks"] == 0
    assert summary["employer"]["poisoned_blocks"] == 0
    assert summary["employer"]["model_source"] == "honest"
    rejected = honest_rejections(run)
    assert rejected[("TD", Reason.MODEL_HASH_NOT_OWN_TRAINING)] > 0
    # The poisoned train alike, so they accept each other's declarations.
    poisoned = [e for e in run.employees if e.role == Role.POISONED]
    assert all(p.rejected["TD"].get(Reason.MODEL_HASH_NOT_OWN_TRAINING, 0) > 0
               for p in poisoned)  # ... but not the honest ones'
    assert poisoned[0].trained[0].secret == poisoned[1].trained[0].secret
    assert poisoned[0].trained[0].secret != run.honest()[0].trained[0].secret


def test_a_poisoned_majority_outgrows_the_honest_chain_and_the_employer_follows_it():
    s = scenario(adversaries="poisoned:5", max_ticks=400)
    run = run_lockstep(s)
    summary = summary_of(s, run)
    assert not run.finished  # the honest two cannot make blocks without the majority
    assert summary["honest"]["poisoned_blocks"] == 0
    branch, employer = summary["poisoned_branch"], summary["employer"]
    assert branch["chain_length"] > summary["chain"]["length"]
    assert employer["chain_length"] == branch["chain_length"]
    assert employer["poisoned_blocks"] == employer["chain_length"] - 1
    assert employer["model_source"] == "poisoned"


def test_lazy_declarations_are_rejected_and_lazy_nodes_still_follow_the_chain():
    s = scenario(adversaries="lazy:2")
    run = run_lockstep(s)
    summary = summary_of(s, run)
    assert run.finished and summary["honest"]["poisoned_blocks"] == 0
    rejected = honest_rejections(run)
    assert rejected[("TD", Reason.COMMITMENT_NOT_OWN_SECRET)] > 0
    lazy = [e for e in run.employees if e.role == Role.LAZY]
    assert all(e.sent["TD"] > 0 and not e.trained for e in lazy)  # declared, never trained
    honest_tip = run.honest()[0].tree.path(run.honest()[0].tree.tip_hash)
    for e in lazy:  # a light-client follower: on the honest chain
        assert e.tree.path(e.tree.tip_hash)[:4] == honest_tip[:4]


def test_every_forgery_is_rejected_for_its_own_fault():
    s = scenario(adversaries="forger:2")
    run = run_lockstep(s)
    assert run.finished
    rejected = honest_rejections(run)
    for reason in (Reason.BAD_SIGNATURE, Reason.COMMITMENT_NOT_OWN_SECRET,
                   Reason.LOTTERY_NOT_WON, Reason.TICK_IN_THE_FUTURE):
        assert rejected[("TD", reason)] > 0, reason
    assert summary_of(s, run)["honest"]["poisoned_blocks"] == 0


@pytest.mark.parametrize("open_rules, seed", [("all", 6), ("", 2)])
def test_equivocating_headers_and_blocks_are_rejected_or_kept_as_evidence(open_rules, seed):
    """A second header for one lottery win is rejected either way. A second block for
    one header was rejected (the protocol before the hardening: no honest employee holds
    both); under the rule fork-evidence both are kept as fork candidates and counted as
    evidence, and the longest chain decides."""
    s = scenario(adversaries="equivocator:3", employer_confidence=2, seed=seed,
                 open_rules=open_rules)
    run = run_lockstep(s)
    assert run.finished
    assert summary_of(s, run)["agreement"]["all_honest_agree"]
    rejected = honest_rejections(run)
    equivocators = [e for e in run.employees if e.role == Role.EQUIVOCATOR]
    made_headers = sum(e.sent["equivocating BH"] for e in equivocators)
    made_blocks = sum(e.sent["equivocating WB"] for e in equivocators)
    assert made_headers > 0 and made_blocks > 0, "no equivocation happened: try a seed"
    assert rejected[("BH", Reason.SECOND_HEADER_FOR_WIN)] > 0
    twice = 0  # honest employees holding two blocks of one header
    for e in run.honest():
        headers = [r.block.header.hash for r in e.tree.records.values() if r.block]
        twice += len(headers) != len(set(headers))
    if open_rules == "all":
        assert rejected[("WB", Reason.SECOND_BLOCK_FOR_HEADER)] > 0
        assert twice == 0 and all(e.fork_evidence == 0 for e in run.honest())
    else:
        assert rejected[("WB", Reason.SECOND_BLOCK_FOR_HEADER)] == 0
        assert twice > 0 and sum(e.fork_evidence for e in run.honest()) > 0


def test_withholders_delay_rounds_but_the_chain_reaches_the_target():
    s = scenario(adversaries="withholder:2")
    run = run_lockstep(s, keep_events=True)
    assert run.finished
    texts = [ev.text for ev in run.events]
    assert any("withholds" in t for t in texts)
    assert any("round timeout" in t for t in texts)
    honest = run_lockstep(s.replace(adversaries=""))
    assert run.ticks > honest.ticks


def test_a_crashing_employee_is_dropped_and_the_rest_finish():
    s = scenario(adversaries="crash:2", crash_at_tick=5)
    run = run_lockstep(s)
    assert run.finished and len(run.crashed) == 2


def test_double_spends_and_replays_are_rejected_and_nothing_is_lost():
    s = scenario(double_spend_probability=0.4, replay_probability=0.3)
    run = run_lockstep(s)
    summary = summary_of(s, run)
    tx = summary["transactions"]
    assert run.finished
    doubles = sum(1 for t in run.users.issued if t["double_spend"])
    assert doubles > 0 and run.users.replays > 0
    assert tx["issued"] == tx["included"] + tx["rejected"] + tx["pending"]
    assert tx["lost"] == 0 and tx["included_more_than_once"] == 0
    assert tx["rejected_by_reason"].get(Reason.NONCE_ALREADY_USED, 0) > 0
    assert summary["messages"]["rejected"]["TX"][Reason.DUPLICATE_TRANSACTION] > 0
    # Of two transfers with one nonce at most one is in the chain.
    chain = {h for b in run.honest()[0].tree.canonical() if b.block
             for h in (t.hash for t in b.block.transactions)}
    by_nonce = Counter((t["sender"], t["nonce"]) for t in run.users.issued
                       if t["hash"] in chain)
    assert max(by_nonce.values()) == 1


def test_honest_scenario_is_unchanged_by_the_adversary_machinery():
    s = scenario()
    employees = build_employees(s, genesis_of(s), hash_trainer_for(s))
    assert all(type(e.behaviour) is Behaviour and e.role == Role.HONEST for e in employees)


@pytest.mark.parametrize("role", [Role.HONEST, *BEHAVIOURS])
def test_every_role_has_its_own_behaviour_object(role):
    """Each role of ADVERSARIES builds an employee with a fresh behaviour of that role
    (behaviours keep state: two employees never share one)."""
    s = scenario()
    genesis = genesis_of(s)
    first, second = (make_employee(role, i, s, genesis, hash_trainer_for(s)(i, role),
                                   derive_keypair(s.seed, "employee", i)) for i in (0, 1))
    assert first.role == second.role == role
    assert first.behaviour is not second.behaviour and first.behaviour.node is first
    assert first.report().behaviour == role


def test_the_spammer_logs_its_junk_with_its_step():
    """The junk is added after the honest step: its log line must travel with the step's
    events, not be written into the next step's (it was lost that way)."""
    run = run_lockstep(scenario(adversaries="spammer:1", max_ticks=12), keep_events=True)
    (spammer,) = [e for e in run.employees if e.role == Role.SPAMMER]
    lines = [ev.text for ev in run.events if ev.text == f"{spammer.name} adds 4 junk messages"]
    assert len(lines) == run.ticks + 1 and spammer.sent["spam"] == 4 * len(lines)
