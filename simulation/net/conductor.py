"""The lockstep conductor that backends running the network from one driver share.

Per tick it decides who is live and online, has the host step each employee with what
the ``Router`` delivers to it (and the users), collects what they send, steps the
employer's light client, and ends the run when the target is reached
(``relay.target_reached``); when every message takes at least L ticks, one exchange with
the host covers L ticks. Where the employee state machines live is the host's business:
in this process (``lockstep``), in one OS process each behind pipes (``network``, one tick
per exchange, with its timeouts and cut-offs) or in Ray actors (``ray_backend``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from simulation.config import Role, Scenario
from simulation.net.relay import (
    Router,
    evaluation_plan,
    network_facts,
    out_of_reach,
    planned_behaviour,
    target_reached,
)
from simulation.node.adversaries import Crashed, assign_adversaries
from simulation.node.employee import Employee, LogEvent, Ready
from simulation.node.employer import make_employer
from simulation.node.genesis import genesis_of
from simulation.node.users import Users
from simulation.protocol.encoding import sha256
from simulation.protocol.events import Event
from simulation.protocol.names import EMPLOYER_PARTY, party_name
from simulation.protocol.records import RunResult, Status

NO_HONEST_LEFT = "no live honest employee"


@dataclass(frozen=True)
class Answer:
    """One employee's answer to one tick."""

    outgoing: tuple[bytes, ...]
    direct: tuple[tuple[int, bytes], ...]
    status: Status | None  # None: the users, who have no chain
    events: tuple[LogEvent, ...] = ()
    happenings: tuple[Event, ...] = ()  # the event log's (EVENT_LOG_MB)


@dataclass(frozen=True)
class Window:
    """What one unit of a host steps: the ticks ``first``, ``first`` + 1, ... in order,
    each with what its live employees are delivered (index -> messages)."""

    first: int
    deliveries: list[dict[int, list[bytes]]]


class Host(Protocol):
    def unit_of(self, index: int) -> int:
        """The unit (a group of parties stepped by one call) that hosts ``index``: an
        employee, or the users (index EMPLOYEES_NUM)."""

    def advance(self, windows: dict[int, Window]) -> dict[int, list[dict[int, Answer | None]]]:
        """Each unit steps its window (``step_window``) and returns the answers of every
        tick it stepped, at least one; None for an employee that crashed at that tick."""


class UsersParty:
    """The users as a party a host steps like an employee: nothing is delivered to them,
    they broadcast transactions, and they have no chain (an empty status)."""

    role: Role | None = None  # the users play no employee role

    def __init__(self, users: Users):
        self.users = users

    def step(self, tick: int, deliveries: list[bytes]) -> Ready:
        outgoing = tuple(self.users.step(tick))
        return Ready(tick, outgoing, (), happenings=tuple(self.users.happenings))

    def status(self) -> None:
        return None


def may_end(statuses: list[Status], target_length: int) -> bool:
    """Whether a run could end at this tick as far as these (live honest) employees'
    statuses tell: none of them, or all at the target on one anchor."""
    return not statuses or target_reached(statuses, target_length)


def step_window(employees: dict[int, Employee | UsersParty], window: Window,
                target_length: int, crashed: set[int]) -> list[dict[int, Answer | None]]:
    """Steps a unit's employees through ``window`` and stops after the first tick at which
    ``may_end`` holds for its honest employees stepped at that tick: the run may end there
    (``conduct`` decides), and an employee stepped past the last tick of a run would
    report another state. ``crashed``: the unit's crashed employees, not stepped again
    (it gains those that crash now)."""
    stepped: list[dict[int, Answer | None]] = []
    for offset, deliveries in enumerate(window.deliveries):
        tick = window.first + offset
        answers: dict[int, Answer | None] = {}
        honest: list[Status] = []
        for index, messages in deliveries.items():
            if index in crashed:
                continue
            employee = employees[index]
            try:
                ready = employee.step(tick, messages)
            except Crashed:
                crashed.add(index)
                answers[index] = None
                continue
            status = employee.status()
            answers[index] = Answer(ready.outgoing, ready.direct, status, ready.events,
                                    ready.happenings)
            if employee.role == Role.HONEST and status is not None:
                honest.append(status)
        stepped.append(answers)
        if may_end(honest, target_length):
            break
    return stepped


