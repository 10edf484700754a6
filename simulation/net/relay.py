"""The network's pure logic: which bytes reach whom at which tick, and when a run ends.

The network process (``network``) and the in-process driver (``lockstep``) share it, so
the tests of the protocol exercise the same delivery order as a real run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from simulation.config import Scenario
from simulation.net.latency import Latency
from simulation.node.employer import EMPLOYER_INDEX


@dataclass(frozen=True)
class Envelope:
    send_tick: int
    sender: int
    sequence: int
    data: bytes
    receiver: int | None = None  # None: every party but the sender (one shared delay)


class Router:
    """Broadcast: a message sent at tick t by party i reaches every other live employee
    at tick t + delay, in (send tick, sender, sequence) order. With a latency model
    (``latency.Latency``) each of ``receivers`` gets its own copy after its own delay."""

    @classmethod
    def for_scenario(cls, scenario: Scenario) -> Router:
        """NETWORK_DELAY_TICKS, or LATENCY per copy to every employee and the employer."""
        return cls(scenario.network_delay_ticks, Latency.of(scenario),
                   [*range(scenario.employees_num), EMPLOYER_INDEX])

    def __init__(self, delay: int, latency: Latency | None = None,
                 receivers: Sequence[int] = ()):
        if delay < 1:
            raise ValueError("delay must be at least 1 tick")
        self.delay = delay
        self.latency = latency
        self.receivers = list(receivers)
        self._scheduled: dict[int, list[Envelope]] = defaultdict(list)
        self._sequence: dict[int, int] = defaultdict(int)
        self.bytes_sent: dict[int, int] = defaultdict(int)  # by sender, every message

    def submit(self, tick: int, sender: int, outgoing: Iterable[bytes]) -> None:
        bucket = self._scheduled[tick + self.delay]
        for data in outgoing:
            sequence = self._sequence[sender]
            if self.latency is None:
                bucket.append(Envelope(tick, sender, sequence, data))
            else:
                for receiver in self.receivers:
                    if receiver != sender:
                        due = tick + self.latency.delay(sender, receiver, sequence)
                        self._scheduled[due].append(
                            Envelope(tick, sender, sequence, data, receiver))
            self._sequence[sender] += 1
            self.bytes_sent[sender] += len(data)

    def take(self, tick: int) -> list[Envelope]:
        """Every envelope due at ``tick``, in canonical order; forgets them."""
        due = self._scheduled.pop(tick, [])
        due.sort(key=lambda e: (e.send_tick, e.sender, e.sequence))
        return due

    @staticmethod
    def for_party(due: Sequence[Envelope], party: int) -> list[bytes]:
        return [e.data for e in due
                if e.sender != party and (e.receiver is None or e.receiver == party)]

    def in_flight(self) -> list[bytes]:
        """Messages sent but not delivered to everyone yet (the run may end before they
        arrive), each once."""
        seen: set[tuple[int, int]] = set()
        out = []
        for tick in sorted(self._scheduled):
            for e in self._scheduled[tick]:
                if (e.sender, e.sequence) not in seen:
                    seen.add((e.sender, e.sequence))
                    out.append(e.data)
        return out


def target_reached(statuses: Sequence[dict[str, Any]], target_length: int) -> bool:
    """True when every given (live honest) employee's chain holds ``target_length``
    blocks and they all have the same block at height target_length - 1."""
    if not statuses:
        return False
    anchors = {s.get("anchor") for s in statuses}
    if None in anchors or len(anchors) != 1:
        return False
    return all(s["height"] + 1 >= target_length for s in statuses)


# Training behaviours whose model a run reports: the honest one, and the poisoned one the
# colluders share. Other adversaries either do not train (lazy) or train honestly.
EVALUATED_BEHAVIOURS = ("honest", "poisoned")
# An evaluator evaluates at most the last this many stages of its own chain (with Keras an
# evaluation takes about 0.1 s, and an older stage is first replayed from a checkpoint).
MAX_EVALUATED_STAGES = 200


def evaluation_plan(live: Iterable[tuple[int, str, int]], employer_height: int | None
                    ) -> dict[int, list[int]]:
    """Who evaluates which stages when a run stops.

    ``live``: (index, behaviour, chain height) of every live employee, in index order.
    The first live employee of each evaluated behaviour evaluates its model after every
    stage its own chain certifies (0 .. height - 1, the last MAX_EVALUATED_STAGES of them
    in a longer chain), so the summary can show the accuracy along the chain block by
    block; and after the tip stage of every chain the summary judges (the employer's, and
    each evaluated behaviour's own), so it can name the accuracy of the model the employer
    receives and compare every tip's revealed secret with both trainings. (The poisoned
    branch may be a block ahead of the employer, whose copy is still in flight: the
    honest training must reach that stage too.) Every other employee gets an empty list.
    """
    first: dict[str, tuple[int, int]] = {}  # behaviour -> (index, height) of its evaluator
    for index, behaviour, height in live:
        if behaviour in EVALUATED_BEHAVIOURS and behaviour not in first:
            first[behaviour] = (index, height)
    tips = {height - 1 for _, height in first.values() if height >= 1}
    if employer_height:
        tips.add(employer_height - 1)
    plan: dict[int, list[int]] = {index: [] for index, _, _ in live}
    for index, height in first.values():
        own = range(max(0, height - MAX_EVALUATED_STAGES), height)
        plan[index] = sorted(set(own) | tips)
    return plan
