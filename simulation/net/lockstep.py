"""Runs employees and users in one process, in lockstep, with the network's own routing.

No pipes, no TensorFlow needed: the protocol tests drive whole networks with it, and it
gives the same outcome as the multi-process run for the same scenario and trainers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulation.config import Scenario
from simulation.net.relay import (
    Router,
    evaluation_plan,
    network_facts,
    planned_behaviour,
    target_reached,
)
from simulation.node.adversaries import (
    Crashed,
    assign_adversaries,
    behaviour_of,
    hash_trainer_for,
    make_employee,
)
from simulation.node.employee import Employee, LogEvent
from simulation.node.employer import EMPLOYER_INDEX, Employer
from simulation.node.genesis import genesis_of
from simulation.node.users import Users
from simulation.protocol.encoding import derive_keypair
from simulation.protocol.ledger import Genesis
from simulation.protocol.stages import Trainer


@dataclass
class LockstepRun:
    scenario: Scenario
    employees: list[Employee]
    users: Users
    employer: Employer
    ticks: int
    finished: bool
    crashed: list[int] = field(default_factory=list)
    events: list[LogEvent] = field(default_factory=list)
    relayed_bytes: dict[int, int] = field(default_factory=dict)  # by sender index
    dropped: dict[str, int] = field(default_factory=dict)  # copies not delivered, by cause
    facts: dict[str, Any] = field(default_factory=dict)  # relay.network_facts at the end

    def honest(self) -> list[Employee]:
        return [e for e in self.employees if e.behaviour == "honest"
                and e.index not in self.crashed]


def build_employees(scenario: Scenario, genesis: Genesis,
                    trainer_for: Callable[[int, str], Trainer]) -> list[Employee]:
    roles = assign_adversaries(scenario)
    employees = []
    for i in range(scenario.employees_num):
        behaviour = behaviour_of(roles, i)
        employees.append(make_employee(behaviour, i, scenario, genesis,
                                       trainer_for(i, behaviour),
                                       derive_keypair(scenario.seed, "employee", i)))
    return employees


def run_lockstep(
    scenario: Scenario,
    trainer_for: Callable[[int, str], Trainer] | None = None,
    *,
    keep_events: bool = False,
    employees: list[Employee] | None = None,
) -> LockstepRun:
    """``trainer_for(index, behaviour)`` gives each employee its trainer (default: the
    hash trainer, poisoned for poisoned employees)."""
    genesis = genesis_of(scenario)
    trainer_for = trainer_for or hash_trainer_for(scenario)
    if employees is None:
        employees = build_employees(scenario, genesis, trainer_for)
    users = Users(scenario, genesis)
    employer = Employer(scenario, genesis)
    router = Router.for_scenario(scenario)
    users_index = len(employees)
    events: list[LogEvent] = []
    crashed: list[int] = []
    tick = 0
    finished = False
    for tick in range(scenario.max_ticks + 1):
        due = router.take(tick)
        for employee in employees:
            if employee.index in crashed or not router.online(employee.index, tick):
                continue
            try:
                ready = employee.step(tick, Router.for_party(due, employee.index))
            except Crashed:
                crashed.append(employee.index)
                continue
            router.submit(tick, employee.index, ready.outgoing, ready.direct)
            if keep_events:
                events.extend(ready.events)
        router.submit(tick, users_index, users.step(tick))
        asked = employer.step(tick, Router.for_party(due, EMPLOYER_INDEX))
        router.submit(tick, EMPLOYER_INDEX, asked.outgoing, asked.direct)
        honest = [e.status() for e in employees if e.behaviour == "honest"
                  and e.index not in crashed and router.online(e.index, tick)]
        if target_reached(honest, scenario.target_blockchain_length):
            finished = True
            break
    return LockstepRun(scenario, employees, users, employer, tick, finished, crashed, events,
                       dict(router.bytes_sent), dict(router.dropped),
                       network_facts(router, tick))


def network_result(run: LockstepRun) -> dict[str, Any]:
    """The run in the shape the network process reports (for ``reporting.summarize``),
    ended as the network ends one: the same ``evaluation_plan`` picks the evaluators and
    every live employee answers with ``Employee.final_report``."""
    live = [e for e in run.employees if e.index not in run.crashed]
    roles = {e.index: e.behaviour for e in run.employees if e.behaviour != "honest"}
    plan = evaluation_plan(
        [(e.index, planned_behaviour(run.scenario, roles, e.index), e.tree.tip.height)
         for e in live], run.employer.tree.tip.height)
    reports: dict[str, Any] = {f"E{e.index}": e.final_report(plan[e.index]) for e in live}
    reports["users"] = run.users.report()
    return {"finished": run.finished, "ticks": run.ticks, "reports": reports,
            "employer": run.employer.report(), "stopped_by":
            "target reached" if run.finished else "MAX_TICKS",
            "cut_off": {f"E{i}": "pipe closed (process gone)" for i in run.crashed},
            "relayed_bytes": {_party_name(i, len(run.employees)): n
                              for i, n in sorted(run.relayed_bytes.items())},
            "dropped": run.dropped, **run.facts}


def _party_name(index: int, employees: int) -> str:
    return ("users" if index == employees else "employer" if index == EMPLOYER_INDEX
            else f"E{index}")
