"""What can go wrong between two parties: loss (LOSS_PROBABILITY), splits (PARTITIONS)
and employees going offline (CHURN). Upload bandwidth is the router's business (it
needs the sender's queue).

Like the latencies, every loss draw is a hash of SEED, sender, receiver and message
number, so both backends lose the same copies.
"""

from __future__ import annotations

import hashlib

from simulation.config import Scenario


class Conditions:
    def __init__(self, seed: int, loss: float,
                 partitions: list[tuple[tuple[frozenset[int], ...], int, int]],
                 churn: dict[int, list[tuple[int, int]]]):
        self.loss = loss
        self.partitions = partitions
        self.churn = churn
        self._seed = seed.to_bytes(8, "big", signed=False)

    @classmethod
    def of(cls, scenario: Scenario) -> Conditions | None:
        """None when nothing is lost, split or offline."""
        partitions = scenario.partition_windows
        churn = scenario.churn_windows
        if scenario.loss_probability == 0 and not partitions and not churn:
            return None
        return cls(scenario.seed, scenario.loss_probability, partitions, churn)

    def online(self, party: int, tick: int) -> bool:
        """False while an employee is offline (it neither acts nor receives)."""
        return not any(start <= tick < end for start, end in self.churn.get(party, ()))

    def offline_at_end(self, tick: int) -> list[int]:
        return sorted(p for p in self.churn if not self.online(p, tick))

    @staticmethod
    def _group(groups: tuple[frozenset[int], ...], party: int) -> int:
        for number, group in enumerate(groups):
            if party in group:
                return number
        return 0  # not named: with the first group

    def reachable(self, sender: int, receiver: int, tick: int) -> bool:
        """False when a split active at ``tick`` puts them in different groups."""
        for groups, start, end in self.partitions:
            if start <= tick < end and (self._group(groups, sender)
                                        != self._group(groups, receiver)):
                return False
        return True

    def lost(self, sender: int, receiver: int, sequence: int) -> bool:
        if self.loss == 0:
            return False
        digest = hashlib.sha256(b"PoT-loss" + self._seed
                                + sender.to_bytes(8, "big", signed=True)
                                + receiver.to_bytes(8, "big", signed=True)
                                + sequence.to_bytes(8, "big")).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.loss
