"""The genesis block a scenario starts from (the same in every process that builds it)."""

from __future__ import annotations

from simulation.config import Scenario
from simulation.ml.tasks import model_id_of
from simulation.protocol.ledger import Genesis, make_genesis


def genesis_of(scenario: Scenario) -> Genesis:
    return make_genesis(
        seed=scenario.seed,
        model_id=model_id_of(scenario),
        employees_num=scenario.employees_num,
        users_num=scenario.users_num,
        genesis_stake=scenario.genesis_stake,
        user_max_balance=scenario.user_max_genesis_balance,
    )
