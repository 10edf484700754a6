"""The network process: drives the ticks, relays every message, notices dead parties.

The ticks are the shared conductor's (``conductor.conduct``: who is live, what the
``Router`` delivers, when the run ends); this process is its host over pipes. At tick t it
sends each live party ``tick(t, deliveries)`` and waits for every ``done(t, outgoing,
status)``. A party whose pipe closes, whose frame is undecodable or too large, or that
does not answer within PARTY_TIMEOUT_SECONDS is cut off and the run goes on.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import Any

from simulation.config import Role, Scenario
from simulation.net import frames
from simulation.net.conductor import (
    NO_HONEST_LEFT,
    Answer,
    Window,
    conduct,
    final_plan,
    result_of,
)
from simulation.net.frames import F
from simulation.net.logs import log_happenings, log_to_queue
from simulation.net.shutdown import failure_line, ignore_interrupts, stop_requested
from simulation.net.watch import Watch
from simulation.protocol.encoding import DecodeError
from simulation.protocol.names import EMPLOYER_PARTY, employee_name, party_name
from simulation.protocol.records import EmployeeReport, RunResult, Status

log = logging.getLogger("pot.network")
# How a dead process shows: EOF, a reset or a broken pipe, depending on the moment.
PROCESS_GONE = "pipe closed (process gone)"
# Wall seconds the parties get for their reports when the run was interrupted.
INTERRUPTED_STOP_SECONDS = 15.0


@dataclass
class Party:
    index: int  # employees 0..n-1; the users process is n
    name: str
    conn: Connection
    alive: bool = True
    cut_off_reason: str = ""
    failure: str = ""  # the traceback a failed party sent before it exited
    status: Status | None = None  # an employee's last (the users have none)


class Network:
    def __init__(self, scenario: Scenario, parties: list[Party], honest: set[int],
                 launched: float | None = None, roles: dict[int, Role] | None = None,
                 stop_receiver: Connection | None = None):
        self.scenario = scenario
        self.roles = roles or {}
        self.launched = launched  # time.monotonic() when the parent began the run
        self.parties = parties
        self.honest = honest
        self.relayed: Counter[int] = Counter()  # messages relayed, by sender
        self.tick = -1
        self.stopped_by = ""
        self.stop_receiver = stop_receiver  # the parent's stop requests (shutdown.py)
        self.interrupted = ""  # why the parent asked the run to stop early, if it did

    def live(self) -> list[Party]:
        return [p for p in self.parties if p.alive]

    def cut_off(self, party: Party, reason: str) -> None:
        if party.alive:
            party.alive = False
            party.cut_off_reason = reason
            log.warning("network cut off %s: %s", party.name, reason)
            try:
                party.conn.close()
            except OSError:
                pass

    def send(self, party: Party, data: bytes) -> None:
        try:
            party.conn.send_bytes(data)
        except (OSError, ValueError):
            self.cut_off(party, PROCESS_GONE)

    def collect(self, waiting: list[Party], expected: type[F], deadline: float,
                tick: int | None = None) -> dict[int, F]:
        """One frame of type ``expected`` from each party, until the deadline."""
        got: dict[int, F] = {}
        pending = {p.conn: p for p in waiting if p.alive}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for party in pending.values():
                    self.cut_off(party, f"no {expected.KIND} frame within "
                                        f"{self.scenario.party_timeout_seconds:g} s")
                break
            for conn in wait(list(pending), timeout=remaining):
                party = pending.pop(conn)  # type: ignore[arg-type]
                try:
                    frame = frames.read(party.conn.recv_bytes(frames.MAX_CONTROL_FRAME_BYTES),
                                        expected, frames.Failed)
                    if isinstance(frame, frames.Failed):
                        party.failure = frame.error
                        self.cut_off(party, f"crashed: {failure_line(party.failure)}"[:300])
                        continue
                    assert isinstance(frame, expected)
                    if tick is not None and isinstance(frame, frames.Done) and frame.t != tick:
                        raise DecodeError(f"answered tick {frame.t!r}, not {tick}")
                    got[party.index] = frame
                except (EOFError, ConnectionResetError, BrokenPipeError):
                    self.cut_off(party, PROCESS_GONE)
                except OSError as exc:
                    reason = ("frame larger than the network accepts"
                              if "bad message length" in str(exc) else f"pipe error ({exc})")
                    self.cut_off(party, reason)
                except DecodeError as exc:
                    self.cut_off(party, f"bad frame: {exc}")
        return got

    def name_of(self, index: int) -> str:
        return party_name(index) if index == EMPLOYER_PARTY else self.parties[index].name

    def unit_of(self, index: int) -> int:
        """``conductor.Host``: every party (process) is a unit of its own."""
        return index

    def advance(self, windows: dict[int, Window]) -> dict[int, list[dict[int, Answer | None]]]:
        """``conductor.Host``: one tick (the conductor is asked for windows of one) to
        every party in ``windows`` at once; a party that answers badly or not at all
        within PARTY_TIMEOUT_SECONDS is cut off and answers None."""
        tick = self.tick = next(iter(windows.values())).first  # the same for every party
        asked = [self.parties[index] for index in windows]
        for party in asked:
            self.send(party, frames.Tick(tick, tuple(windows[party.index].deliveries[0]
                                                     .get(party.index, []))).to_wire())
        frames_in = self.collect(asked, frames.Done, time.monotonic()
                                 + self.scenario.party_timeout_seconds, tick)
        out: dict[int, list[dict[int, Answer | None]]] = {}
        for party in asked:
            out[party.index] = [{party.index: self._answer(party, frames_in.get(party.index))}]
        return out

    def _answer(self, party: Party, frame: frames.Done | None) -> Answer | None:
        if frame is None or not party.alive:
            return None
        if frame.status is not None:
            party.status = frame.status
        self.relayed[party.index] += len(frame.out) + len(frame.to)
        return Answer(frame.out, frame.to, party.status)

    def _stop_reason(self) -> str | None:
        self.interrupted = stop_requested(self.stop_receiver) or ""
        if self.interrupted:
            log.warning("network: %s; stopping before tick %d", self.interrupted,
                        self.tick + 1)
            return self.interrupted
        return None

    def run(self) -> RunResult:
        s = self.scenario
        self.started = self.launched or time.monotonic()
        ready = self.collect(self.live(), frames.Hello, time.monotonic() + s.party_timeout_seconds)
        startup_seconds = time.monotonic() - self.started
        log.info("network: %d of %d parties ready after %.1f s", len(ready),
                 len(self.parties), startup_seconds)
        run_started = time.monotonic()
        watch = Watch(s, self.started, lambda: (
            sum(1 for p in self.live() if p.index < s.employees_num), s.employees_num),
            users_down=lambda: not self.parties[s.employees_num].alive)
        # The employees log their event log records themselves; the employer's light
        # client runs in the conductor, here.
        done = conduct(s, self, self.honest, stop_reason=self._stop_reason,
                       max_window=1, after_tick=watch,
                       crashed=[p.index for p in self.parties if not p.alive],
                       on_happenings=log_happenings)
        run_seconds = time.monotonic() - run_started
        self.tick, self.stopped_by = done.ticks, done.stopped_by
        if done.stopped_by == NO_HONEST_LEFT:
            log.error("network: no live honest employee is left")
        if not done.finished:
            log.error("network: the honest employees did not converge on %d blocks by "
                      "tick %d (stopped by %s)", s.target_blockchain_length, self.tick,
                      self.stopped_by)
        n = s.employees_num
        heights = {p.index: status.height if (status := done.statuses.get(p.index)) else 0
                   for p in self.live() if p.index < n}
        reports = self.stop(final_plan(s, self.roles, heights, done.employer))
        result = result_of(s, done.finished, done.ticks, done.stopped_by, reports,
                           done.employer, done.crashed, done.relayed_bytes, done.dropped,
                           done.facts, done.in_flight, done.router)
        return replace(
            result, interrupted=bool(self.interrupted), startup_seconds=startup_seconds,
            run_seconds=run_seconds,
            cut_off={p.name: p.cut_off_reason for p in self.parties if not p.alive},
            failures={p.name: p.failure for p in self.parties if p.failure},
            relayed={self.parties[i].name: n for i, n in sorted(self.relayed.items())})

    def stop(self, plan: dict[int, list[int]]) -> dict[str, Any]:
        """Ask every live party for its report; the evaluators (``plan``) first evaluate
        their models. After an interrupt the parties get less time: the person who
        pressed Ctrl-C is waiting."""
        for party in self.live():
            self.send(party, frames.StopAndReport(tuple(plan.get(party.index, []))).to_wire())
        timeout = self.scenario.party_timeout_seconds
        if self.interrupted:
            timeout = min(timeout, INTERRUPTED_STOP_SECONDS)
        answers = self.collect(self.live(), frames.PartyReport, time.monotonic() + timeout)
        reports: dict[str, Any] = {}
        for i, frame in answers.items():
            party = self.parties[i]
            if i < self.scenario.employees_num and frame.report is not None:
                try:
                    EmployeeReport.from_wire(frame.report)  # its form, before the summary
                except DecodeError as exc:
                    self.cut_off(party, f"bad report: {exc}")
                    continue
            reports[party.name] = frame.report
        return reports


def network_main(scenario: Scenario, conns: list[Connection], result_conn: Connection,
                 log_queue: Any, roles: dict[int, Role], launched: float,
                 stop_receiver: Connection | None = None) -> None:
    ignore_interrupts()
    log_to_queue(log_queue)
    log.debug("network ready (pid %d)", os.getpid())
    n = scenario.employees_num
    parties = [Party(i, employee_name(i), conn) for i, conn in enumerate(conns[:n])]
    parties.append(Party(n, "users", conns[n]))
    honest = {i for i in range(n) if i not in roles}
    network = Network(scenario, parties, honest, launched, roles, stop_receiver)
    try:
        result = network.run()
    except Exception:
        log.exception("network process failed")
        result = RunResult(finished=False, error="network process failed", reports={},
                           ticks=network.tick)
    try:
        result_conn.send_bytes(frames.Result(result.to_wire()).to_wire())
    except (OSError, ValueError):
        log.warning("network: the parent is gone; the result is dropped")

