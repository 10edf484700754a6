"""The scenario: every knob of ``constants.py``, typed, validated, and as CLI flags.

The knobs, their defaults and their help texts come from ``constants.py`` itself (the
comment lines right above each knob), so the file a researcher edits is the single
source. ``Scenario`` is a frozen dataclass with one lower-case field per knob.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from simulation import constants


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
    tf_seed: int
    iterations_per_epoch: int
    learning_rate: float
    hardware: str
    stage_ticks: int
    verification: str
    tolerance: float
    trainer: str
    backend: str
    ray_address: str
    ray_shards: int
    log_file: str

    def knobs(self) -> dict[str, Any]:
        """Every knob under its constants.py name."""
        return {f.name.upper(): getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> Scenario:
        return dataclasses.replace(self, **changes)


TRAINERS = ("keras", "hash")
VERIFICATIONS = ("exact", "tolerant")
BACKENDS = ("process", "ray")
# 240 employees ran here; 250 failed in multiprocessing's fork server ("too many fds").
MAX_PROCESS_EMPLOYEES = 240


class Role(StrEnum):
    """What a party of the run is, by the name ADVERSARIES, the logs and the results use.
    Each role but the employer's is a behaviour of an employee (``node.adversaries``,
    ``node.attacks``); an employee without an adversary role is honest."""

    HONEST = "honest"
    POISONED = "poisoned"
    LAZY = "lazy"
    FORGER = "forger"
    EQUIVOCATOR = "equivocator"
    WITHHOLDER = "withholder"
    SPAMMER = "spammer"
    CRASH = "crash"
    SYBIL = "sybil"
    GRINDER = "grinder"
    POISONED_GRINDER = "poisoned-grinder"
    FLOODER = "flooder"
    SPLITTER = "splitter"
    BACKDATER = "backdater"
    JUNK_FILLER = "junk-filler"
    SELFISH = "selfish"
    EMPLOYER = "employer"  # the light client that delegated the training


# The roles ADVERSARIES may give, in the order its error message lists them.
BEHAVIOURS = tuple(r for r in Role if r not in (Role.HONEST, Role.EMPLOYER))
# Behaviours that train on the poisoned data (and so collude: they accept each other's
# training); reports call their training "poisoned".
POISONED_TRAINING = (Role.POISONED, Role.POISONED_GRINDER)
# The hardening rules (protocol.rules), by the names OPEN_RULES takes.
RULE_NAMES = ("members", "tick-window", "lottery-kernel", "draw", "header-cap",
              "fork-evidence", "bounded-state", "personal-secrets", "roy-rules", "tie-break",
              "stage-time", "chain-id")


def training_of(behaviour: str) -> str:
    """The training a behaviour's model comes from: "poisoned" for the poisoned kinds,
    otherwise the behaviour itself."""
    return Role.POISONED if behaviour in POISONED_TRAINING else behaviour


def parse_open_rules(text: str) -> frozenset[str]:
    """ "members,draw" -> {"members", "draw"}; "all" -> every rule; "" -> none.
    ValueError says what is wrong."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if names == ["all"]:
        return frozenset(RULE_NAMES)
    for name in names:
        if name not in RULE_NAMES:
            hint = " (\"all\" stands alone)" if name == "all" else ""
            raise ValueError(f"unknown rule {name!r}{hint} (known: {', '.join(RULE_NAMES)}, "
                             f"or all)")
    if len(set(names)) != len(names):
        raise ValueError(f"a rule is listed twice in {text!r}")
    return frozenset(names)


def _count(name: str, number: str) -> int:
    """The COUNT of a "name:COUNT" item: a non-negative integer, or ValueError."""
    try:
        count = int(number)
    except ValueError:
        raise ValueError(f"count of {name!r} is not an integer: {number!r}") from None
    if count < 0:
        raise ValueError(f"count of {name!r} is negative")
    return count


