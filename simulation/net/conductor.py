"""The lockstep conductor that backends running the network from one driver share.

Per tick it decides who is live and online, hands each employee what the ``Router``
delivers to it, collects what they send, steps the users and the employer's light
client, and ends the run when the target is reached (``relay.target_reached``). Where
the employee state machines live is the host's business: in this process (``lockstep``)
or in Ray actors (``ray_backend``). The multi-process network (``network``) drives the
same Router and end condition over pipes, with its own timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from simulation.config import Scenario
from simulation.net.relay import (
    Router,
    evaluation_plan,
    network_facts,
    planned_behaviour,
    target_reached,
)
from simulation.node.employee import LogEvent
from simulation.node.employer import EMPLOYER_INDEX, Employer
from simulation.node.genesis import genesis_of
from simulation.node.users import Users
from simulation.protocol.encoding import sha256


@dataclass(frozen=True)
class Answer:
    """One employee's answer to one tick."""

    outgoing: tuple[bytes, ...]
    direct: tuple[tuple[int, bytes], ...]
    status: dict[str, Any]
    events: tuple[LogEvent, ...] = ()


class Host(Protocol):
    def step(self, tick: int, deliveries: dict[int, list[bytes]]
             ) -> dict[int, Answer | None]:
        """Step every employee in ``deliveries`` (index -> its messages); None for one
        that crashed at this tick."""


@dataclass
class Conducted:
    users: Users
    employer: Employer
    ticks: int
    finished: bool
    stopped_by: str
    crashed: list[int] = field(default_factory=list)
    relayed_bytes: dict[int, int] = field(default_factory=dict)  # by sender index
    dropped: dict[str, int] = field(default_factory=dict)  # copies not delivered, by cause
    facts: dict[str, Any] = field(default_factory=dict)  # relay.network_facts at the end
    statuses: dict[int, dict[str, Any]] = field(default_factory=dict)  # the last, by index
    in_flight: list[bytes] = field(default_factory=list)  # hashes of undelivered messages


def conduct(scenario: Scenario, host: Host, honest: Iterable[int],
            on_events: Callable[[tuple[LogEvent, ...]], None] | None = None,
            stop_reason: Callable[[], str | None] | None = None) -> Conducted:
    """Run the ticks. ``honest``: the honest employees' indices (the end condition);
    ``on_events``: receives each employee's log events; ``stop_reason``: polled before
    every tick, a text stops the run (an interrupt)."""
    genesis = genesis_of(scenario)
    users = Users(scenario, genesis)
    employer = Employer(scenario, genesis)
    router = Router.for_scenario(scenario)
    n = scenario.employees_num
    honest = set(honest)
    crashed: list[int] = []
    statuses: dict[int, dict[str, Any]] = {}
    tick, finished, stopped_by = 0, False, "MAX_TICKS"
    for tick in range(scenario.max_ticks + 1):
        reason = stop_reason() if stop_reason is not None else None
        if reason:
            stopped_by = reason
            break
        tick_started = time.monotonic()
        due = router.take(tick)
        live = [i for i in range(n) if i not in crashed and router.online(i, tick)]
        answers = host.step(tick, {i: Router.for_party(due, i) for i in live})
        for index in sorted(answers):
            answer = answers[index]
            if answer is None:
                crashed.append(index)
                continue
            router.submit(tick, index, answer.outgoing, answer.direct)
            statuses[index] = answer.status
            if on_events is not None:
                on_events(answer.events)
        router.submit(tick, n, users.step(tick))
        asked = employer.step(tick, Router.for_party(due, EMPLOYER_INDEX))
        router.submit(tick, EMPLOYER_INDEX, asked.outgoing, asked.direct)
        if target_reached([statuses[i] for i in sorted(honest) if i in statuses
                           and i not in crashed and router.online(i, tick)],
                          scenario.target_blockchain_length):
            finished, stopped_by = True, "target reached"
            break
        if scenario.tick_seconds > 0:  # pacing for watching live; changes no outcome
            time.sleep(max(0.0, scenario.tick_seconds - (time.monotonic() - tick_started)))
    return Conducted(users, employer, tick, finished, stopped_by, crashed,
                     dict(router.bytes_sent), dict(router.dropped),
                     network_facts(router, tick), statuses,
                     [sha256(data) for data in router.in_flight()])


def final_plan(scenario: Scenario, roles: dict[int, str], heights: dict[int, int],
               employer: Employer) -> dict[int, list[int]]:
    """Who evaluates which stages at the end (``relay.evaluation_plan``), from the live
    employees' chain heights (index -> height)."""
    return evaluation_plan(
        [(i, planned_behaviour(scenario, roles, i), heights[i]) for i in sorted(heights)],
        employer.tree.tip.height)


def result_of(scenario: Scenario, finished: bool, ticks: int, stopped_by: str,
              reports: dict[str, Any], users: Users, employer: Employer,
              crashed: list[int], relayed_bytes: dict[int, int], dropped: dict[str, int],
              facts: dict[str, Any], in_flight: list[bytes]) -> dict[str, Any]:
    """The run in the shape the network process reports (for ``reporting.summarize``)."""
    n = scenario.employees_num

    def name(index: int) -> str:
        return "users" if index == n else "employer" if index == EMPLOYER_INDEX \
            else f"E{index}"

    return {"finished": finished, "ticks": ticks,
            "reports": {**reports, "users": users.report()},
            "employer": employer.report(), "stopped_by": stopped_by,
            "cut_off": {f"E{i}": "pipe closed (process gone)" for i in crashed},
            "relayed_bytes": {name(i): b for i, b in sorted(relayed_bytes.items())},
            "dropped": dropped, "in_flight": in_flight, **facts}
