"""The conductor's windows: when every message takes at least L ticks, a unit of
employees steps L ticks per exchange, and the run is the one a tick-by-tick exchange
gives, to the byte."""

from __future__ import annotations

import time

import pytest

from simulation.config import Role, default_scenario
from simulation.net.conductor import Window, conduct
from simulation.net.latency import Latency
from simulation.net.lockstep import LocalHost, build_employees, network_result, run_lockstep
from simulation.net.relay import Router
from simulation.net.watch import Watch
from simulation.node.adversaries import hash_trainer_for
from simulation.node.genesis import genesis_of
from simulation.node.users import Users


@pytest.mark.parametrize("latency, tick_ms, low", [
    ("constant:3", 100, 3), ("uniform:2:5", 100, 2), ("lognormal:4:0.5", 100, 1),
    ("lognormal:4:0", 100, 4), ("regions", 100, 1), ("regions", 10, None)])
def test_min_delay_is_a_lower_bound_of_every_draw(latency, tick_ms, low):
    scenario = default_scenario().replace(latency=latency, tick_milliseconds=tick_ms,
                                          employees_num=30)
    router = Router.for_scenario(scenario)
    bound = router.min_delay()
    if low is not None:
        assert bound == low
    else:  # SimBlock's fastest link, 11 ms, at 10 ms ticks: at least 1 tick, maybe more
        assert bound >= 1
    model = Latency.of(scenario)
    parties = [*range(30), 30, -1]
    draws = [model.delay(s, r, q) for s in parties for r in parties if s != r
             for q in range(20)]
    assert min(draws) >= bound
    if latency.startswith(("constant", "uniform")) or latency == "lognormal:4:0":
        assert min(draws) == bound  # tight where the distribution has a floor


def test_without_a_latency_model_the_window_is_the_network_delay():
    assert Router.for_scenario(default_scenario()).min_delay() == \
        default_scenario().network_delay_ticks
    assert Router.for_scenario(default_scenario().replace(
        network_delay_ticks=4)).min_delay() == 4


class CountingHost(LocalHost):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.exchanges = 0
        self.ticks_per_unit_call: list[int] = []

    def advance(self, windows):
        self.exchanges += 1
        out = super().advance(windows)
        self.ticks_per_unit_call += [len(steps) for steps in out.values()]
        return out


def _conducted(scenario, units, max_window=None, after_tick=None):
    employees = build_employees(scenario, genesis_of(scenario), hash_trainer_for(scenario))
    host = CountingHost(scenario, employees, Users(scenario, genesis_of(scenario)), units)
    done = conduct(scenario, host, [e.index for e in employees if e.role == Role.HONEST],
                   max_window=max_window, after_tick=after_tick)
    return done, host, employees


SCENARIOS = [
    dict(latency="constant:3"),
    dict(latency="uniform:2:4", loss_probability=0.05, churn="2@10:40"),
    dict(network_delay_ticks=3, adversaries="poisoned:2,crash:1,equivocator:1"),
    dict(latency="constant:2", partitions="0-3|4-10@5:30", adversaries="withholder:1"),
    dict(latency="uniform:3:6", bandwidth=20000, adversaries="spammer:1,forger:1"),
]


# Each scenario with a seed of its own (three seeds each took 45 s of the suite).
@pytest.mark.parametrize("changes, seed", [(changes, seed)
                                           for seed, changes in enumerate(SCENARIOS, 1)])
def test_windows_give_the_tick_by_tick_run(changes, seed):
    scenario = default_scenario().replace(trainer="hash", seed=seed, **changes)
    one_tick, single, by_tick = _conducted(scenario, units=1, max_window=1)
    windowed, host, by_window = _conducted(scenario, units=3)
    # Every employee ends in the same state: its whole report (chain, tree, counters,
    # mempool, balances, secrets), adversaries and crashed ones included.
    assert [e.report() for e in by_window] == [e.report() for e in by_tick]
    assert windowed.ticks == one_tick.ticks
    assert windowed.finished == one_tick.finished
    assert windowed.crashed == one_tick.crashed
    assert windowed.statuses == one_tick.statuses
    assert windowed.relayed_bytes == one_tick.relayed_bytes
    assert windowed.dropped == one_tick.dropped
    assert windowed.facts == one_tick.facts
    assert windowed.in_flight == one_tick.in_flight
    assert windowed.employer.report() == one_tick.employer.report()
    users = scenario.employees_num
    assert host.by_index[users].users.report() == single.by_index[users].users.report()
    assert max(host.ticks_per_unit_call) > 1  # windows were really taken


# Seeds whose runs end at each of the four ticks of a window (ticks 140, 125, 146, 135).
@pytest.mark.parametrize("seed", [1, 4, 5, 2])
def test_a_run_ending_inside_a_window_reports_the_state_at_its_last_tick(seed):
    """The final reports (chains, counters) of every employee equal the tick-by-tick
    run's, also when the target is reached in the middle of a window."""
    scenario = default_scenario().replace(trainer="hash", seed=seed, latency="constant:4")
    reference = network_result(run_lockstep(scenario, max_window=1))
    windowed = network_result(run_lockstep(scenario, units=3))
    assert windowed == reference