@dataclass
class Conducted:
    employer: Employee
    ticks: int
    finished: bool
    stopped_by: str
    crashed: list[int] = field(default_factory=list)
    relayed_bytes: dict[int, int] = field(default_factory=dict)  # by sender index
    dropped: dict[str, int] = field(default_factory=dict)  # copies not delivered, by cause
    facts: dict[str, Any] = field(default_factory=dict)  # relay.network_facts at the end
    statuses: dict[int, Status] = field(default_factory=dict)  # the last, by index
    in_flight: list[bytes] = field(default_factory=list)  # hashes of undelivered messages
    router: Router | None = None  # for the blocks' hops (``result_of``)


def conduct(scenario: Scenario, host: Host, honest: Iterable[int],
            on_events: Callable[[tuple[LogEvent, ...]], None] | None = None,
            stop_reason: Callable[[], str | None] | None = None,
            max_window: int | None = None,
            after_tick: Callable[[int, list[Status]], str | None] | None = None,
            crashed: Iterable[int] = (),
            roles: dict[int, Role] | None = None,
            on_happenings: Callable[[tuple[Event, ...]], None] | None = None) -> Conducted:
    """Run the ticks. ``honest``: the honest employees' indices (the end condition);
    ``on_events``: receives each employee's log events; ``stop_reason``: polled before
    every window, a text stops the run (an interrupt); ``max_window``: at most this many
    ticks per exchange (1 for a host that only steps single ticks; tests compare windows
    with single ticks); ``after_tick``: called with each tick and the live honest
    employees' statuses, a text stops the run after that tick (a wall-clock guard);
    ``crashed``: parties gone before the first tick; ``roles``: the adversaries' (index
    -> role; default: the scenario's); ``on_happenings``: receives the event log's records
    of each employee that answered with them and of the employer's light client (which
    runs here on every backend). The run also stops when no honest employee is
    left (NO_HONEST_LEFT); a unit without live honest employees steps one tick per call
    (``may_end``), so then no employee was stepped past the end either. And it stops
    once its honest employees provably cannot reach the target and the employer's model
    is settled (``relay.out_of_reach``, ``stopped_by`` says why); such a run takes one
    tick per exchange, since it may end at any tick.

    When every message takes at least L ticks (``Router.min_delay``), nothing sent at a
    tick can arrive within the next L - 1, so the deliveries of L ticks are known at the
    first of them and each unit of the host steps the L ticks in one call (a *window*).
    A unit stops early after a tick at which the run could end as far as its employees
    tell (``step_window``); the run ends at tick t only if every unit could end at t, so
    every unit stopped exactly there and no employee was stepped past the end. The
    units that stopped early are called again for the rest of the window. The ticks are
    then taken in order as a one-tick exchange would: the same messages, in the same
    order, give the same run."""
    employer = make_employer(scenario, genesis_of(scenario))
    router = Router.for_scenario(scenario)
    n = scenario.employees_num
    honest = set(honest)
    roles = assign_adversaries(scenario) if roles is None else roles
    # Only for roles that agree with ``honest`` (the end condition's own list).
    hopeless = out_of_reach(scenario, roles) if honest == set(range(n)) - set(roles) \
        else None
    span = router.min_delay()
    span = min(span, max_window or span)
    if hopeless is not None:
        span = 1  # it may end at any tick, and no unit may have stepped past it
    crashed = list(crashed)
    statuses: dict[int, Status] = {}
    tick, finished, stopped_by = 0, False, "MAX_TICKS"
    first = 0
    while first <= scenario.max_ticks and stopped_by == "MAX_TICKS":
        reason = stop_reason() if stop_reason is not None else None
        if reason:
            stopped_by, tick = reason, first - 1  # the last tick taken
            break
        last = min(first + span - 1, scenario.max_ticks)
        due = {t: router.peek(t) for t in range(first, last + 1)}
        deliveries: dict[int, dict[int, dict[int, list[bytes]]]] = {}  # unit, tick, index
        for t in range(first, last + 1):
            live = [i for i in range(n + 1) if i not in crashed and router.online(i, t)]
            delivered = Router.for_parties(due[t], [i for i in live if i < n])
            for i in live:  # the employees, then the users (delivered nothing)
                deliveries.setdefault(host.unit_of(i), {}).setdefault(t, {})[i] = \
                    delivered.get(i, [])
        answered: dict[int, dict[int, Answer | None]] = {t: {} for t in due}
        resume = {unit: first for unit in deliveries}  # the next tick each unit steps
        done_to = first - 1  # ticks taken in order so far
        while done_to < last and stopped_by == "MAX_TICKS":
            # A unit that stopped early at tick s goes on only once the ticks up to s
            # are taken and the run did not end there (else it could step past the end).
            windows = {unit: Window(start, [deliveries[unit].get(t, {})
                                            for t in range(start, last + 1)])
                       for unit, start in resume.items() if start <= min(last, done_to + 1)}
            for unit, steps in (host.advance(windows) if windows else {}).items():
                for offset, answers in enumerate(steps):
                    answered[windows[unit].first + offset].update(answers)
                resume[unit] = windows[unit].first + len(steps)
            ready_to = min([last, *(start - 1 for start in resume.values())])
            for tick in range(done_to + 1, ready_to + 1):
                router.take(tick)  # as peeked: nothing sent in the window is due in it
                answers = answered.pop(tick)
                for index in sorted(answers):
                    answer = answers[index]
                    if answer is None:
                        if index not in crashed:
                            crashed.append(index)
                        continue
                    router.submit(tick, index, answer.outgoing, answer.direct)
                    if answer.status is not None:
                        statuses[index] = answer.status
                    if on_events is not None:
                        on_events(answer.events)
                    if on_happenings is not None and answer.happenings:
                        on_happenings(answer.happenings)
                asked = employer.step(tick, Router.for_party(due[tick], EMPLOYER_PARTY))
                if on_happenings is not None and asked.happenings:
                    on_happenings(asked.happenings)
                router.submit(tick, EMPLOYER_PARTY, asked.outgoing, asked.direct)
                live_honest = [statuses[i] for i in sorted(honest) if i in statuses
                               and i not in crashed and router.online(i, tick)]
                if target_reached(live_honest, scenario.target_blockchain_length):
                    finished, stopped_by = True, "target reached"
                    break
                reason = after_tick(tick, live_honest) if after_tick is not None else None
                if not honest - set(crashed):
                    reason = NO_HONEST_LEFT
                if not reason and hopeless is not None:
                    reason = hopeless.stop_reason(
                        [statuses[i].height for i in sorted(honest) if i in statuses],
                        employer.tree.tip.height)
                if reason:
                    stopped_by = reason
                    break
            done_to = ready_to
        first = last + 1
    return Conducted(employer, tick, finished, stopped_by, crashed,
                     dict(router.bytes_sent), dict(router.dropped),
                     network_facts(router, tick), statuses,
                     [sha256(data) for data in router.in_flight()], router)


