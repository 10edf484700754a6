"""The employer's light client: it delegated the training and does not train.

It follows the longest chain of structurally valid blocks (signatures, lottery,
stakeholders, ledger, declarations' commitments against the revealed secret) without
re-training, and takes the model that chain certifies. It is the honest employee's state
machine with the ``LightClient`` behaviour: its own-training checks switched off and no
duties, so it sends nothing but block requests when it misses a block (catch-up).
"""

from __future__ import annotations

from simulation.config import Role, Scenario
from simulation.node.behaviour import Behaviour
from simulation.node.employee import Employee
from simulation.protocol.encoding import derive_keypair
from simulation.protocol.ledger import Genesis
from simulation.protocol.messages import AnyMessage
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

    def duties(self) -> None:
        """The employer only listens."""

    def relay(self, message: AnyMessage) -> None:
        """A light client at the edge of the graph forwards nothing."""


def make_employer(scenario: Scenario, genesis: Genesis) -> Employee:
    return Employee(EMPLOYER_PARTY, scenario, genesis, _NoTrainer(),
                    derive_keypair(scenario.seed, "employer", 0), LightClient())
