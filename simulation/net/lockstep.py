"""Runs employees and users in one process, in lockstep, with the network's own routing.

No pipes, no TensorFlow needed: the protocol tests drive whole networks with it, and it
gives the same outcome as the multi-process run for the same scenario and trainers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from simulation.config import Scenario
from simulation.net.conductor import Answer, conduct, final_plan, result_of
from simulation.node.adversaries import (
    Crashed,
    assign_adversaries,
    behaviour_of,
    hash_trainer_for,
    make_employee,
)
from simulation.node.employee import Employee, LogEvent
from simulation.node.employer import Employer
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
    in_flight: list[bytes] = field(default_factory=list)  # hashes of undelivered messages

    def honest(self) -> list[Employee]:
        return [e for e in self.employees if e.behaviour == "honest"
                and e.index not in self.crashed]


def build_employees(scenario: Scenario, genesis: Genesis,
                    trainer_for: Callable[[int, str], Trainer],
                    indices: Iterable[int] | None = None) -> list[Employee]:
    """The employees ``indices`` (default: all), each with its behaviour and keys."""
    roles = assign_adversaries(scenario)
    employees = []
    for i in range(scenario.employees_num) if indices is None else indices:
        behaviour = behaviour_of(roles, i)
        employees.append(make_employee(behaviour, i, scenario, genesis,
                                       trainer_for(i, behaviour),
                                       derive_keypair(scenario.seed, "employee", i)))
    return employees


class LocalHost:
    """The employees as objects in this process (``conductor.Host``)."""

    def __init__(self, employees: list[Employee]):
        self.by_index = {e.index: e for e in employees}

    def step(self, tick: int, deliveries: dict[int, list[bytes]]
             ) -> dict[int, Answer | None]:
        answers: dict[int, Answer | None] = {}
        for index, messages in deliveries.items():
            employee = self.by_index[index]
            try:
                ready = employee.step(tick, messages)
            except Crashed:
                answers[index] = None
                continue
            answers[index] = Answer(ready.outgoing, ready.direct, employee.status(),
                                    ready.events)
        return answers


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
    events: list[LogEvent] = []
    done = conduct(scenario, LocalHost(employees),
                   [e.index for e in employees if e.behaviour == "honest"],
                   events.extend if keep_events else None)
    return LockstepRun(scenario, employees, done.users, done.employer, done.ticks,
                       done.finished, done.crashed, events, done.relayed_bytes,
                       done.dropped, done.facts, done.in_flight)


def network_result(run: LockstepRun) -> dict[str, Any]:
    """The run in the shape the network process reports (for ``reporting.summarize``),
    ended as the network ends one: the same ``evaluation_plan`` picks the evaluators and
    every live employee answers with ``Employee.final_report``."""
    live = [e for e in run.employees if e.index not in run.crashed]
    roles = {e.index: e.behaviour for e in run.employees if e.behaviour != "honest"}
    plan = final_plan(run.scenario, roles, {e.index: e.tree.tip.height for e in live},
                      run.employer)
    reports: dict[str, Any] = {f"E{e.index}": e.final_report(plan[e.index]) for e in live}
    return result_of(run.scenario, run.finished, run.ticks,
                     "target reached" if run.finished else "MAX_TICKS", reports,
                     run.users, run.employer, run.crashed, run.relayed_bytes, run.dropped,
                     run.facts, run.in_flight)
