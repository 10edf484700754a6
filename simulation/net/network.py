"""The network process: drives the ticks, relays every message, notices dead parties.

At tick t it sends each live party ``tick(t, deliveries)`` and waits for every
``done(t, outgoing, status)``; the outgoing messages are delivered at t + delay by the
pure ``Router``. A party whose pipe closes, whose frame is undecodable or too large, or
that does not answer within PARTY_TIMEOUT_SECONDS is cut off and the run goes on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from simulation.config import Scenario
from simulation.net import frames
from simulation.net.logs import PROGRESS_LOGGER, log_to_queue
from simulation.net.relay import (
    Router,
    evaluation_plan,
    network_facts,
    planned_behaviour,
    target_reached,
)
from simulation.net.shutdown import failure_line, ignore_interrupts, stop_requested
from simulation.node.employer import EMPLOYER_INDEX, Employer
from simulation.node.genesis import genesis_of
from simulation.protocol.encoding import DecodeError, sha256

log = logging.getLogger("pot.network")
# How a dead process shows: EOF, a reset or a broken pipe, depending on the moment.
PROCESS_GONE = "pipe closed (process gone)"
# Wall seconds the parties get for their reports when the run was interrupted.
INTERRUPTED_STOP_SECONDS = 15.0
progress = logging.getLogger(PROGRESS_LOGGER)


@dataclass
class Party:
    index: int  # employees 0..n-1; the users process is n
    name: str
    conn: Connection
    alive: bool = True
    cut_off_reason: str = ""
    failure: str = ""  # the traceback a failed party sent before it exited
    status: dict[str, Any] = field(default_factory=dict)


class Network:
    def __init__(self, scenario: Scenario, parties: list[Party], honest: set[int],
                 launched: float | None = None, roles: dict[int, str] | None = None,
                 employer: Employer | None = None, stop_receiver: Connection | None = None):
        self.scenario = scenario
        self.roles = roles or {}
        self.employer = employer  # the light client hears everything that is relayed
        self.launched = launched  # time.monotonic() when the parent began the run
        self.parties = parties
        self.honest = honest
        self.router = Router.for_scenario(scenario)
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

    def collect(self, waiting: list[Party], expected: str, deadline: float,
                tick: int | None = None) -> dict[int, dict[str, Any]]:
        """One frame of type ``expected`` from each party, until the deadline."""
        got: dict[int, dict[str, Any]] = {}
        pending = {p.conn: p for p in waiting if p.alive}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for party in pending.values():
                    self.cut_off(party, f"no {expected} frame within "
                                        f"{self.scenario.party_timeout_seconds:g} s")
                break
            for conn in wait(list(pending), timeout=remaining):
                party = pending.pop(conn)  # type: ignore[arg-type]
                try:
                    frame = frames.unpack(party.conn.recv_bytes(frames.MAX_CONTROL_FRAME_BYTES))
                    if frame["type"] == "failed":
                        party.failure = str(frame.get("error", ""))
                        self.cut_off(party, f"crashed: {failure_line(party.failure)}"[:300])
                        continue
                    if frame["type"] != expected:
                        raise DecodeError(f"expected a {expected} frame, got "
                                          f"{frame['type']!r}"[:80])
                    if tick is not None and frame.get("t") != tick:
                        raise DecodeError(f"answered tick {frame.get('t')!r}, not {tick}")
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

    def honest_statuses(self) -> list[dict[str, Any]]:
        """The last status of every live honest employee that is online now."""
        return [p.status for p in self.live() if p.index in self.honest
                and self.router.online(p.index, self.tick)]

    def name_of(self, index: int) -> str:
        return "employer" if index == EMPLOYER_INDEX else self.parties[index].name

    def run(self) -> dict[str, Any]:
        s = self.scenario
        timeout = s.party_timeout_seconds
        started = time.monotonic()
        ready = self.collect(self.live(), "ready", time.monotonic() + timeout)
        startup_seconds = time.monotonic() - (self.launched or started)
        log.info("network: %d of %d parties ready after %.1f s", len(ready),
                 len(self.parties), startup_seconds)
        run_started = time.monotonic()
        finished = False
        best_height = 0
        for tick in range(s.max_ticks + 1):
            self.interrupted = stop_requested(self.stop_receiver) or ""
            if self.interrupted:
                log.warning("network: %s; stopping before tick %d", self.interrupted, tick)
                self.stopped_by = self.interrupted
                break
            self.tick = tick
            tick_started = time.monotonic()
            due = self.router.take(tick)
            live = [p for p in self.live() if self.router.online(p.index, tick)]
            for party in live:
                self.send(party, frames.pack("tick", t=tick,
                                             msgs=Router.for_party(due, party.index)))
            if self.employer is not None:
                asked = self.employer.step(tick, Router.for_party(due, EMPLOYER_INDEX))
                self.router.submit(tick, EMPLOYER_INDEX, asked.outgoing, asked.direct)
            answers = self.collect(live, "done", time.monotonic() + timeout, tick)
            for index in sorted(answers):
                frame = answers[index]
                outgoing, direct = frame.get("out"), frame.get("to", [])
                party = self.parties[index]
                if not isinstance(outgoing, list) or not all(
                        isinstance(m, bytes) for m in outgoing):
                    self.cut_off(party, "bad frame: outgoing is not a list of bytes")
                    continue
                if not isinstance(direct, list) or not all(
                        isinstance(d, list) and len(d) == 2 and type(d[0]) is int
                        and isinstance(d[1], bytes) for d in direct):
                    self.cut_off(party, "bad frame: direct messages are not "
                                        "[receiver, bytes] pairs")
                    continue
                self.router.submit(tick, index, outgoing, [(r, m) for r, m in direct])
                self.relayed[index] += len(outgoing) + len(direct)
                if isinstance(frame.get("status"), dict):
                    party.status = frame["status"]
            if not any(p.index in self.honest for p in self.live()):
                log.error("network: no live honest employee is left")
                break
            statuses = self.honest_statuses()
            height = max((st.get("height", 0) for st in statuses), default=0)
            if height > best_height:
                best_height = height
                progress.info("tick %d: longest honest chain has %d blocks (live %d/%d)",
                              tick, height + 1, len(self.live()), len(self.parties))
            if target_reached(statuses, s.target_blockchain_length):
                finished = True
                break
            if time.monotonic() - (self.launched or started) > s.max_wall_seconds:
                log.error("network: wall-clock guard: %.0f s passed (MAX_WALL_SECONDS)",
                          s.max_wall_seconds)
                self.stopped_by = "MAX_WALL_SECONDS"
                break
            if s.tick_seconds > 0:
                time.sleep(max(0.0, s.tick_seconds - (time.monotonic() - tick_started)))
        run_seconds = time.monotonic() - run_started
        if finished:
            self.stopped_by = "target reached"
        else:
            self.stopped_by = self.stopped_by or (
                "MAX_TICKS" if self.tick >= s.max_ticks else "no live honest employee")
            log.error("network: the honest employees did not converge on %d blocks by "
                      "tick %d (stopped by %s)", s.target_blockchain_length, self.tick,
                      self.stopped_by)
        reports = self.stop()
        return {
            "finished": finished,
            "interrupted": bool(self.interrupted),
            "stopped_by": self.stopped_by,
            "employer": self.employer.report() if self.employer is not None else None,
            "ticks": self.tick,
            "startup_seconds": startup_seconds,
            "run_seconds": run_seconds,
            "reports": reports,
            "in_flight": [sha256(data) for data in self.router.in_flight()],
            "cut_off": {p.name: p.cut_off_reason for p in self.parties if not p.alive},
            "failures": {p.name: p.failure for p in self.parties if p.failure},
            "relayed": {self.parties[i].name: n for i, n in sorted(self.relayed.items())},
            "relayed_bytes": {self.name_of(i): n
                              for i, n in sorted(self.router.bytes_sent.items())},
            "dropped": dict(self.router.dropped),
            **network_facts(self.router, self.tick),
        }

    def stop(self) -> dict[str, Any]:
        """Ask every live party for its report; the evaluators (``evaluation_plan``)
        first evaluate their models. After an interrupt the parties get less time: the
        person who pressed Ctrl-C is waiting."""
        n = self.scenario.employees_num
        plan = evaluation_plan(
            [(p.index, planned_behaviour(self.scenario, self.roles, p.index),
              p.status.get("height", 0)) for p in self.live() if p.index < n],
            self.employer.tree.tip.height if self.employer is not None else None)
        for party in self.live():
            self.send(party, frames.pack("stop", evaluate=plan.get(party.index, [])))
        timeout = self.scenario.party_timeout_seconds
        if self.interrupted:
            timeout = min(timeout, INTERRUPTED_STOP_SECONDS)
        answers = self.collect(self.live(), "report", time.monotonic() + timeout)
        return {self.parties[i].name: frame.get("report") for i, frame in answers.items()}


def network_main(scenario: Scenario, conns: list[Connection], result_conn: Connection,
                 log_queue: Any, roles: dict[int, str], launched: float,
                 stop_receiver: Connection | None = None) -> None:
    ignore_interrupts()
    log_to_queue(log_queue)
    n = scenario.employees_num
    parties = [Party(i, f"E{i}", conn) for i, conn in enumerate(conns[:n])]
    parties.append(Party(n, "users", conns[n]))
    honest = {i for i in range(n) if i not in roles}
    employer = Employer(scenario, genesis_of(scenario))
    network = Network(scenario, parties, honest, launched, roles, employer, stop_receiver)
    try:
        result = network.run()
    except Exception:
        log.exception("network process failed")
        result = {"finished": False, "error": "network process failed",
                  "reports": {}, "ticks": network.tick}
    try:
        result_conn.send_bytes(frames.pack("result", **result))
    except (OSError, ValueError):
        log.warning("network: the parent is gone; the result is dropped")

