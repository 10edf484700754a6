"""The small grammars of the text knobs: ADVERSARIES, OPEN_RULES, LATENCY, PARTITIONS,
CHURN and HARDWARE. Each parser takes the knob's text and returns typed values, or raises
ValueError saying what is wrong; ``Scenario`` parses each once (its cached properties)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable

from simulation.config.roles import BEHAVIOURS, Role

# The hardening rules (protocol.rules), by the names OPEN_RULES takes.
RULE_NAMES = ("members", "tick-window", "lottery-kernel", "draw", "header-cap",
              "fork-evidence", "bounded-state", "personal-secrets", "roy-rules", "tie-break",
              "stage-time", "chain-id")


def known_names(word: str, known: Iterable[str], *others: str) -> str:
    """" (known: a, b, or c)" after an unknown name, led by "did you mean" the closest
    one when the word looks like a typo of it; ``others`` are listed last (forms such
    as xFACTOR, or a word that stands alone such as all)."""
    names = [*known, *others]
    close = difflib.get_close_matches(word, names, n=1)
    lead = f"did you mean {close[0]}? " if close else ""
    listed = ", ".join(names[:-1]) + (", or " if others else ", ") + names[-1]
    return f" ({lead}known: {listed})"


def parse_open_rules(text: str) -> frozenset[str]:
    """ "members,draw" -> {"members", "draw"}; "all" -> every rule; "" -> none.
    ValueError says what is wrong."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if names == ["all"]:
        return frozenset(RULE_NAMES)
    for name in names:
        if name not in RULE_NAMES:
            hint = " (\"all\" stands alone)" if name == "all" else ""
            raise ValueError(f"unknown rule {name!r}{hint}"
                             f"{known_names(name, RULE_NAMES, 'all')}")
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
            raise ValueError(f"unknown behaviour {name!r}{known_names(name, BEHAVIOURS)}")
        count = _count(name, number)
        if name in counts:
            raise ValueError(f"{name!r} is listed twice")
        counts[Role(name)] = count
    return counts
MNIST_TRAIN_SIZE = 60000  # MNIST's training images (a stage's samples are drawn from them)
LATENCY_KINDS = ("constant", "uniform", "lognormal", "regions")


def parse_latency(text: str) -> tuple[str, tuple[float, ...]] | None:
    """ "uniform:1:8" -> ("uniform", (1.0, 8.0)); "" -> None (NETWORK_DELAY_TICKS for
    every message). ValueError says what is wrong."""
    if not text.strip():
        return None
    kind, *fields = [f.strip() for f in text.split(":")]
    arity = {"constant": 1, "uniform": 2, "lognormal": 2, "regions": 0}
    if kind not in arity:
        raise ValueError(f"unknown latency model {kind!r}{known_names(kind, LATENCY_KINDS)}")
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
# Computations TensorFlow can only be set to for a whole process (ml.hardware says how):
# a Ray shard, which hosts many employees in one process, cannot run them.
PROCESS_WIDE_COMPUTATIONS = frozenset({"onednn", "cpu-4threads"})
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
            raise ValueError(f"unknown hardware profile {name!r}"
                             f"{known_names(name, HARDWARE_PROFILES, 'xFACTOR', 'mixed')}")
        count = _count(name, number)
        names.extend([name] * count)
    if len(names) > employees:
        raise ValueError(f"{len(names)} profiles listed but EMPLOYEES_NUM is {employees}")
    return names + ["reference"] * (employees - len(names))


def speed_factor_of(name: str) -> float:
    """A HARDWARE profile's time per stage relative to the reference ("x1.5": 1.5)."""
    return HARDWARE_PROFILES[name] if name in HARDWARE_PROFILES else float(name[1:])


def parse_hardware(text: str, employees: int) -> list[float]:
    """The speed factor of each employee (see ``hardware_profiles``)."""
    return [speed_factor_of(name) for name in hardware_profiles(text, employees)]
