"""The network's pure logic: which bytes reach whom at which tick, and when a run ends.

The network process (``network``) and the in-process driver (``lockstep``) share it, so
the tests of the protocol exercise the same delivery order as a real run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Envelope:
    send_tick: int
    sender: int
    sequence: int
    data: bytes


class Router:
    """Broadcast with a fixed delay: a message sent at tick t by party i reaches every
    other live employee at tick t + delay, in (send tick, sender, sequence) order."""

    def __init__(self, delay: int):
        if delay < 1:
            raise ValueError("delay must be at least 1 tick")
        self.delay = delay
        self._scheduled: dict[int, list[Envelope]] = defaultdict(list)
        self._sequence: dict[int, int] = defaultdict(int)

    def submit(self, tick: int, sender: int, outgoing: Iterable[bytes]) -> None:
        bucket = self._scheduled[tick + self.delay]
        for data in outgoing:
            bucket.append(Envelope(tick, sender, self._sequence[sender], data))
            self._sequence[sender] += 1

    def take(self, tick: int) -> list[Envelope]:
        """Every envelope due at ``tick``, in canonical order; forgets them."""
        due = self._scheduled.pop(tick, [])
        due.sort(key=lambda e: (e.send_tick, e.sender, e.sequence))
        return due

    @staticmethod
    def for_party(due: Sequence[Envelope], party: int) -> list[bytes]:
        return [e.data for e in due if e.sender != party]

    def in_flight(self) -> list[bytes]:
        """Messages sent but not delivered yet (the run may end before they arrive)."""
        return [e.data for tick in sorted(self._scheduled) for e in self._scheduled[tick]]


def target_reached(statuses: Sequence[dict[str, Any]], target_length: int) -> bool:
    """True when every given (live honest) employee's chain holds ``target_length``
    blocks and they all have the same block at height target_length - 1."""
    if not statuses:
        return False
    anchors = {s.get("anchor") for s in statuses}
    if None in anchors or len(anchors) != 1:
        return False
    return all(s["height"] + 1 >= target_length for s in statuses)