def parse_adversaries(text: str) -> dict[Role, int]:
    """ "poisoned:4,lazy:1" -> {"poisoned": 4, "lazy": 1}; ValueError says what is wrong."""
    counts: dict[Role, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, number = part.partition(":")
        name = name.strip()
        if not sep:
            raise ValueError(f"{part!r} is not behaviour:count")
        if name not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {name!r} (known: {', '.join(BEHAVIOURS)})")
        count = _count(name, number)
        if name in counts:
            raise ValueError(f"{name!r} is listed twice")
        counts[Role(name)] = count
    return counts
MNIST_TRAIN_SIZE = 60000
LATENCY_KINDS = ("constant", "uniform", "lognormal", "regions")


def parse_latency(text: str) -> tuple[str, tuple[float, ...]] | None:
    """ "uniform:1:8" -> ("uniform", (1.0, 8.0)); "" -> None (NETWORK_DELAY_TICKS for
    every message). ValueError says what is wrong."""
    if not text.strip():
        return None
    kind, *fields = [f.strip() for f in text.split(":")]
    arity = {"constant": 1, "uniform": 2, "lognormal": 2, "regions": 0}
    if kind not in arity:
        raise ValueError(f"unknown latency model {kind!r} (known: {', '.join(LATENCY_KINDS)})")
    if len(fields) != arity[kind]:
        raise ValueError(f"{kind} takes {arity[kind]} number(s) after the name, got "
                         f"{text!r}")
    try:
        values = tuple(float(f) for f in fields)
    except ValueError:
        raise ValueError(f"{text!r} holds something that is not a number") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{text!r} holds a number that is not finite")
    if kind in ("constant", "uniform"):
        if any(v != int(v) for v in values):
            raise ValueError(f"{kind} latencies are whole ticks, got {text!r}")
        if min(values) < 1:
            raise ValueError(f"latencies are at least 1 tick, got {text!r}")
        if kind == "uniform" and values[0] > values[1]:
            raise ValueError(f"uniform:A:B needs A <= B, got {text!r}")
    elif kind == "lognormal":
        median, sigma = values
        if median < 1:
            raise ValueError(f"a lognormal median is at least 1 tick, got {text!r}")
        if sigma < 0:
            raise ValueError(f"a lognormal sigma is not negative, got {text!r}")
    return kind, values


def _index_range(text: str, what: str) -> list[int]:
    """ "3" -> [3]; "0-4" -> [0, 1, 2, 3, 4]."""
    low, sep, high = text.strip().partition("-")
    try:
        first = int(low)
        last = int(high) if sep else first
    except ValueError:
        raise ValueError(f"{what}: {text.strip()!r} is not an employee index or a range "
                         f"A-B") from None
    if first < 0 or last < first:
        raise ValueError(f"{what}: {text.strip()!r} is not a range A-B with 0 <= A <= B")
    return list(range(first, last + 1))


def _window(text: str, what: str) -> tuple[int, int]:
    """ "100:300" -> (100, 300): from tick 100 (included) to tick 300 (excluded)."""
    start, sep, end = text.strip().partition(":")
    try:
        window = (int(start), int(end))
    except ValueError:
        raise ValueError(f"{what}: {text.strip()!r} is not START:END (two ticks)") from None
    if not sep or window[0] < 0:
        raise ValueError(f"{what}: {text.strip()!r} is not START:END with START >= 0")
    if window[1] <= window[0]:
        raise ValueError(f"{what}: ends (heals) at tick {window[1]}, not after it starts "
                         f"at tick {window[0]}")
    return window


def parse_partitions(text: str, employees: int
                     ) -> list[tuple[tuple[frozenset[int], ...], int, int]]:
    """ "0-4|5-10@100:300" -> [(({0..4}, {5..10}), 100, 300)]: the groups cannot reach
    each other from tick 100 until tick 300. Several splits are separated by ";".
    Employees a split does not name, the users and the employer stay in its first group.
    ValueError says what is wrong."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        groups_text, sep, window_text = part.partition("@")
        if not sep:
            raise ValueError(f"{part!r} is not GROUP|GROUP|...@START:END")
        start, end = _window(window_text, part)
        groups = []
        for group_text in groups_text.split("|"):
            members = [i for r in group_text.split(",") for i in _index_range(r, part)]
            unknown = [i for i in members if i >= employees]
            if unknown:
                raise ValueError(f"{part!r} names employee {unknown[0]}, but there are "
                                 f"only {employees} (0..{employees - 1})")
            groups.append(frozenset(members))
        if len(groups) < 2:
            raise ValueError(f"{part!r} has one group: a split needs at least two")
        seen: set[int] = set()
        for group in groups:
            if seen & group:
                raise ValueError(f"{part!r} puts employee {min(seen & group)} in two groups")
            seen |= group
        out.append((tuple(groups), start, end))
    return out


def parse_churn(text: str, employees: int) -> dict[int, list[tuple[int, int]]]:
    """ "3@50:120,7@200:260" -> {3: [(50, 120)], 7: [(200, 260)]}: employee 3 is offline
    from tick 50 until tick 120, when it returns. ValueError says what is wrong."""
    out: dict[int, list[tuple[int, int]]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        who, sep, window_text = part.partition("@")
        if not sep:
            raise ValueError(f"{part!r} is not EMPLOYEE@START:END")
        window = _window(window_text, part)
        for index in _index_range(who, part):
            if index >= employees:
                raise ValueError(f"{part!r} names employee {index}, but there are only "
                                 f"{employees} (0..{employees - 1})")
            for start, end in out.get(index, []):
                if window[0] < end and start < window[1]:
                    raise ValueError(f"employee {index} has overlapping offline windows")
            out.setdefault(index, []).append(window)
    return out


# HARDWARE profiles: name -> time an employee needs per stage, relative to the reference
# (STAGE_TICKS x factor ticks per stage). The speeds are simulated: they change when an
# employee has its result, not what it computes.
HARDWARE_PROFILES = {"reference": 1.0, "cpu-1thread": 1.0, "fast": 0.5, "slow": 2.0,
                     "very-slow": 4.0, "xla": 1.0, "onednn": 1.0, "cpu-4threads": 1.0,
                     "tf32": 1.0}
# "cpu-1thread" is another name of the reference (one intra-op thread, no XLA, no oneDNN).
# Profiles that really compute otherwise: "xla" trains with TensorFlow's XLA compiler,
# "onednn" with TensorFlow's oneDNN kernels (TF_ENABLE_ONEDNN_OPTS=1, in a process of its
# own: TensorFlow reads it at import), "cpu-4threads" with 4 intra-op threads instead of
# 1. XLA and oneDNN change the float results here; 4 threads do not for this model
# (scripts/hardware_divergence.py). With the hash trainer, which has no floats to round
# differently, a measured difference is simulated (ml.training.SIMULATED_NOISE). "tf32"
# (reduced-precision matrix products, as TensorFlow runs them on NVIDIA Ampere GPUs) is
# beyond this CPU-only machine: hash trainer only, simulated.
COMPUTATION_OF_PROFILE = {"xla": "xla", "onednn": "onednn", "cpu-4threads": "cpu-4threads",
                          "tf32": "tf32"}
SIMULATED_ONLY = {"tf32"}  # computations with no real training here
# What a computation changes in its process: environment variables TensorFlow reads at
# import (such an employee starts in a fresh process, not from the fork server) ...
TF_ENVIRONMENT_OF_COMPUTATION = {"onednn": {"TF_ENABLE_ONEDNN_OPTS": "1"}}
# ... and TensorFlow's intra-op thread count (set before its first op; 1 otherwise).
INTRA_OP_THREADS_OF_COMPUTATION = {"cpu-4threads": 4}
EXACT = "exact"  # the computation of every other profile
# HARDWARE="mixed": a documented mix of the reference with faster and slower machines.
MIXED_HARDWARE = "fast:2,reference:5,slow:3,very-slow:1"


def hardware_profiles(text: str, employees: int) -> list[str]:
    """The profile of each employee, in index order: "fast:2,slow:3" gives employees 0-1
    "fast", 2-4 "slow" and the rest "reference"; "x1.5:4" a custom speed factor; "mixed"
    is MIXED_HARDWARE scaled to the employee count. ValueError says what is wrong."""
    text = text.strip()
    if text == "mixed":
        parts = [p.split(":") for p in MIXED_HARDWARE.split(",")]
        total = sum(int(n) for _, n in parts)
        counts = [int(n) * employees // total for _, n in parts]
        counts[1] += employees - sum(counts)  # the remainder runs the reference
        text = ",".join(f"{name}:{n}" for (name, _), n in zip(parts, counts, strict=True))
    names: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, number = part.partition(":")
        name = name.strip()
        if not sep:
            raise ValueError(f"{part!r} is not profile:count")
        if name.startswith("x") and name not in HARDWARE_PROFILES:
            try:
                factor = float(name[1:])
            except ValueError:
                raise ValueError(f"{name!r} is not xFACTOR (a number)") from None
            if not (math.isfinite(factor) and factor > 0):
                raise ValueError(f"the factor of {name!r} must be a positive number")
        elif name not in HARDWARE_PROFILES:
            raise ValueError(f"unknown hardware profile {name!r} (known: "
                             f"{', '.join(HARDWARE_PROFILES)}, xFACTOR, or mixed)")
        count = _count(name, number)
        names.extend([name] * count)
    if len(names) > employees:
        raise ValueError(f"{len(names)} profiles listed but EMPLOYEES_NUM is {employees}")
    return names + ["reference"] * (employees - len(names))


def parse_hardware(text: str, employees: int) -> list[float]:
    """The speed factor of each employee (see ``hardware_profiles``)."""
    return [HARDWARE_PROFILES[name] if name in HARDWARE_PROFILES else float(name[1:])
            for name in hardware_profiles(text, employees)]


def computation_of(scenario: Scenario, index: int) -> str:
    """How employee ``index`` computes its training: EXACT, or e.g. "xla"."""
    names = hardware_profiles(scenario.hardware, scenario.employees_num)
    return COMPUTATION_OF_PROFILE.get(names[index], EXACT) if 0 <= index < len(names) \
        else EXACT


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
                 "TICK_SECONDS", "TF_SEED", "SEED"):
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
    if s.iterations_per_epoch > MNIST_TRAIN_SIZE:
        out.append(f"ITERATIONS_PER_EPOCH ({s.iterations_per_epoch}) exceeds the "
                   f"{MNIST_TRAIN_SIZE} training samples: a stage would be empty")
    if s.max_transactions_num > 0 and s.users_num < 2:
        out.append(f"MAX_TRANSACTIONS_NUM is {s.max_transactions_num} but transfers need "
                   f"at least 2 users (USERS_NUM is {s.users_num})")
    for name in ("DOUBLE_SPEND_PROBABILITY", "REPLAY_PROBABILITY"):
        value = getattr(s, name.lower())
        if not 0 <= value <= 1:
            out.append(f"{name} must lie in [0, 1], got {value}")
    if s.max_wall_seconds <= 0:
        out.append(f"MAX_WALL_SECONDS must be positive, got {s.max_wall_seconds}")
    try:
        parse_latency(s.latency)
    except ValueError as exc:
        out.append(f"LATENCY: {exc}")
    at_least("TICK_MILLISECONDS", 1)
    at_least("BANDWIDTH", 0)
    if not 0 <= s.loss_probability < 1:
        out.append(f"LOSS_PROBABILITY must lie in [0, 1), got {s.loss_probability}")
    for name, parse in (("PARTITIONS", parse_partitions), ("CHURN", parse_churn)):
        try:
            parse(getattr(s, name.lower()), s.employees_num)
        except ValueError as exc:
            out.append(f"{name}: {exc}")
    try:
        parse_hardware(s.hardware, s.employees_num)
        process_wide = sorted({name for name in hardware_profiles(s.hardware, s.employees_num)
                               if COMPUTATION_OF_PROFILE.get(name) in
                               {*TF_ENVIRONMENT_OF_COMPUTATION, *INTRA_OP_THREADS_OF_COMPUTATION}})
        simulated_only = sorted({name for name in hardware_profiles(s.hardware, s.employees_num)
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
        out.append(f"VERIFICATION must be one of {', '.join(VERIFICATIONS)}, got "
                   f"{s.verification!r}")
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
        parse_open_rules(s.open_rules)
    except ValueError as exc:
        out.append(f"OPEN_RULES: {exc}")
    try:
        counts = parse_adversaries(s.adversaries)
    except ValueError as exc:
        out.append(f"ADVERSARIES: {exc}")
    else:
        total = sum(counts.values())
        if total > s.employees_num:
            out.append(f"ADVERSARIES lists {total} adversaries but EMPLOYEES_NUM is "
                       f"{s.employees_num}")
        elif total == s.employees_num and total > 0:
            out.append("ADVERSARIES leaves no honest employee: at least one is needed")
    if s.trainer not in TRAINERS:
        out.append(f"TRAINER must be one of {', '.join(TRAINERS)}, got {s.trainer!r}")
    if s.backend == "process" and s.employees_num > MAX_PROCESS_EMPLOYEES:
        out.append(f"EMPLOYEES_NUM ({s.employees_num}) exceeds the process backend's "
                   f"limit of {MAX_PROCESS_EMPLOYEES}: Python's fork server passes at most "
                   f"256 file descriptors to the network process, one per employee's pipe; "
                   f"use BACKEND ray")
    if s.backend not in BACKENDS:
        out.append(f"BACKEND must be one of {', '.join(BACKENDS)}, got {s.backend!r}")
    at_least("RAY_SHARDS", 0)
    if s.ray_address and s.backend != "ray":
        out.append(f"RAY_ADDRESS is {s.ray_address!r} but BACKEND is {s.backend!r}")
    if not s.log_file:
        out.append("LOG_FILE must not be empty")
    return out


def validated(s: Scenario) -> Scenario:
    found = problems(s)
    if found:
        raise ScenarioError(found)
    return s


# --- Command line ----------------------------------------------------------------------

_POWER = re.compile(r"^\s*(\d+)\s*\*\*\s*(\d+)\s*$")


def parse_int(text: str) -> int:
    """An integer, also written as a power (``2**252``), as coinstakes usually are."""
    match = _POWER.match(text)
    if match:
        base, exponent = int(match.group(1)), int(match.group(2))
        if exponent > 4096:
            raise argparse.ArgumentTypeError(f"exponent too large in {text!r}")
        return base**exponent
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def flag_name(knob: str) -> str:
    return "--" + knob.lower().replace("_", "-")


def add_knob_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = default_scenario()
    comments = knob_comments()
    group = parser.add_argument_group("scenario knobs (defaults from simulation/constants.py)")
    for f in dataclasses.fields(Scenario):
        default = getattr(defaults, f.name)
        kind: Any = parse_int if type(default) is int else type(default)
        shown = f"2**{default.bit_length() - 1}" if (
            type(default) is int and default > 2**32 and default & (default - 1) == 0
        ) else repr(default)
        group.add_argument(
            flag_name(f.name.upper()), dest=f.name, type=kind, default=None,
            metavar=type(default).__name__.upper(),
            help=f"{comments.get(f.name.upper(), '')} (default: {shown})".replace("%", "%%"),
        )


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    base = default_scenario()
    changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(Scenario)
               if getattr(args, f.name, None) is not None}
    return base.replace(**changes)
