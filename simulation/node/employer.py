"""The employer's light client: it delegated the training and does not train.

It follows the longest chain of structurally valid blocks (signatures, lottery,
stakeholders, ledger, declarations' commitments against the revealed secret) without
re-training, and takes the model that chain certifies. It is the honest employee's state
machine with the ``LightClient`` behaviour: its own-training checks switched off and no
duties, so it sends nothing but block requests when it misses a block (catch-up).
"""

from __future__ import annotations

from collections.abc import Callable

from simulation.config import Role, Scenario
from simulation.node.behaviour import Behaviour
from simulation.node.employee import Employee
from simulation.protocol.encoding import derive_keypair
from simulation.protocol.ledger import Genesis
from simulation.protocol.messages import AnyMessage, WrappedBlock
from simulation.protocol.names import EMPLOYER_PARTY
from simulation.protocol.stages import StageResult


class _NoTrainer:
    model_id = ""

    def result(self, stage: int) -> StageResult:
        raise RuntimeError("the employer does not train")

    def test_accuracy(self, stage: int) -> float:
        raise RuntimeError("the employer does not train")


class LightClient(Behaviour):
    role = Role.EMPLOYER
    trains = False

    def block_weight(self) -> Callable[[WrappedBlock], int] | None:
        """EMPLOYER_FORK_CHOICE "declarers": a block weighs the employees whose
        declarations its header carries, so the employer follows the chain that most
        employees trained for, not the longest: a minority's branch carries at most its
        members per block, however fast it grows. Keys that are not employees weigh
        nothing (under OPEN_RULES "members" a header may carry theirs)."""
        if self.node.scenario.employer_fork_choice != "declarers":
            return None
        members = frozenset(self.node.genesis.employees)
        return lambda block: sum(1 for td in block.header.declarations
                                 if td.author in members)

    def duties(self) -> None:
        """The employer only listens."""

    def relay(self, message: AnyMessage) -> None:
        """A light client at the edge of the graph forwards nothing."""


def make_employer(scenario: Scenario, genesis: Genesis) -> Employee:
    return Employee(EMPLOYER_PARTY, scenario, genesis, _NoTrainer(),
                    derive_keypair(scenario.seed, "employer", 0), LightClient())
