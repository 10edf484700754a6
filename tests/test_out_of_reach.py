"""A run that ends early because its honest employees provably cannot reach the target
(``relay.out_of_reach``): the condition as pure logic, its end of a run (the same at
every window size, the same outcome as running on to MAX_TICKS), and ``stopped_by`` in
the results and the console summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulation.config import Role, default_scenario
from simulation.net import conductor
from simulation.net.lockstep import network_result, run_lockstep
from simulation.net.relay import OUT_OF_REACH, OutOfReach, out_of_reach, too_few_for_a_block
from simulation.node.adversaries import assign_adversaries
from simulation.node.genesis import genesis_of
from simulation.report.reporting import render, summarize
from simulation.report.self_check import self_check

ROOT = Path(__file__).resolve().parents[1]

# 5 employees, 3 of them poisoned: the 2 honest are fewer than EMPLOYER_CONFIDENCE and
# STAKEHOLDERS_NUM (3 each by default), the 3 poisoned are enough for a block.
FEW_HONEST = dict(trainer="hash", employees_num=5, adversaries="poisoned:3")


def _scenario(**changes):
    return default_scenario().replace(**{**FEW_HONEST, **changes})


def _poisoned(count: int, behaviour: Role = Role.POISONED) -> dict[int, Role]:
    return {index: behaviour for index in range(count)}


# --- the condition, pure ------------------------------------------------------------------


def test_too_few_for_a_block_names_what_is_short() -> None:
    scenario = default_scenario().replace(employees_num=11, employer_confidence=5,
                                          stakeholders_num=3)
    assert too_few_for_a_block(5, "honest", scenario) is None
    assert too_few_for_a_block(4, "honest", scenario) == (
        "4 honest employees, fewer than the 5 declarers (EMPLOYER_CONFIDENCE) a header "
        "needs")
    assert too_few_for_a_block(2, "poisoned", scenario) == (
        "2 poisoned employees, fewer than the 5 declarers (EMPLOYER_CONFIDENCE) and the 3 "
        "stakeholders (STAKEHOLDERS_NUM) a header needs")
    # Fresh keys may declare: only the stakeholders bind.
    assert too_few_for_a_block(4, "poisoned", scenario, strangers_declare=True) is None
    assert too_few_for_a_block(2, "poisoned", scenario, strangers_declare=True) == (
        "2 poisoned employees, fewer than the 3 stakeholders (STAKEHOLDERS_NUM) a header "
        "needs")
    few_stakeholders = scenario.replace(employer_confidence=2, stakeholders_num=4)
    assert "fewer than the 4 stakeholders" in too_few_for_a_block(3, "honest",
                                                                  few_stakeholders)


def test_out_of_reach_only_where_it_is_a_proof() -> None:
    base = default_scenario().replace(employees_num=11, employer_confidence=5)
    # 7 honest of 11 can make blocks; the default run has no adversaries at all.
    assert out_of_reach(base, _poisoned(4)) is None
    assert out_of_reach(default_scenario(), {}) is None
    plan = out_of_reach(base, _poisoned(7))
    assert plan == OutOfReach("4 honest employees, fewer than the 5 declarers "
                              "(EMPLOYER_CONFIDENCE) a header needs", None)
    # Any other adversary may train honestly, sign or hold blocks: no proof.
    assert out_of_reach(base, {**_poisoned(7), 7: Role.LAZY}) is None
    assert out_of_reach(base, {**_poisoned(7), 7: Role.WITHHOLDER}) is None
    # A tolerant check may take poisoned losses that round like the honest ones.
    assert out_of_reach(base.replace(verification="tolerant"), _poisoned(7)) is None
    # Poisoned employees that compute otherwise form two trainings (two model names).
    assert out_of_reach(base.replace(hardware="xla:1"), _poisoned(7)) is None
    assert out_of_reach(base.replace(hardware="xla:7"), _poisoned(7)) is not None
    # Too few poisoned employees too: nothing can change at all.
    both = out_of_reach(base.replace(employees_num=8), _poisoned(4))
    assert both is not None and both.poisoned == (
        "4 poisoned employees, fewer than the 5 declarers (EMPLOYER_CONFIDENCE) a header "
        "needs")
    # Poisoned-grinders declare through fresh keys where the rule members is open.
    grinders = _poisoned(4, Role.POISONED_GRINDER)
    assert out_of_reach(base.replace(employees_num=8), grinders).poisoned is not None
    opened = base.replace(employees_num=8, open_rules="members")
    assert out_of_reach(opened, grinders).poisoned is None
    assert out_of_reach(opened, _poisoned(4)).poisoned is not None  # plain ones do not


def test_the_stop_waits_until_the_employers_model_is_settled() -> None:
    poisoned_may_grow = OutOfReach("2 honest employees, ...", None)
    nothing_grows = OutOfReach("2 honest employees, ...", "1 poisoned employees, ...")
    # The employer has no block yet and the poisoned may still bring one: go on.
    assert poisoned_may_grow.stop_reason([0, 0], employer_height=0) is None
    assert poisoned_may_grow.stop_reason([0, 0], employer_height=1) == (
        f"{OUT_OF_REACH}: 2 honest employees, ...; the target is out of reach, and the "
        f"employer already takes the poisoned chain")
    assert nothing_grows.stop_reason([], employer_height=0) == (
        f"{OUT_OF_REACH}, nor a poisoned one: 2 honest employees, ..., 1 poisoned "
        f"employees, ...; the target is out of reach, and the employer keeps the genesis "
        f"block")
    # An honest employee above genesis contradicts the proof: never stop then.
    assert poisoned_may_grow.stop_reason([0, 1], employer_height=3) is None
    assert nothing_grows.stop_reason([2], employer_height=0) is None


# --- runs ---------------------------------------------------------------------------------


def _summary(scenario, run):
    return summarize(scenario, genesis_of(scenario), network_result(run),
                     assign_adversaries(scenario), 0.0)


def test_a_hopeless_run_ends_early_with_the_outcome_of_a_run_to_max_ticks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ended early at the tick the employer first holds a block (it was tick 2000 before
    the early end, tick 43 now), with the outcome the run has when it goes on to
    MAX_TICKS: not finished, the honest chain at genesis, the employer on the poisoned
    model. Only the poisoned chain's length differs."""
    scenario = _scenario(max_ticks=300)
    early = run_lockstep(scenario)
    assert early.stopped_by.startswith(f"{OUT_OF_REACH}: 2 honest employees")
    assert early.ticks < 100 and not early.finished
    summary = _summary(scenario, early)
    assert summary["stopped_by"] == early.stopped_by
    assert f"The network did not converge (stopped by {early.stopped_by})." in render(summary)

    monkeypatch.setattr(conductor, "out_of_reach", lambda scenario, roles: None)
    full = run_lockstep(scenario)
    assert (full.ticks, full.stopped_by) == (300, "MAX_TICKS")
    full_summary = _summary(scenario, full)
    for outcome in (summary, full_summary):
        assert outcome["finished"] is False and outcome["chain"]["length"] == 1
        assert outcome["employer"]["model_source"] == "poisoned"
        assert self_check(outcome) == []
    assert full_summary["employer"]["chain_length"] > summary["employer"]["chain_length"] == 2