def final_plan(scenario: Scenario, roles: dict[int, Role], heights: dict[int, int],
               employer: Employee) -> dict[int, list[int]]:
    """Who evaluates which stages at the end (``relay.evaluation_plan``), from the live
    employees' chain heights (index -> height)."""
    return evaluation_plan(
        [(i, planned_behaviour(scenario, roles, i), heights[i]) for i in sorted(heights)],
        employer.tree.tip.height)


def result_of(scenario: Scenario, finished: bool, ticks: int, stopped_by: str,
              reports: dict[str, Any], employer: Employee,
              crashed: list[int], relayed_bytes: dict[int, int], dropped: dict[str, int],
              facts: dict[str, Any], in_flight: list[bytes],
              router: Router | None = None) -> RunResult:
    """The run in the shape the network process reports (for ``reporting.summarize``);
    ``reports``: every live employee's final report, and the users' under "users". In
    a peer graph, the facts gain each block's hops to every party it reached."""
    n = scenario.employees_num

    def name(index: int) -> str:
        return "users" if index == n else party_name(index)

    if router is not None and router.graph is not None and "peer_graph" in facts:
        blocks = {entry[0] for report in reports.values() if isinstance(report, dict)
                  for entry in report.get("tree") or ()}
        facts = {**facts, "peer_graph": {**facts["peer_graph"], "block_hops": {
            block.hex(): {name(p): h for p, h in sorted(router.hops_to(block).items())}
            for block in sorted(blocks)}}}

    return RunResult(
        finished=finished, ticks=ticks, reports=reports,
        employer=employer.report().to_wire(), stopped_by=stopped_by,
        cut_off={name(i): "pipe closed (process gone)" for i in crashed},
        relayed_bytes={name(i): b for i, b in sorted(relayed_bytes.items())},
        dropped=dropped, in_flight=tuple(in_flight), **facts)
