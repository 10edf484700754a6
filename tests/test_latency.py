"""The LATENCY knob (issue 8, item 1 in part): parsing and refusals, the deterministic
draws, per-receiver delivery, and whole runs on both backends."""

from __future__ import annotations

import statistics
from collections import Counter

import pytest

from simulation.config import default_scenario, parse_latency, problems
from simulation.net.latency import Latency
from simulation.net.lockstep import network_result, run_lockstep
from simulation.net.relay import Router
from simulation.node.adversaries import assign_adversaries
from simulation.node.genesis import genesis_of
from simulation.report.reporting import summarize


@pytest.mark.parametrize("text, parsed", [
    ("", None),
    ("  ", None),
    ("constant:1", ("constant", (1.0,))),
    ("uniform:1:8", ("uniform", (1.0, 8.0))),
    ("uniform: 2 : 2", ("uniform", (2.0, 2.0))),
    ("lognormal:3:0.5", ("lognormal", (3.0, 0.5))),
    ("lognormal:1:0", ("lognormal", (1.0, 0.0))),
])
def test_latency_forms(text, parsed):
    assert parse_latency(text) == parsed


@pytest.mark.parametrize("text, reason", [
    ("constant:-1", "at least 1 tick"),
    ("constant:0", "at least 1 tick"),
    ("uniform:-2:3", "at least 1 tick"),
    ("uniform:5:2", "needs A <= B"),
    ("uniform:1.5:3", "whole ticks"),
    ("lognormal:0.5:1", "median is at least 1 tick"),
    ("lognormal:3:-1", "sigma is not negative"),
    ("lognormal:3:nan", "not finite"),
    ("gamma:1:2", "unknown latency model 'gamma'"),
    ("uniform:1", "takes 2 number(s)"),
    ("constant:fast", "not a number"),
])
def test_bad_latencies_are_refused_before_the_run(text, reason):
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_latency(text)
    found = problems(default_scenario().replace(latency=text))
    assert len(found) == 1 and found[0].startswith("LATENCY: ") and reason in found[0]


def _model(text: str, seed: int = 1) -> Latency:
    return Latency.of(default_scenario().replace(latency=text, seed=seed))


def test_draws_are_a_function_of_seed_link_and_message():
    model = _model("uniform:1:8")
    draws = [model.delay(s, r, q) for s in range(4) for r in range(4) for q in range(50)]
    assert draws == [_model("uniform:1:8").delay(s, r, q)
                     for s in range(4) for r in range(4) for q in range(50)]
    assert draws != [_model("uniform:1:8", seed=2).delay(s, r, q)
                     for s in range(4) for r in range(4) for q in range(50)]
    counts = Counter(draws)
    assert set(counts) == set(range(1, 9))  # every tick of 1..8, none outside
    assert min(counts.values()) > len(draws) / 8 * 0.7  # roughly equally likely
    assert {_model("constant:4").delay(1, 2, q) for q in range(20)} == {4}
    lognormal = [_model("lognormal:5:0.5").delay(0, 1, q) for q in range(4000)]
    assert min(lognormal) >= 1 and statistics.median(lognormal) == 5
    assert Latency.of(default_scenario()) is None  # no model: NETWORK_DELAY_TICKS


def test_each_receiver_gets_its_copy_after_its_own_delay():
    class ByReceiver:  # a stand-in model: E0 waits 1 tick, the employer 2, E2 3
        def delay(self, sender, receiver, sequence):
            return {0: 1, -1: 2, 2: 3}[receiver]

    router = Router(1, ByReceiver(), receivers=[0, 1, 2, -1])
    router.submit(10, 1, [b"m"])
    assert router.in_flight() == [b"m"]  # one message, however many copies
    assert router.take(10) == []
    due = router.take(11)
    assert Router.for_party(due, 0) == [b"m"] and Router.for_party(due, 2) == []
    due = router.take(12)
    assert Router.for_party(due, -1) == [b"m"] and Router.for_party(due, 0) == []
    assert Router.for_party(due, 1) == []  # never to the sender
    assert Router.for_party(router.take(13), 2) == [b"m"]
    assert router.in_flight() == []


def _lockstep(**changes):
    scenario = default_scenario().replace(trainer="hash", **changes)
    run = run_lockstep(scenario)
    return summarize(scenario, genesis_of(scenario), network_result(run),
                     assign_adversaries(scenario), 1.0)


def test_constant_1_is_the_default_network_and_latency_spreads_blocks_slower():
    default, constant = _lockstep(seed=1), _lockstep(seed=1, latency="constant:1")
    assert constant["chain"]["tip_hash"] == default["chain"]["tip_hash"]
    assert constant["ticks"] == default["ticks"]
    slow = _lockstep(seed=1, latency="lognormal:5:1")
    assert slow["finished"] and slow["agreement"]["all_honest_agree"]
    assert slow["network"]["propagation_p50_ticks"] >= 4
    assert slow["network"]["propagation_p90_ticks"] > slow["network"]["propagation_p50_ticks"]
    assert slow["ticks"] > default["ticks"]
    assert _lockstep(seed=1, latency="lognormal:5:1")["chain"] == slow["chain"]


@pytest.mark.processes
def test_the_process_backend_draws_the_same_delays(tmp_path):
    from simulation.net import runner

    scenario = default_scenario().replace(
        trainer="hash", employees_num=6, seed=4, latency="uniform:1:5",
        log_file=str(tmp_path / "run.log"))
    outcome = runner.run(scenario, quiet=True)
    lockstep = _lockstep(employees_num=6, seed=4, latency="uniform:1:5")
    assert outcome.exit_code == 0
    assert outcome.summary["chain"]["tip_hash"] == lockstep["chain"]["tip_hash"]
    assert outcome.summary["ticks"] == lockstep["ticks"]
    assert outcome.summary["network"]["propagation_p90_ticks"] == \
        lockstep["network"]["propagation_p90_ticks"]
