"""The knobs' values as shipped in simulation/constants.py, to tell a run whose
constants.py was edited (its flags-only re-run command depends on that file). A test
checks that constants.py still holds them: a change of a default changes both."""

from __future__ import annotations

from typing import Any

SHIPPED_DEFAULTS: dict[str, Any] = {
    "EMPLOYEES_NUM": 11,
    "USERS_NUM": 10,
    "MAX_TRANSACTIONS_NUM": 100,
    "TRANSACTION_PROBABILITY": 1.0,
    "STAKEHOLDERS_NUM": 3,
    "TARGET_BLOCKCHAIN_LENGTH": 6,
    "EMPLOYER_CONFIDENCE": 3,
    "SEED": 1,
    "NETWORK_DELAY_TICKS": 1,
    "LATENCY": '',
    "TICK_MILLISECONDS": 100,
    "BANDWIDTH": 0,
    "LOSS_PROBABILITY": 0.0,
    "PARTITIONS": '',
    "CHURN": '',
    "TOPOLOGY": 'full',
    "EMPLOYER_PEERS": 0,
    "ADVERSARY_PLACEMENT": 'random',
    "EMPLOYER_FORK_CHOICE": 'longest',
    "TICK_SECONDS": 0.0,
    "MAX_TICKS": 2000,
    "ROUND_TIMEOUT_TICKS": 20,
    "TICK_WINDOW": 20,
    "MAX_HEADER_DECLARATIONS": 64,
    "OPEN_RULES": '',
    "PARTY_TIMEOUT_SECONDS": 120.0,
    "MAX_WALL_SECONDS": 1800.0,
    "ADVERSARIES": '',
    "POISON_RATE": 0.5,
    "CRASH_AT_TICK": 10,
    "GRIND_TRIES_PER_TICK": 2000,
    "DOUBLE_SPEND_PROBABILITY": 0.0,
    "REPLAY_PROBABILITY": 0.0,
    "GENESIS_STAKE": 1000,
    "USER_MAX_GENESIS_BALANCE": 1000,
    "TRAINER_SHARE": 0.5,
    "MAX_BLOCK_TRANSACTIONS": 50,
    "TD_COINSTAKE": 2**252,
    "BH_COINSTAKE": 2**251,
    "TASK": 'mnist-dnn',
    "TF_SEED": 42,
    "ITERATIONS_PER_EPOCH": 6000,
    "LEARNING_RATE": 0.001,
    "HARDWARE": '',
    "STAGE_TICKS": 0,
    "VERIFICATION": 'exact',
    "TOLERANCE": 0.0001,
    "TRAINER": 'keras',
    "STAGE_CACHE": '',
    "BACKEND": 'process',
    "RAY_ADDRESS": '',
    "RAY_SHARDS": 0,
    "LOG_FILE": 'pot_sim.log',
    "EVENT_LOG_MB": 0,
}


def edited_knobs(knobs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The knobs whose constants.py value is not the shipped one: name -> both."""
    return {name: {"shipped": SHIPPED_DEFAULTS.get(name), "here": value}
            for name, value in knobs.items() if SHIPPED_DEFAULTS.get(name) != value}
