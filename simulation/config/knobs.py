"""The scenario: every knob of ``constants.py``, typed, with the text knobs parsed once.

The knobs, their defaults and their help texts come from ``constants.py`` itself (the
comment lines right above each knob), so the file a researcher edits is the single
source. ``Scenario`` is a frozen dataclass with one lower-case field per knob.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from simulation import constants
from simulation.config.grammars import (
    COMPUTATION_OF_PROFILE,
    EXACT,
    hardware_profiles,
    parse_adversaries,
    parse_churn,
    parse_latency,
    parse_open_rules,
    parse_partitions,
    speed_factor_of,
)
from simulation.config.roles import Role
from simulation.config.topology import PeerGraph, peer_graph_of


@dataclass(frozen=True)
class Scenario:
    employees_num: int
    users_num: int
    max_transactions_num: int
    transaction_probability: float
    stakeholders_num: int
    target_blockchain_length: int
    employer_confidence: int
    seed: int
    network_delay_ticks: int
    latency: str
    tick_milliseconds: int
    bandwidth: int
    loss_probability: float
    partitions: str
    churn: str
    topology: str
    employer_peers: int
    adversary_placement: str
    employer_fork_choice: str
    tick_seconds: float
    max_ticks: int
    round_timeout_ticks: int
    tick_window: int
    max_header_declarations: int
    open_rules: str
    party_timeout_seconds: float
    max_wall_seconds: float
    adversaries: str
    poison_rate: float
    crash_at_tick: int
    grind_tries_per_tick: int
    double_spend_probability: float
    replay_probability: float
    genesis_stake: int
    user_max_genesis_balance: int
    trainer_share: float
    max_block_transactions: int
    td_coinstake: int
    bh_coinstake: int
    task: str
    tf_seed: int
    iterations_per_epoch: int
    learning_rate: float
    hardware: str
    stage_ticks: int
    verification: str
    tolerance: float
    trainer: str
    stage_cache: str
    backend: str
    ray_address: str
    ray_shards: int
    log_file: str
    event_log_mb: int

    def knobs(self) -> dict[str, Any]:
        """Every knob under its constants.py name."""
        return {f.name.upper(): getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> Scenario:
        return dataclasses.replace(self, **changes)

    # The text knobs, parsed once per scenario object (a replaced scenario parses anew).
    # Read them only from a valid scenario (``validated``): they raise ValueError else.

    @cached_property
    def adversary_counts(self) -> dict[Role, int]:
        return parse_adversaries(self.adversaries)

    @cached_property
    def opened_rules(self) -> frozenset[str]:
        return parse_open_rules(self.open_rules)

    @cached_property
    def latency_model(self) -> tuple[str, tuple[float, ...]] | None:
        return parse_latency(self.latency)

    @cached_property
    def partition_windows(self) -> list[tuple[tuple[frozenset[int], ...], int, int]]:
        return parse_partitions(self.partitions, self.employees_num)

    @cached_property
    def churn_windows(self) -> dict[int, list[tuple[int, int]]]:
        return parse_churn(self.churn, self.employees_num)

    @cached_property
    def peer_graph(self) -> PeerGraph | None:
        """The peers of every party (``config.topology``); None for the full mesh."""
        return peer_graph_of(self)

    @cached_property
    def hardware_names(self) -> tuple[str, ...]:
        """The HARDWARE profile of each employee, in index order."""
        return tuple(hardware_profiles(self.hardware, self.employees_num))

    @cached_property
    def speed_factors(self) -> tuple[float, ...]:
        """Each employee's time per stage relative to the reference hardware."""
        return tuple(speed_factor_of(name) for name in self.hardware_names)

    @cached_property
    def computations(self) -> tuple[str, ...]:
        """How each employee computes its training: EXACT, or e.g. "xla"."""
        return tuple(COMPUTATION_OF_PROFILE.get(name, EXACT) for name in self.hardware_names)


TRAINERS = ("keras", "hash")
VERIFICATIONS = ("exact", "tolerant")
BACKENDS = ("process", "ray", "lockstep")
# 240 employees ran here; 250 failed in multiprocessing's fork server ("too many fds").
MAX_PROCESS_EMPLOYEES = 240




def computation_of(scenario: Scenario, index: int) -> str:
    """How employee ``index`` computes its training: EXACT, or e.g. "xla" (the employer,
    index -1, computes nothing: EXACT)."""
    computations = scenario.computations
    return computations[index] if 0 <= index < len(computations) else EXACT


class ScenarioError(ValueError):
    """An invalid scenario; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid scenario:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def knob_names() -> list[str]:
    return [f.name.upper() for f in dataclasses.fields(Scenario)]


def knob_comments() -> dict[str, str]:
    """The comment block right above each assignment in constants.py."""
    source = inspect.getsource(constants)
    lines = source.splitlines()
    comments: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            text: list[str] = []
            row = node.lineno - 2
            while row >= 0 and lines[row].lstrip().startswith("#"):
                text.insert(0, lines[row].lstrip()[1:].strip())
                row -= 1
            comments[node.targets[0].id] = " ".join(text)
    return comments


def default_scenario() -> Scenario:
    values = {name.lower(): getattr(constants, name) for name in knob_names()}
    return Scenario(**values)


def knob_text(value: Any) -> str:
    """A knob's value as main.py reads it back: large powers of two (the coinstakes) as
    2**N, floats as Python writes them."""
    if type(value) is int and value > 2**32 and value & (value - 1) == 0:
        return f"2**{value.bit_length() - 1}"
    return repr(value) if isinstance(value, float) else str(value)
