"""Validation: every reason a scenario cannot run, found before any process starts."""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Sequence

from simulation.config.grammars import (
    COMPUTATION_OF_PROFILE,
    PROCESS_WIDE_COMPUTATIONS,
    SIMULATED_ONLY,
)
from simulation.config.knobs import (
    BACKENDS,
    MAX_PROCESS_EMPLOYEES,
    TRAINERS,
    VERIFICATIONS,
    Scenario,
    ScenarioError,
    default_scenario,
)
from simulation.config.topology import FORK_CHOICES, PLACEMENTS


def problems(s: Scenario) -> list[str]:
    """Every reason this scenario cannot run; empty when it can."""
    out: list[str] = []
    defaults = default_scenario()
    for f in dataclasses.fields(s):
        value, expected = getattr(s, f.name), type(getattr(defaults, f.name))
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              if expected is float else
              isinstance(value, expected) and not isinstance(value, bool))
        if not ok:
            out.append(f"{f.name.upper()} must be {expected.__name__}, got {value!r}")
        elif isinstance(value, float) and not math.isfinite(value):
            out.append(f"{f.name.upper()} must be a finite number, got {value!r}")
    if out:
        return out  # range checks below assume the types

    def at_least(name: str, low: float) -> None:
        value = getattr(s, name.lower())
        if value < low:
            out.append(f"{name} must be at least {low}, got {value}")

    for name in ("EMPLOYEES_NUM", "STAKEHOLDERS_NUM", "EMPLOYER_CONFIDENCE",
                 "NETWORK_DELAY_TICKS", "MAX_TICKS", "ROUND_TIMEOUT_TICKS", "GENESIS_STAKE",
                 "USER_MAX_GENESIS_BALANCE", "ITERATIONS_PER_EPOCH"):
        at_least(name, 1)
    for name in ("USERS_NUM", "MAX_TRANSACTIONS_NUM", "MAX_BLOCK_TRANSACTIONS",
                 "TICK_SECONDS", "TF_SEED", "SEED", "EVENT_LOG_MB"):
        at_least(name, 0)
    at_least("TARGET_BLOCKCHAIN_LENGTH", 2)
    if s.party_timeout_seconds <= 0:
        out.append(f"PARTY_TIMEOUT_SECONDS must be positive, got {s.party_timeout_seconds}")
    if s.stakeholders_num > s.employees_num:
        out.append(f"STAKEHOLDERS_NUM ({s.stakeholders_num}) exceeds EMPLOYEES_NUM "
                   f"({s.employees_num}): no header could find its stakeholders")
    if s.employer_confidence > s.employees_num:
        out.append(f"EMPLOYER_CONFIDENCE ({s.employer_confidence}) exceeds EMPLOYEES_NUM "
                   f"({s.employees_num}): no header could carry enough declarations")
    for name in ("TD_COINSTAKE", "BH_COINSTAKE"):
        value = getattr(s, name.lower())
        if not 0 < value < 2**256:
            out.append(f"{name} must lie in (0, 2**256), got {value}")
    if not 0 <= s.trainer_share <= 1:
        out.append(f"TRAINER_SHARE must lie in [0, 1], got {s.trainer_share}")
    if not 0 <= s.transaction_probability <= 1:
        out.append(f"TRANSACTION_PROBABILITY must lie in [0, 1], got "
                   f"{s.transaction_probability}")
    # TASK is checked against its task (training set size, batch size) by
    # ml.tasks.task_problems, before any process starts: finding it may load a file.
    if not s.task.strip():
        out.append("TASK must not be empty (the default is mnist-dnn)")
    if s.max_transactions_num > 0 and s.users_num < 2:
        out.append(f"MAX_TRANSACTIONS_NUM is {s.max_transactions_num} but transfers need "
                   f"at least 2 users (USERS_NUM is {s.users_num})")
    for name in ("DOUBLE_SPEND_PROBABILITY", "REPLAY_PROBABILITY"):
        value = getattr(s, name.lower())
        if not 0 <= value <= 1:
            out.append(f"{name} must lie in [0, 1], got {value}")
    if s.max_wall_seconds <= 0:
        out.append(f"MAX_WALL_SECONDS must be positive, got {s.max_wall_seconds}")
    # The text knobs are parsed through the scenario's own cached properties: a valid
    # scenario then carries its parsed values, and no consumer parses them again.
    try:
        s.latency_model  # noqa: B018 - parses and keeps
    except ValueError as exc:
        out.append(f"LATENCY: {exc}")
    at_least("TICK_MILLISECONDS", 1)
    at_least("BANDWIDTH", 0)
    if not 0 <= s.loss_probability < 1:
        out.append(f"LOSS_PROBABILITY must lie in [0, 1), got {s.loss_probability}")
    for name, parsed in (("PARTITIONS", "partition_windows"), ("CHURN", "churn_windows")):
        try:
            getattr(s, parsed)
        except ValueError as exc:
            out.append(f"{name}: {exc}")
    try:
        s.speed_factors  # noqa: B018 - parses and keeps
        process_wide = sorted({name for name in s.hardware_names
                               if COMPUTATION_OF_PROFILE.get(name) in
                               PROCESS_WIDE_COMPUTATIONS})
        simulated_only = sorted({name for name in s.hardware_names
                                 if COMPUTATION_OF_PROFILE.get(name) in SIMULATED_ONLY})
        if simulated_only and s.trainer == "keras":
            out.append(f"HARDWARE profile(s) {', '.join(simulated_only)} need a GPU this "
                       f"machine does not have: with TRAINER hash they are simulated")
        if process_wide and s.trainer == "keras" and s.backend == "ray":
            out.append(f"HARDWARE profile(s) {', '.join(process_wide)} set TensorFlow for a "
                       f"whole process, and a Ray shard hosts many employees: use BACKEND "
                       f"process")
    except ValueError as exc:
        out.append(f"HARDWARE: {exc}")
    at_least("STAGE_TICKS", 0)
    if s.verification not in VERIFICATIONS:
        out.append(_not_one_of("VERIFICATION", s.verification, VERIFICATIONS))
    if not 0 < s.tolerance <= 1:
        out.append(f"TOLERANCE must lie in (0, 1], got {s.tolerance}")
    if not 0 < s.learning_rate <= 1:
        out.append(f"LEARNING_RATE must lie in (0, 1], got {s.learning_rate}")
    if not 0 < s.poison_rate <= 1:
        out.append(f"POISON_RATE must lie in (0, 1], got {s.poison_rate}")
    at_least("CRASH_AT_TICK", 0)
    at_least("GRIND_TRIES_PER_TICK", 1)
    at_least("TICK_WINDOW", 1)
    if s.max_header_declarations < s.employer_confidence:
        out.append(f"MAX_HEADER_DECLARATIONS ({s.max_header_declarations}) is below "
                   f"EMPLOYER_CONFIDENCE ({s.employer_confidence}): no header could carry "
                   f"enough declarations")
    try:
        s.opened_rules  # noqa: B018 - parses and keeps
    except ValueError as exc:
        out.append(f"OPEN_RULES: {exc}")
    try:
        counts = s.adversary_counts
    except ValueError as exc:
        out.append(f"ADVERSARIES: {exc}")
    else:
        total = sum(counts.values())
        if total > s.employees_num:
            out.append(f"ADVERSARIES lists {total} adversaries but EMPLOYEES_NUM is "
                       f"{s.employees_num}")
        elif total == s.employees_num and total > 0:
            out.append("ADVERSARIES leaves no honest employee: at least one is needed")
        if s.adversary_placement == "employer" and total == 0:
            out.append("ADVERSARY_PLACEMENT employer (an eclipse) needs adversaries: "
                       "ADVERSARIES is empty")
    out.extend(_topology_problems(s))
    if s.trainer not in TRAINERS:
        out.append(_not_one_of("TRAINER", s.trainer, TRAINERS))
    if s.backend == "process" and s.employees_num > MAX_PROCESS_EMPLOYEES:
        out.append(f"EMPLOYEES_NUM ({s.employees_num}) exceeds the process backend's "
                   f"limit of {MAX_PROCESS_EMPLOYEES}: Python's fork server passes at most "
                   f"256 file descriptors to the network process, one per employee's pipe; "
                   f"use BACKEND ray")
    if s.stage_cache and s.trainer != "keras":
        out.append("STAGE_CACHE needs TRAINER keras (the hash trainer has nothing worth "
                   "caching)")
    if s.backend not in BACKENDS:
        out.append(_not_one_of("BACKEND", s.backend, BACKENDS))
    if s.backend == "lockstep" and s.trainer != "hash":
        out.append("BACKEND lockstep steps every employee in one process and runs the hash "
                   "trainer only: set TRAINER hash (real training needs BACKEND process "
                   "or ray)")
    at_least("RAY_SHARDS", 0)
    if s.ray_address and s.backend != "ray":
        out.append(f"RAY_ADDRESS is {s.ray_address!r} but BACKEND is {s.backend!r}")
    if not s.log_file:
        out.append("LOG_FILE must not be empty")
    return out


