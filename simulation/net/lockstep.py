"""Runs employees and users in one process, in lockstep, with the network's own routing.

No pipes, no TensorFlow needed: the protocol tests drive whole networks with it, and it
gives the same outcome as the multi-process run for the same scenario and trainers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from simulation.config import Role, Scenario
from simulation.net.conductor import (
    Answer,
    UsersParty,
    Window,
    conduct,
    final_plan,
    result_of,
    step_window,
)
from simulation.net.relay import Router
from simulation.node.adversaries import (
    assign_adversaries,
    behaviour_of,
    hash_trainer_for,
    make_employee,
)
from simulation.node.employee import Employee, LogEvent
from simulation.node.genesis import genesis_of
from simulation.node.users import Users
from simulation.protocol.encoding import derive_keypair
from simulation.protocol.events import Event
from simulation.protocol.ledger import Genesis
from simulation.protocol.names import employee_name
from simulation.protocol.records import RunResult, Status
from simulation.protocol.stages import Trainer


@dataclass
class LockstepRun:
    scenario: Scenario
    employees: list[Employee]
    users: Users
    employer: Employee
    ticks: int
    finished: bool
    crashed: list[int] = field(default_factory=list)
    events: list[LogEvent] = field(default_factory=list)
    relayed_bytes: dict[int, int] = field(default_factory=dict)  # by sender index
    dropped: dict[str, int] = field(default_factory=dict)  # copies not delivered, by cause
    facts: dict[str, Any] = field(default_factory=dict)  # relay.network_facts at the end
    in_flight: list[bytes] = field(default_factory=list)  # hashes of undelivered messages
    router: Router | None = None  # the conductor's (the blocks' hops in a peer graph)
    stopped_by: str = ""  # why the ticks ended ("target reached", "MAX_TICKS", ...)

    def honest(self) -> list[Employee]:
        return [e for e in self.employees if e.role == Role.HONEST
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
    """The employees and the users as objects in this process (``conductor.Host``): one
    unit, or ``units`` by index modulo (as the Ray backend's shards; for tests)."""

    def __init__(self, scenario: Scenario, employees: list[Employee], users: Users,
                 units: int = 1):
        self.by_index: dict[int, Employee | UsersParty] = {e.index: e for e in employees}
        self.by_index[scenario.employees_num] = UsersParty(users)
        self.units = units
        self.target = scenario.target_blockchain_length
        self.crashed: set[int] = set()

    def unit_of(self, index: int) -> int:
        return index % self.units

    def advance(self, windows: dict[int, Window]) -> dict[int, list[dict[int, Answer | None]]]:
        return {unit: step_window(self.by_index, window, self.target, self.crashed)
                for unit, window in windows.items()}


def run_lockstep(
    scenario: Scenario,
    trainer_for: Callable[[int, str], Trainer] | None = None,
    *,
    keep_events: bool = False,
    employees: list[Employee] | None = None,
    units: int = 1,
    max_window: int | None = None,
    on_events: Callable[[tuple[LogEvent, ...]], None] | None = None,
    stop_reason: Callable[[], str | None] | None = None,
    after_tick: Callable[[int, list[Status]], str | None] | None = None,
    on_happenings: Callable[[tuple[Event, ...]], None] | None = None,
) -> LockstepRun:
    """``trainer_for(index, behaviour)`` gives each employee its trainer (default: the
    hash trainer, poisoned for poisoned employees); ``units`` and ``max_window``: how the
    conductor groups the employees and the ticks (the outcome is the same);
    ``on_events``, ``stop_reason``, ``after_tick`` and ``on_happenings`` as for
    ``conduct`` (BACKEND lockstep passes the log, the signals, the watch and the event
    log)."""
    genesis = genesis_of(scenario)
    trainer_for = trainer_for or hash_trainer_for(scenario)
    if employees is None:
        employees = build_employees(scenario, genesis, trainer_for)
    events: list[LogEvent] = []
    users = Users(scenario, genesis)
    done = conduct(scenario, LocalHost(scenario, employees, users, units),
                   [e.index for e in employees if e.role == Role.HONEST],
                   on_events or (events.extend if keep_events else None),
                   stop_reason=stop_reason, max_window=max_window, after_tick=after_tick,
                   roles={e.index: e.role for e in employees if e.role != Role.HONEST},
                   on_happenings=on_happenings)
    return LockstepRun(scenario, employees, users, done.employer, done.ticks,
                       done.finished, done.crashed, events, done.relayed_bytes,
                       done.dropped, done.facts, done.in_flight, done.router,
                       done.stopped_by)


def network_result(run: LockstepRun) -> RunResult:
    """The run in the shape the network process reports (for ``reporting.summarize``),
    ended as the network ends one: the same ``evaluation_plan`` picks the evaluators and
    every live employee answers with ``Employee.final_report``."""
    live = [e for e in run.employees if e.index not in run.crashed]
    roles: dict[int, Role] = {e.index: e.role for e in run.employees
                              if e.role != Role.HONEST}
    plan = final_plan(run.scenario, roles, {e.index: e.tree.tip.height for e in live},
                      run.employer)
    reports: dict[str, Any] = {employee_name(e.index): e.final_report(plan[e.index]).to_wire()
                               for e in live}
    reports["users"] = run.users.report()
    stopped_by = run.stopped_by or ("target reached" if run.finished else "MAX_TICKS")
    return result_of(run.scenario, run.finished, run.ticks, stopped_by, reports,
                     run.employer, run.crashed, run.relayed_bytes, run.dropped,
                     run.facts, run.in_flight, run.router)
