"""Runs employees and users in one process, in lockstep, with the network's own routing.

No pipes, no TensorFlow needed: the protocol tests drive whole networks with it, and it
gives the same outcome as the multi-process run for the same scenario and trainers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import Scenario
from .employee import Employee, LogEvent
from .encoding import derive_keypair
from .ledger import Genesis, make_genesis
from .relay import Router, target_reached
from .training import Trainer, model_id
from .users import Users


def genesis_of(scenario: Scenario) -> Genesis:
    return make_genesis(
        seed=scenario.seed,
        model_id=model_id(scenario.tf_seed, scenario.iterations_per_epoch),
        employees_num=scenario.employees_num,
        users_num=scenario.users_num,
        genesis_stake=scenario.genesis_stake,
        user_max_balance=scenario.user_max_genesis_balance,
    )


@dataclass
class LockstepRun:
    employees: list[Employee]
    users: Users
    ticks: int
    finished: bool
    events: list[LogEvent] = field(default_factory=list)
    sent_by_party: dict[int, int] = field(default_factory=dict)


def run_lockstep(
    scenario: Scenario,
    trainer_for: Callable[[int], Trainer],
    *,
    keep_events: bool = False,
    employees: list[Employee] | None = None,
) -> LockstepRun:
    genesis = genesis_of(scenario)
    if employees is None:
        employees = [
            Employee(i, scenario, genesis, trainer_for(i),
                     derive_keypair(scenario.seed, "employee", i))
            for i in range(scenario.employees_num)
        ]
    users = Users(scenario, genesis)
    router = Router(scenario.network_delay_ticks)
    users_index = len(employees)
    events: list[LogEvent] = []
    tick = 0
    finished = False
    for tick in range(scenario.max_ticks + 1):
        due = router.take(tick)
        for employee in employees:
            ready = employee.step(tick, Router.for_party(due, employee.index))
            router.submit(tick, employee.index, ready.outgoing)
            if keep_events:
                events.extend(ready.events)
        router.submit(tick, users_index, users.step(tick))
        if target_reached([e.status() for e in employees],
                          scenario.target_blockchain_length):
            finished = True
            break
    return LockstepRun(employees, users, tick, finished, events)


def summary_inputs(run: LockstepRun) -> dict[str, Any]:
    return {"employees": [e.report() for e in run.employees], "users": run.users.report()}