def _topology_problems(s: Scenario) -> list[str]:
    """TOPOLOGY, EMPLOYER_PEERS and ADVERSARY_PLACEMENT: the graph is built here once
    (``Scenario.peer_graph``), so a bad file or an impossible draw stops the run now."""
    out = []
    if not 0 <= s.employer_peers <= s.employees_num:
        out.append(f"EMPLOYER_PEERS must lie in 0 .. EMPLOYEES_NUM ({s.employees_num}), "
                   f"got {s.employer_peers}")
    elif s.employer_peers and s.topology.strip() == "full":
        out.append("EMPLOYER_PEERS needs a TOPOLOGY other than full: in the full mesh "
                   "every party hears every other and nothing is relayed")
    if s.adversary_placement not in PLACEMENTS:
        out.append(_not_one_of("ADVERSARY_PLACEMENT", s.adversary_placement, PLACEMENTS))
    elif s.adversary_placement == "employer" and s.employer_peers == 0:
        out.append("ADVERSARY_PLACEMENT employer needs EMPLOYER_PEERS > 0: with every "
                   "employee as the employer's peer there is no slot to take")
    if s.employer_fork_choice not in FORK_CHOICES:
        out.append(_not_one_of("EMPLOYER_FORK_CHOICE", s.employer_fork_choice, FORK_CHOICES))
    if out:
        return out
    try:
        s.peer_graph  # noqa: B018 - builds and keeps
    except ValueError as exc:
        out.append(f"TOPOLOGY: {exc}")
    return out


def _not_one_of(knob: str, value: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, choices, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{knob} must be one of {', '.join(choices)}, got {value!r}{hint}"


def validated(s: Scenario) -> Scenario:
    found = problems(s)
    if found:
        raise ScenarioError(found)
    return s