def test_a_hopeless_run_ends_at_the_same_tick_in_every_window_size() -> None:
    """Messages take 3 ticks, so units could step 3 ticks per exchange; a run that may end
    at any tick takes one at a time, and its end is the tick-by-tick run's."""
    scenario = _scenario(network_delay_ticks=3, seed=2)
    windowed = network_result(run_lockstep(scenario, units=3))
    single = network_result(run_lockstep(scenario, max_window=1))
    assert windowed.stopped_by.startswith(OUT_OF_REACH)
    assert windowed == single


def test_a_run_where_no_chain_can_grow_ends_after_its_first_tick() -> None:
    scenario = _scenario(employer_confidence=4, adversaries="poisoned:2")
    run = run_lockstep(scenario)
    assert run.ticks == 0 and run.stopped_by.startswith(f"{OUT_OF_REACH}, nor a poisoned")
    assert _summary(scenario, run)["employer"]["model_source"] == "genesis"


def test_enough_honest_employees_run_as_before() -> None:
    """2 poisoned of 5: the 3 honest can make blocks, so the run is not cut short."""
    run = run_lockstep(_scenario(adversaries="poisoned:2"))
    assert (run.finished, run.stopped_by) == (True, "target reached")


@pytest.mark.processes
def test_main_ends_a_hopeless_run_early_and_says_why(tmp_path: Path) -> None:
    """One real run (process backend, hash trainer): the results JSON and the console
    summary say why it ended; exit 1, as for any run that did not converge."""
    results = tmp_path / "results.json"
    command = [sys.executable, "main.py", "--trainer", "hash", "--employees-num", "5",
               "--adversaries", "poisoned:3", "--quiet", "--no-run-dir", "--results",
               str(results), "--log-file", str(tmp_path / "run.log")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(results.read_text())
    assert data["stopped_by"].startswith(f"{OUT_OF_REACH}: 2 honest employees")
    assert data["ticks"] < 100 and data["employer"]["model_source"] == "poisoned"
    assert f"(stopped by {data['stopped_by']})." in done.stdout