def test_some_runs_end_inside_a_window_and_units_stop_there():
    """Coverage of the early stop: over these seeds some runs end at a tick that is not
    a window's last, and then every unit has stopped exactly at it."""
    inside = 0
    for seed in range(1, 6):
        scenario = default_scenario().replace(trainer="hash", seed=seed,
                                              latency="constant:4")
        done, host, employees = _conducted(scenario, units=3)
        assert done.finished
        if done.ticks % 4 != 3:
            inside += 1
        heights = {e.index: e.tree.tip.height for e in employees}
        assert {i: s.height for i, s in done.statuses.items()} == heights
        # No employee was stepped past the run's last tick (a unit that stopped early
        # waits until the run has gone past the tick it stopped at).
        assert {e.now for e in employees} == {done.ticks}, seed
    assert inside > 0


def test_windows_cut_the_exchanges_by_the_smallest_delay():
    scenario = default_scenario().replace(trainer="hash", latency="constant:5")
    one_tick, single, _ = _conducted(scenario, units=2, max_window=1)
    at_target: list[int] = []  # ticks at which some honest employee held the target

    def watch(tick, statuses):
        if any(s.height + 1 >= scenario.target_blockchain_length for s in statuses):
            at_target.append(tick)

    windowed, host, _ = _conducted(scenario, units=2, after_tick=watch)
    assert windowed.ticks == one_tick.ticks
    assert single.exchanges == one_tick.ticks + 1
    # A unit steps single ticks only once its honest employees could end the run, that
    # is, once one of them holds the target: the other exchanges take whole windows.
    assert host.exchanges <= (windowed.ticks + 1) / 5 + 2 * len(at_target) + 1
    assert host.exchanges < single.exchanges / 3


def test_pacing_takes_one_tick_at_a_time_and_keeps_ticks_apart():
    """TICK_SECONDS is the driver's Watch: one tick per exchange, and at least
    TICK_SECONDS between the ends of two ticks (a lower bound: the machine may be
    slower, never faster); the run is the unpaced one."""
    scenario = default_scenario().replace(trainer="hash", latency="constant:3",
                                          tick_seconds=0.02, max_ticks=12)
    watch = Watch(scenario, time.monotonic(), lambda: (11, 11))
    started = time.monotonic()
    paced, host, _ = _conducted(scenario, units=1, max_window=watch.max_window,
                                after_tick=watch)
    assert time.monotonic() - started >= 12 * 0.02
    assert set(host.ticks_per_unit_call) == {1}
    unpaced, _, _ = _conducted(scenario.replace(tick_seconds=0), units=1)
    assert paced.statuses == unpaced.statuses and paced.ticks == unpaced.ticks == 12


def test_a_unit_without_honest_employees_steps_one_tick_per_call():
    """Nothing tells such a unit that the run goes on, so it never steps past a tick at
    which the run could end."""
    scenario = default_scenario().replace(trainer="hash", latency="constant:3",
                                          adversaries="lazy:3")
    employees = build_employees(scenario, genesis_of(scenario), hash_trainer_for(scenario))
    lazy = {e.index: e for e in employees if e.role != Role.HONEST}
    host = LocalHost(scenario, list(lazy.values()), Users(scenario, genesis_of(scenario)))
    steps = host.advance({0: Window(0, [{i: [] for i in lazy} for _ in range(3)])})[0]
    assert len(steps) == 1


def test_the_watch_logs_progress_and_stops_a_run_after_max_wall_seconds(caplog):
    """The process and Ray backends pass ``watch.Watch`` as ``after_tick``."""
    import logging

    scenario = default_scenario().replace(trainer="hash")
    employees = build_employees(scenario, genesis_of(scenario), hash_trainer_for(scenario))
    host = LocalHost(scenario, employees, Users(scenario, genesis_of(scenario)))
    with caplog.at_level(logging.INFO):
        done = conduct(scenario, host, range(11),
                       after_tick=Watch(scenario, time.monotonic(), lambda: (11, 11)))
    assert done.finished
    assert "longest honest chain has 6 blocks (live employees 11/11)" in caplog.text
    hurried = scenario.replace(max_wall_seconds=1.0)
    employees = build_employees(hurried, genesis_of(hurried), hash_trainer_for(hurried))
    host = LocalHost(hurried, employees, Users(hurried, genesis_of(hurried)))
    done = conduct(hurried, host, range(11),
                   after_tick=Watch(hurried, time.monotonic() - 5, lambda: (11, 11)))
    assert (done.finished, done.stopped_by, done.ticks) == (False, "MAX_WALL_SECONDS", 0)
