"""Parameter sweeps as one command: ``python -m simulation.sweep --set KNOB=VALUES ...``.

Why: a claim about Proof of Training ("poisoned employees below half never reach the
employer") is a claim about a distribution over seeds, at many points of the scenario
space. Answering it by hand means hundreds of ``main.py`` runs, a few of which die, get
interrupted or fail their self-check. This command runs the Cartesian product of the
``--set`` lists times the seeds as separate ``main.py`` processes (``--jobs`` at a time),
records every finished run in its own row file so that an interrupted sweep resumes where
it stopped, and writes

* ``OUT/runs.csv``: one row per recorded run (the varied knobs, the seed, the outcome);
* ``OUT/summary.csv``: one row per point (combination of the varied knobs) with means,
  standard deviations and 95% intervals (Student-t for measures, Wilson score for rates);
* ``OUT/sweep.png`` and ``OUT/sweep_<measure>.png``: the main measures against the first
  varied knob, one line per combination of the other varied knobs.

How the statistics treat failed runs: ``n`` counts every recorded run of a point and
``n_self_check_failed`` those whose self-check failed (or that left no results). Every
measure and every rate except ``self_check_failed_rate`` is computed over the runs that
passed the self-check only, because a run whose processes died or whose results are
inconsistent measures the simulator, not the protocol. Failed runs are thus excluded
from the means but never silently dropped: they stay in ``n``, in
``n_self_check_failed``, in runs.csv and as red marks in the plots. Blank values (the
accuracy with the hash trainer) are skipped; a statistic without any value is blank.

Runs interrupted by SIGINT/SIGTERM (exit 130/143, killed by a signal, or results marked
``"interrupted"``) are not recorded, so the next invocation with the same ``--out`` redoes
them. A run is identified by a hash of its whole scenario (every knob and the seed), so
resuming never confuses runs of different fixed knobs.

With ``--ray-address ADDRESS`` the runs are not ``--jobs`` local processes but Ray tasks
on that cluster, each declaring its CPUs and memory (``experiments.cluster``); they are
recorded, resumed and interrupted exactly as local runs, and runs.csv names each run's
node.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import hashlib
import itertools
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from simulation import config
from simulation.experiments.statistics import describe, flag, number, proportion

ROOT = Path(__file__).resolve().parents[2]  # simulation/experiments/sweep.py
MAIN_SCRIPT = ROOT / "main.py"  # a module attribute so that tests can stand in a fake
# The command's name in usage, error and resume lines (the pot-sweep command sets its own).
PROG = "python -m simulation.sweep"

EXIT_INVALID = 2
INTERRUPTED_CODES = (130, 143)
RECORDED_LOGS_DELETED = (0, 1)  # logs of ordinary outcomes are MBs and tell nothing new
EXIT_MEANINGS = {0: "target reached", 1: "did not converge", 2: "invalid input",
                 3: "self-check failed", 130: "interrupted (SIGINT)",
                 143: "interrupted (SIGTERM)"}
# Knobs the sweep owns: seeds come from --seeds, every run gets its own log file.
NOT_SETTABLE = {"SEED": "give seeds with --seeds", "LOG_FILE": "every run gets its own log",
                "EVENT_LOG_MB": "a sweep's runs write no run folder, where the event log "
                                "and its page go; run main.py --event-log-mb for one run"}
# Knobs whose main.py flag is an option of the sweep's own (--ray-address places the runs
# on a cluster): such a knob is given to every run with --set KNOB=VALUE.
FLAG_TAKEN = {"RAY_ADDRESS"}
MAX_RANGE_VALUES = 10_000
MAX_RUNS = 100_000  # a typo such as 0..100000 should fail, not queue a year of runs
MAX_ERRORS_SHOWN = 30

# runs.csv: the varied knobs come first, then these.
RUN_COLUMNS = [
    "seed", "exit_code", "self_check_passed", "finished", "ticks",
    "wall_seconds",
    "chain_length", "forks", "honest_poisoned_blocks", "employer_chain_length",
    "employer_poisoned_blocks", "employer_model_source", "employer_poisoned",
    "model_accuracy", "honest_model_accuracy", "transactions_issued",
    "transactions_included", "propagation_p50_ticks", "propagation_p90_ticks",
    "stale_rate", "stale_blocks", "finality_p50_ticks", "block_bytes_mean",
    "block_requests", "hops_p50", "hops_p90", "duplicates", "uploaded_bytes_per_employee",
    "work_unit", "work_total", "useful_share", "work_per_certified_sample",
    "useful_work_per_certified_sample", "gini_rewards", "nakamoto_coefficient", "attack_tries",
    "attack_found", "attack_ground", "self_check_failures", "run_id",
    # Added later: new columns go last, so that a reader of the older files by position
    # still finds every column where it was.
    "adversary_share", "stopped_by",
    # The Ray node a run ran on (a sweep with --ray-address); empty for a local run.
    "node",
]
# The adversaries' own counts (results' "attack" section), added up over behaviours.
ATTACK_MEASURES = ("attack_tries", "attack_found", "attack_ground")
NETWORK_MEASURES = ("propagation_p50_ticks", "propagation_p90_ticks", "stale_rate",
                    "stale_blocks", "finality_p50_ticks", "block_bytes_mean",
                    "block_requests", "hops_p50", "hops_p90", "duplicates",
                    "uploaded_bytes_per_employee")
FAIRNESS_MEASURES = ("gini_rewards", "nakamoto_coefficient")
# The useful work (results' "training" section; in work_unit: CPU seconds or samples).
WORK_MEASURES = ("work_total", "useful_share", "work_per_certified_sample",
                 "useful_work_per_certified_sample")
MEASURES = (
    "ticks", "wall_seconds", "chain_length", "forks", "honest_poisoned_blocks",
    "employer_chain_length", "employer_poisoned_blocks", "model_accuracy",
    "honest_model_accuracy", "transactions_included", *NETWORK_MEASURES,
    *WORK_MEASURES, *FAIRNESS_MEASURES, *ATTACK_MEASURES,
)
PROPORTIONS = ("finished", "employer_poisoned", "honest_chain_poisoned", "self_check_failed")
# What each measure can take: every one is at least 0, these at most 1, a chain (genesis
# counted) at least 1 block. A t interval is clipped to it (the mean of counts 0, 0, 0, 3
# has an interval reaching below zero).
BOUNDED_BY_ONE = {"model_accuracy", "honest_model_accuracy", "stale_rate", "gini_rewards",
                  "useful_share"}
AT_LEAST_ONE = {"chain_length", "employer_chain_length"}
SUMMARY_STATS = [f"{m}_{s}" for m in MEASURES for s in ("mean", "sd", "ci95_low", "ci95_high")]
SUMMARY_STATS += [f"{p}_{s}" for p in PROPORTIONS for s in ("rate", "ci95_low", "ci95_high")]
# summary.csv: the varied knobs, then these; columns added later go last (as in runs.csv).
SUMMARY_COLUMNS = ["n", "n_self_check_failed", *SUMMARY_STATS, "adversary_share"]
# Knobs whose value is a number of employees (besides ADVERSARIES' counts): the plots and
# the table show the share of EMPLOYEES_NUM beside it.
EMPLOYEE_COUNT_KNOBS = ("EMPLOYER_CONFIDENCE", "STAKEHOLDERS_NUM")
# (column prefix, statistic, panel title) of the plotted measures, in panel order.
PLOTTED = [
    ("employer_poisoned", "rate", "employer takes the poisoned model (rate)"),
    ("finished", "rate", "run reached the target (rate)"),
    ("ticks", "mean", "ticks"),
    ("chain_length", "mean", "honest chain length (blocks)"),
    ("model_accuracy", "mean", "test accuracy of the employer's model"),
    ("honest_poisoned_blocks", "mean", "poisoned blocks in the honest chain"),
    ("forks", "mean", "forks"),
    ("propagation_p90_ticks", "mean", "ticks for a block to reach 90% of the honest"),
    ("hops_p90", "mean", "hops for a block to reach 90% of the honest"),
    ("uploaded_bytes_per_employee", "mean", "bytes uploaded per employee"),
    ("useful_share", "mean", "share of the training that is useful"),
]


class SweepError(ValueError):
    """A problem with the sweep's arguments; the message is one ``error:`` line."""


# --- Values and knobs ---------------------------------------------------------------------

# An integer range inside a value. The look-arounds keep "0.5..1.0" (float bounds) and
# "x1..2" from half-matching; what is left with ".." afterwards is reported as bad.
_RANGE = re.compile(r"(?<![\w.])(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?(?![\w.])")


def split_values(text: str) -> list[str]:
    """Split a VALUES list at ``;`` if it has one (values may then hold commas, as
    ADVERSARIES does), else at ``,``. An empty text is the one empty value."""
    separator = ";" if ";" in text else ","
    items = [item.strip() for item in text.split(separator)]
    if items == [""]:
        return [""]
    if "" in items:
        raise SweepError(f"empty value in {text!r} (separated by {separator!r})")
    return items


def expand_ranges(value: str) -> list[str]:
    """``poisoned:0..2`` -> poisoned:0, poisoned:1, poisoned:2; ``5..21..8`` -> 5, 13, 21.
    Bounds are inclusive integers; several ranges in one value give their product."""
    match = _RANGE.search(value)
    if match is None:
        if ".." in value:
            raise SweepError(f"bad range in {value!r}: use A..B or A..B..STEP with integers")
        return [value]
    start, stop = int(match.group(1)), int(match.group(2))
    step = int(match.group(3)) if match.group(3) is not None else 1
    if step <= 0:
        raise SweepError(f"bad range in {value!r}: STEP must be positive")
    if start > stop:
        raise SweepError(f"bad range in {value!r}: {start} is above {stop}")
    if (stop - start) // step + 1 > MAX_RANGE_VALUES:
        raise SweepError(f"range in {value!r} has more than {MAX_RANGE_VALUES} values")
    head, tail = value[: match.start()], value[match.end():]
    rests = expand_ranges(tail)
    return [f"{head}{n}{rest}" for n in range(start, stop + 1, step) for rest in rests]


def expand_values(text: str) -> list[str]:
    """A --set VALUES list, split and with every range expanded, in the given order."""
    return [value for item in split_values(text) for value in expand_ranges(item)]


def normalize_knob(name: str) -> str:
    """``employees-num``, ``--employees-num``, ``employees_num`` -> ``EMPLOYEES_NUM``."""
    knob = name.strip().lstrip("-").replace("-", "_").upper()
    known = config.knob_names()
    if knob not in known:
        close = difflib.get_close_matches(knob, known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise SweepError(f"unknown knob {name.strip()!r}{hint}")
    return knob


def knob_type(knob: str) -> type:
    try:
        return type(getattr(config.default_scenario(), knob.lower()))
    except AttributeError:
        raise SweepError(f"unknown knob {knob!r}") from None


def parse_value(knob: str, text: str) -> Any:
    """The value of ``knob`` written as ``text``, typed like its default; ints may be
    powers (``2**252``) exactly as main.py accepts them."""
    kind = knob_type(knob)
    try:
        if kind is int:
            return config.parse_int(text.strip())
        if kind is float:
            return float(text)
    except (ValueError, argparse.ArgumentTypeError):
        raise SweepError(f"{knob}: {text!r} is not a valid {kind.__name__}") from None
    return text


def default_texts() -> dict[str, str]:
    """Every knob the sweep may set, as text, at its default."""
    knobs = config.default_scenario().knobs()
    return {k: config.knob_text(v) for k, v in knobs.items() if k not in NOT_SETTABLE}


def canonical(knob: str, value: Any) -> str:
    """One spelling per value (``16`` and ``2**4`` are the same point)."""
    try:
        return repr(parse_value(knob, str(value)))
    except SweepError:
        return str(value)


def value_sort_key(value: Any) -> tuple[Any, ...]:
    """Numbers numerically, other text in natural order (poisoned:2 before poisoned:10)."""
    text = "" if value is None else str(value).strip()
    try:
        numeric = float(text)
        if not math.isnan(numeric):
            return (0, numeric, ())
    except ValueError:
        pass
    try:
        return (0, config.parse_int(text), ())
    except argparse.ArgumentTypeError:
        pass
    chunks = tuple((0, int(c), "") if c.isdigit() else (1, 0, c)
                   for c in re.split(r"(\d+)", text))
    return (1, 0, chunks)


def parse_seeds(text: str) -> list[int]:
    """``N`` -> seeds 1..N; ``A..B`` (or ``A..B..STEP``) -> those seeds."""
    text = text.strip()
    if text.isdigit():
        count = int(text)
        if count < 1:
            raise SweepError("--seeds N needs N >= 1")
        return list(range(1, count + 1))
    try:
        values = expand_ranges(text)
        seeds = [int(v) for v in values]
    except (SweepError, ValueError):
        raise SweepError(f"--seeds takes N or A..B, got {text!r}") from None
    if len(values) == 1 and ".." not in text:
        raise SweepError(f"--seeds takes N or A..B, got {text!r}")
    if min(seeds) < 0:
        raise SweepError(f"seeds must not be negative, got {text!r}")
    return seeds


# --- The plan ---------------------------------------------------------------------------


@dataclass
class Setting:
    """One knob and the values it takes, as written (after range expansion)."""

    knob: str
    texts: list[str]


@dataclass
class Run:
    run_id: str
    digest: str  # the hash of the whole scenario: what resume matches on
    seed: int
    knobs: dict[str, str]  # every knob the sweep passes to main.py, as text
    varied: dict[str, str]  # the varied knobs' values, in --set order


@dataclass
class Plan:
    fixed: dict[str, str]
    varied: list[Setting]
    seeds: list[int]
    runs: list[Run] = field(default_factory=list)

    @property
    def varied_knobs(self) -> list[str]:
        return [s.knob for s in self.varied]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.+]+", "-", text.lower()).strip("-.") or "empty"


def make_run(knobs: dict[str, str], varied: dict[str, str], seed: int) -> Run:
    """The run's id: a readable slug of the varied values and the seed, then a hash of the
    complete scenario, so that a changed fixed knob (or an edited constants.py) is a new
    run while a re-spelled value (16 or 2**4) is the same one."""
    scenario = config.default_scenario().replace(
        **{k.lower(): parse_value(k, v) for k, v in knobs.items()}, seed=seed)
    # Knobs that change where a run writes, not what it does, are not part of it.
    identity = {k: repr(v) for k, v in scenario.knobs().items()
                if k not in ("LOG_FILE", "EVENT_LOG_MB")}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    parts = [f"{_slug(k)}-{_slug(v)}" for k, v in varied.items()] + [f"seed-{seed}"]
    slug = "__".join(parts)[:100].rstrip("-_.")
    return Run(run_id=f"{slug}__{digest}", digest=digest, seed=seed, knobs=knobs,
               varied=varied)


def build_plan(sets: Sequence[str], fixed_flags: dict[str, str], seeds_text: str
               ) -> tuple[Plan | None, list[str]]:
    """Parse and validate everything; (plan, []) or (None, the problems)."""
    errors: list[str] = []
    settings: list[Setting] = []
    given: set[str] = set()
    unparsed: set[str] = set()  # knobs with a value of the wrong type

    def add(knob_name: str, texts_of: str, origin: str) -> None:
        try:
            knob = normalize_knob(knob_name)
        except SweepError as exc:
            errors.append(str(exc))
            return
        if knob in NOT_SETTABLE:
            errors.append(f"{knob} cannot be set in a sweep ({origin}): {NOT_SETTABLE[knob]}")
            return
        if knob in given:
            errors.append(f"{knob} is given more than once")
            return
        given.add(knob)
        try:
            texts = expand_values(texts_of) if origin == "--set" else [texts_of.strip()]
        except SweepError as exc:
            errors.append(f"{knob}: {exc}")
            return
        seen: dict[str, str] = {}
        for text in texts:
            try:
                key = repr(parse_value(knob, text))
            except SweepError as exc:
                errors.append(str(exc))
                unparsed.add(knob)
                continue
            if key in seen:
                errors.append(f"{knob}: {text!r} is listed twice (as {seen[key]!r})")
            seen[key] = text
        settings.append(Setting(knob, texts))

    for item in sets:
        name, sep, values = item.partition("=")
        if not sep:
            errors.append(f"--set takes KNOB=VALUES, got {item!r}")
            continue
        add(name, values, "--set")
    for knob, text in fixed_flags.items():
        add(knob, text, config.flag_name(knob))
    try:
        seeds = parse_seeds(seeds_text)
    except SweepError as exc:
        errors.append(str(exc))
        seeds = []
    if errors:
        # Also what the scenario says of the knobs that did parse: every problem at once.
        usable = [s for s in settings if s.knob not in unparsed]
        if math.prod(len(s.texts) for s in usable) <= MAX_RUNS:
            _scenario_problems(usable, seeds[0] if seeds else 1, errors)
        return None, errors

    fixed = {s.knob: s.texts[0] for s in settings if len(s.texts) == 1}
    varied = [s for s in settings if len(s.texts) > 1]
    total = math.prod(len(s.texts) for s in varied) * len(seeds)
    if total > MAX_RUNS:
        return None, [f"the sweep has {total} runs, more than the {MAX_RUNS} allowed"]

    plan = Plan(fixed=fixed, varied=varied, seeds=seeds)
    combinations = _scenario_problems(settings, seeds[0], errors)
    if errors:
        return None, errors
    # Seed by seed, so that an interrupted sweep has covered every point about evenly.
    for seed in seeds:
        for combination in combinations:
            plan.runs.append(make_run({**fixed, **combination}, combination, seed))
    return plan, []


def _scenario_problems(settings: list[Setting], seed: int, errors: list[str]
                       ) -> list[dict[str, str]]:
    """Adds to ``errors`` what config.problems says of every combination of the
    settings' values (each problem once, labelled with its point); returns the
    combinations of the varied knobs."""
    fixed = {s.knob: s.texts[0] for s in settings if len(s.texts) == 1}
    varied = [s for s in settings if len(s.texts) > 1]
    combinations = [dict(zip([s.knob for s in varied], texts, strict=True))
                    for texts in itertools.product(*(s.texts for s in varied))]
    base = config.default_scenario().replace(seed=seed)
    for combination in combinations:
        knobs = {**fixed, **combination}
        scenario = base.replace(**{k.lower(): parse_value(k, v) for k, v in knobs.items()})
        label = ", ".join(f"{k}={v}" for k, v in combination.items())
        for problem in config.problems(scenario):
            line = f"{label}: {problem}" if label else problem
            if line not in errors:
                errors.append(line)
    return combinations


# --- One run ----------------------------------------------------------------------------


@dataclass
class RunPaths:
    results: Path
    log: Path
    out: Path
    row: Path

    @classmethod
    def of(cls, runs_dir: Path, run_id: str) -> RunPaths:
        return cls(results=runs_dir / f"{run_id}.json", log=runs_dir / f"{run_id}.log",
                   out=runs_dir / f"{run_id}.out", row=runs_dir / f"{run_id}.row.json")


def main_command() -> list[str]:
    """How a run starts: main.py beside the package in a checkout; an installed copy has
    none and runs ``python -m simulation``, the same command."""
    if MAIN_SCRIPT.is_file() and (ROOT / "pyproject.toml").is_file():
        return [sys.executable, str(MAIN_SCRIPT)]
    return [sys.executable, "-m", "simulation"]


def command_for(run: Run, paths: RunPaths) -> list[str]:
    command = main_command()
    for knob, text in run.knobs.items():
        command += [config.flag_name(knob), text]
    # No run folder: the sweep keeps its own per-run files, and pictures would cost
    # a matplotlib import per run. So no event log either, whatever constants.py says.
    command += ["--seed", str(run.seed), "--quiet", "--no-run-dir", "--event-log-mb", "0",
                "--results", str(paths.results), "--log-file", str(paths.log)]
    return command


def _dig(data: Any, *keys: str) -> Any:
    """data[k1][k2]...; None when any level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def row_from_results(results: dict[str, Any] | None, exit_code: int | None) -> dict[str, Any]:
    """The outcome columns of a run from its results JSON (None: no readable file).
    A missing key is a blank cell, never an error: older or partial results lack some."""
    res = results if isinstance(results, dict) else None
    passed = _dig(res, "self_check", "passed")
    # main.py checks every run it summarises: results that say nothing of the check (or
    # nothing at all) were not checked, and a run not checked has not passed.
    self_check_passed = passed is True
    failures = _dig(res, "self_check", "failures")
    if isinstance(failures, list):
        failures_text = "; ".join(_failure_text(f) for f in failures)
    else:
        failures_text = "" if failures is None else str(failures)
    source = _dig(res, "employer", "model_source")
    adversaries, employees = _dig(res, "adversaries"), _dig(res, "scenario", "EMPLOYEES_NUM")
    share = len(adversaries) / employees if isinstance(adversaries, dict) and \
        isinstance(employees, int) and employees > 0 else None
    return {
        # The share of the employees that are adversaries, beside ADVERSARIES' counts.
        "adversary_share": None if share is None else round(share, 5),
        "exit_code": exit_code,
        "self_check_passed": self_check_passed,
        "finished": _dig(res, "finished"),
        "ticks": _dig(res, "ticks"),
        "wall_seconds": _dig(res, "wall_seconds"),
        "chain_length": _dig(res, "chain", "length"),
        "forks": _dig(res, "forks"),
        "honest_poisoned_blocks": _dig(res, "honest", "poisoned_blocks"),
        "employer_chain_length": _dig(res, "employer", "chain_length"),
        "employer_poisoned_blocks": _dig(res, "employer", "poisoned_blocks"),
        "employer_model_source": source,
        "employer_poisoned": None if source is None else source == "poisoned",
        "model_accuracy": _dig(res, "employer", "model_test_accuracy"),
        "honest_model_accuracy": _dig(res, "model", "test_accuracy"),
        "transactions_issued": _dig(res, "transactions", "issued"),
        "transactions_included": _dig(res, "transactions", "included"),
        **{m: _dig(res, "network", m) for m in NETWORK_MEASURES},
        **{m: _dig(res, "fairness", m) for m in FAIRNESS_MEASURES},
        **{m: _dig(res, "training", m) for m in ("work_unit", *WORK_MEASURES)},
        **_attack_counts(res),
        "self_check_failures": failures_text,
        # Why the run ended: "target reached", "MAX_TICKS", or why it ended early.
        "stopped_by": _dig(res, "stopped_by"),
    }


def _attack_counts(results: dict[str, Any] | None) -> dict[str, Any]:
    """attack_tries, attack_found, attack_ground: summed over the adversaries'
    behaviours; blank for results without an attack section (older runs)."""
    attack = _dig(results, "attack")
    if not isinstance(attack, dict):
        return {m: None for m in ATTACK_MEASURES}
    return {m: sum(int(c.get(m.removeprefix("attack_"), 0)) for c in attack.values()
                   if isinstance(c, dict)) for m in ATTACK_MEASURES}


def _failure_text(failure: Any) -> str:
    """main.py lists failures as {"check": ..., "detail": ...}; anything else as is."""
    if isinstance(failure, dict) and "detail" in failure:
        return f"{failure.get('check', '?')}: {failure['detail']}"
    return str(failure)


def is_interrupted(exit_code: int, results: dict[str, Any] | None) -> bool:
    """A run cut short by a signal: its partial results must not count as an outcome."""
    return (exit_code in INTERRUPTED_CODES or exit_code < 0
            or (isinstance(results, dict) and results.get("interrupted") is True))


def read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_atomically(path: Path, text: str) -> None:
    """Readers (and a later resume) see the old file or the new one, never half of one."""
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    with open(temporary, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


@dataclass
class Outcome:
    run: Run
    status: str  # "recorded", "interrupted", "not started" or "error"
    exit_code: int | None = None
    message: str = ""


class Launcher:
    """Starts the runs' processes and, on a signal, stops launching and forwards it.

    Each child gets its own process group, so that a terminal's Ctrl-C reaches only the
    sweep, which forwards it exactly once: main.py reads a second signal as "kill my
    children now", which would lose the partial results."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # re-entrant: the handler may interrupt itself
        self._running: set[subprocess.Popen[bytes]] = set()
        self.signum: int | None = None

    def stop(self, signum: int) -> None:
        with self._lock:
            if self.signum is None:
                self.signum = signum
            for process in list(self._running):
                try:
                    process.send_signal(signum)
                except OSError:
                    pass  # it has just exited

    def start(self, command: list[str], output: Any, cwd: Path
              ) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self.signum is not None:
                return None
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                       stderr=subprocess.STDOUT, cwd=cwd, process_group=0)
            self._running.add(process)
            return process

    def done(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._running.discard(process)


def run_one(run: Run, runs_dir: Path, launcher: Launcher, keep_logs: bool) -> Outcome:
    """Run, record, tidy up. Any failure of the sweep's own (a full disk, say) is an
    ``error`` outcome, reported and not recorded, rather than the end of a long sweep."""
    try:
        return _run_and_record(run, runs_dir, launcher, keep_logs)
    except Exception as exc:  # noqa: BLE001 - reported by the caller, redone on resume
        return Outcome(run, "error", message=f"{type(exc).__name__}: {exc}")


def _run_and_record(run: Run, runs_dir: Path, launcher: Launcher, keep_logs: bool
                    ) -> Outcome:
    paths = RunPaths.of(runs_dir, run.run_id)
    for stale in (paths.results, paths.log, paths.out):  # of an earlier interrupted try
        stale.unlink(missing_ok=True)
    with open(paths.out, "wb") as output:
        try:
            process = launcher.start(command_for(run, paths), output, runs_dir)
        except OSError as exc:
            return Outcome(run, "error", message=f"could not start main.py: {exc}")
        if process is None:
            output.close()
            paths.out.unlink(missing_ok=True)
            return Outcome(run, "not started")
        try:
            exit_code = process.wait()
        finally:
            launcher.done(process)
    return record_run(run, paths, exit_code, keep_logs)


def record_run(run: Run, paths: RunPaths, exit_code: int, keep_logs: bool,
               node: str | None = None) -> Outcome:
    """Records a run that ended with ``exit_code`` from its files in ``paths`` (a run
    interrupted is not recorded); ``node``: the Ray node it ran on, for a cluster's run."""
    results = read_json(paths.results)
    if is_interrupted(exit_code, results):
        return Outcome(run, "interrupted", exit_code)
    row = {"seed": run.seed, **row_from_results(results, exit_code), "run_id": run.run_id}
    if node is not None:  # a local run's row file stays as it was before the column
        row["node"] = node
    if exit_code in RECORDED_LOGS_DELETED and not keep_logs:
        paths.log.unlink(missing_ok=True)
        paths.out.unlink(missing_ok=True)
    entry = {"run_id": run.run_id, "digest": run.digest, "seed": run.seed,
             "knobs": {**default_texts(), **run.knobs}, "row": row,
             "command": command_for(run, paths)}
    write_atomically(paths.row, json.dumps(entry, indent=1) + "\n")
    return Outcome(run, "recorded", exit_code)


def record_answer(answer: Any, runs: dict[str, Run], runs_dir: Path, keep_logs: bool
                  ) -> Outcome:
    """The Outcome of a run a cluster ran (a ``cluster.Answer``): its files written into
    ``runs_dir`` as a local run leaves them, then recorded as a local run is."""
    run = runs[answer.job.run_id]
    if answer.problem == "not started":
        return Outcome(run, "not started")
    value = answer.value or {}
    where = f" on node {value['node']} ({value.get('node_ip')})" if "node" in value else ""
    if answer.problem or "error" in value:
        return Outcome(run, "error", message=f"{answer.problem or value['error']}{where}")
    paths = RunPaths.of(runs_dir, run.run_id)
    for path, key in ((paths.results, "results"), (paths.log, "log"), (paths.out, "out")):
        path.unlink(missing_ok=True)  # of an earlier interrupted try
        if value.get(key) is not None:
            path.write_bytes(value[key])
    return record_run(run, paths, int(value["exit_code"]), keep_logs,
                      node=str(value["node"]))


def recorded_digests(runs_dir: Path) -> set[str]:
    """Digests of the recorded runs, read from the row files' names (``<slug>__<digest>``)."""
    if not runs_dir.is_dir():
        return set()
    return {p.name[: -len(".row.json")].rsplit("__", 1)[-1]
            for p in runs_dir.glob("*.row.json")}


def load_records(runs_dir: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(runs_dir.glob("*.row.json")) if runs_dir.is_dir() else []:
        record = read_json(path)
        if isinstance(record, dict) and isinstance(record.get("row"), dict):
            records.append(record)
        else:
            print(f"warning: ignoring unreadable row file {path}", file=sys.stderr)
    return records


def rows_sort_key(varied: Sequence[str]) -> Any:
    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        values = tuple(value_sort_key(row.get(k)) for k in varied)
        return (*values, value_sort_key(row.get("seed")))
    return key


def measure_bounds(measure: str) -> tuple[float, float]:
    """The values a measure can take (its t interval is clipped to them)."""
    return (1.0 if measure in AT_LEAST_ONE else 0.0,
            1.0 if measure in BOUNDED_BY_ONE else math.inf)


def summarize_rows(rows: Iterable[dict[str, Any]], varied: Sequence[str]
                   ) -> list[dict[str, Any]]:
    """One dict per point (combination of the varied knobs' values), sorted like the
    rows; see the module docstring for which runs enter which statistic."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=rows_sort_key(varied)):
        key = tuple(canonical(k, row.get(k)) for k in varied)
        groups.setdefault(key, []).append(row)
    points = []
    for group in groups.values():
        passed = [r for r in group if flag(r.get("self_check_passed")) is True]
        point: dict[str, Any] = {k: group[0].get(k) for k in varied}
        point["n"] = len(group)
        point["n_self_check_failed"] = len(group) - len(passed)
        point["adversary_share"] = next(
            (v for r in group if (v := number(r.get("adversary_share"))) is not None), None)
        for measure in MEASURES:
            values = [v for r in passed if (v := number(r.get(measure))) is not None]
            for statistic, value in describe(values, measure_bounds(measure)).items():
                point[f"{measure}_{statistic}"] = value
        flags: dict[str, list[bool]] = {
            "finished": [f for r in passed if (f := flag(r.get("finished"))) is not None],
            "employer_poisoned": [f for r in passed
                                  if (f := flag(r.get("employer_poisoned"))) is not None],
            "honest_chain_poisoned": [
                v > 0 for r in passed
                if (v := number(r.get("honest_poisoned_blocks"))) is not None],
            "self_check_failed": [flag(r.get("self_check_passed")) is not True
                                  for r in group],
        }
        for name in PROPORTIONS:
            for statistic, value in proportion(flags[name]).items():
                point[f"{name}_{statistic}"] = value
        points.append(point)
    return points


# --- Outputs ------------------------------------------------------------------------------


def output_knobs(varied: Sequence[str], records: Sequence[dict[str, Any]]) -> list[str]:
    """The knob columns: this sweep's varied knobs, then any other knob whose value
    differs among the recorded runs (row files of an earlier sweep into the same
    directory), so that different scenarios never share a point."""
    columns = list(varied)
    defaults = default_texts()
    for knob in defaults:
        if knob in columns:
            continue
        values = {canonical(knob, r.get("knobs", {}).get(knob, defaults[knob]))
                  for r in records}
        if len(values) > 1:
            columns.append(knob)
    return columns


def flatten(records: Sequence[dict[str, Any]], knobs: Sequence[str]) -> list[dict[str, Any]]:
    defaults = default_texts()
    rows = []
    for record in records:
        values = record.get("knobs", {})
        row = {k: values.get(k, defaults.get(k)) for k in knobs}
        row.update({c: record["row"].get(c) for c in RUN_COLUMNS})
        rows.append(row)
    return sorted(rows, key=rows_sort_key(knobs))


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(round(value, 6))
    return value


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    write_atomically(path, buffer.getvalue())


def x_axis(knob: str | None, values: Sequence[Any]) -> tuple[list[float], str, list[str] | None]:
    """Positions of the first varied knob's values, the axis label, and tick labels when
    the axis is categorical."""
    if knob is None:
        return [0.0] * len(values), "", ["all runs"]
    texts = ["" if v is None else str(v) for v in values]
    if knob_type(knob) in (int, float):
        try:
            return [float(parse_value(knob, t)) for t in texts], knob, None
        except (SweepError, OverflowError):
            pass
    if knob == "ADVERSARIES":
        # "behaviour:count" of a single behaviour: the count is the natural x; "" is 0.
        parsed = [re.fullmatch(r"\s*([a-z]+)\s*:\s*(\d+)\s*", t) for t in texts]
        behaviours = {m.group(1) for m in parsed if m}
        if len(behaviours) <= 1 and all(m or not t.strip() for m, t in zip(parsed, texts,
                                                                              strict=True)):
            label = f"{behaviours.pop()} employees" if behaviours else "adversaries"
            return [float(m.group(2)) if m else 0.0 for m in parsed], label, None
    order = sorted(set(texts), key=value_sort_key)
    return [float(order.index(t)) for t in texts], knob, order


def employees_behind_counts(xs: Sequence[float], points: Sequence[dict[str, Any]]
                            ) -> int | None:
    """The one EMPLOYEES_NUM behind an axis of adversary counts, from the points' shares
    (None when the points do not agree on one, or tell none): then the axis can show
    the share of the employees beside the count."""
    found = {round(x / share) for x, p in zip(xs, points, strict=True)
             if (share := number(p.get("adversary_share"))) and x > 0}
    return found.pop() if len(found) == 1 else None


def employees_of(records: Sequence[dict[str, Any]]) -> int | None:
    """The one EMPLOYEES_NUM of every recorded run (None when they differ, or none)."""
    default = default_texts()["EMPLOYEES_NUM"]
    values = {canonical("EMPLOYEES_NUM", r.get("knobs", {}).get("EMPLOYEES_NUM", default))
              for r in records}
    if len(values) != 1:
        return None
    try:
        return int(values.pop())
    except ValueError:
        return None


def share_of_employees(knob: str, value: Any, point: dict[str, Any],
                       employees: int | None) -> float | None:
    """The share of the employees a knob's value stands for: ADVERSARIES' is the point's
    adversary_share (from its runs), a count of EMPLOYEE_COUNT_KNOBS is divided by the
    one EMPLOYEES_NUM; None for any other knob, or when the share is not known."""
    if knob == "ADVERSARIES":
        return number(point.get("adversary_share"))
    count = number(value) if knob in EMPLOYEE_COUNT_KNOBS else None
    return None if count is None or not employees else count / employees


def with_share(text: str, share: float | None) -> str:
    """``poisoned:14`` -> ``poisoned:14 (0.45)``: a count with the share beside it."""
    return text if share is None else f"{text} ({share:.2f})"


def share_axis_employees(knob: str | None, ticks: Sequence[str] | None, xs: Sequence[float],
                         points: Sequence[dict[str, Any]], employees: int | None
                         ) -> int | None:
    """The EMPLOYEES_NUM by which a numeric axis of employee counts (ADVERSARIES of one
    behaviour, or a count knob) is shown as a share too; None for any other axis."""
    if knob is None or ticks is not None:
        return None
    if knob == "ADVERSARIES":
        return employees or employees_behind_counts(xs, points)
    return employees if knob in EMPLOYEE_COUNT_KNOBS else None


def plot_points(points: Sequence[dict[str, Any]], varied: Sequence[str], out_dir: Path,
                title: str, employees: int | None = None) -> list[Path]:
    """sweep.png with every plotted measure that has a value, and one PNG per measure.
    ``employees``: the one EMPLOYEES_NUM of the runs, if they share one (the shares of
    employee counts)."""
    if not points:
        return []
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator
    from matplotlib.transforms import blended_transform_factory

    first = varied[0] if varied else None
    xs, xlabel, ticks = x_axis(first, [p.get(first) if first else None for p in points])
    per_employee = share_axis_employees(first, ticks, xs, points, employees)
    if ticks is not None and first is not None:  # categories: each with its share
        point_of = {str(p.get(first)): p for p in points}
        ticks = [with_share(t, share_of_employees(first, t, point_of.get(t, {}), employees))
                 for t in ticks]
    others = list(varied[1:])
    lines: dict[tuple[Any, ...], list[int]] = {}
    for i, point in enumerate(points):
        lines.setdefault(tuple(point.get(k) for k in others), []).append(i)
    span = (max(xs) - min(xs)) or 1.0
    failed_total = sum(p["n_self_check_failed"] for p in points)
    failed_at: dict[float, int] = {}
    for x_value, point in zip(xs, points, strict=True):
        if point["n_self_check_failed"]:
            failed_at[x_value] = failed_at.get(x_value, 0) + point["n_self_check_failed"]
    panels = [(prefix, stat, label) for prefix, stat, label in PLOTTED
              if any(p.get(f"{prefix}_{stat}") is not None for p in points)]

    def draw(ax: Any, prefix: str, stat: str, label: str) -> None:
        nan = float("nan")
        # Failures at the bottom edge: their runs have no value in the measure itself.
        edge = blended_transform_factory(ax.transData, ax.transAxes)
        # ... one mark per x value, with the failed runs of all its lines counted.
        for x_value, failed in failed_at.items():
            ax.plot([x_value], [0.04], "x", color="red", markersize=9, mew=2, transform=edge)
            ax.annotate(str(failed), (x_value, 0.04), xycoords=edge, xytext=(5, 3),
                        textcoords="offset points", color="red", fontsize=8)
        for position, (key, members) in enumerate(lines.items()):
            # Lines side by side rather than on top of each other, error bars readable.
            shift = (position - (len(lines) - 1) / 2) * 0.012 * span if len(lines) > 1 \
                else 0
            x = [xs[i] + shift for i in members]
            y = [number(points[i].get(f"{prefix}_{stat}")) for i in members]
            if all(v is None for v in y):
                continue  # e.g. no accuracy with the hash trainer: no empty legend entry
            low = [number(points[i].get(f"{prefix}_ci95_low")) for i in members]
            high = [number(points[i].get(f"{prefix}_ci95_high")) for i in members]
            # max(0, ...): a mean and its bound computed apart may differ in the last bit
            # when the spread is zero, and matplotlib refuses a negative error bar.
            below = [nan if v is None or lo is None else max(0.0, v - lo)
                     for v, lo in zip(y, low, strict=True)]
            above = [nan if v is None or hi is None else max(0.0, hi - v)
                     for v, hi in zip(y, high, strict=True)]
            name = ", ".join(
                f"{k}={with_share(str(v), share_of_employees(k, v, points[members[0]], employees))}"
                for k, v in zip(others, key, strict=True)) or "mean"
            # A fixed colour per line, so that a line keeps it in every panel.
            ax.errorbar(x, [nan if v is None else v for v in y], yerr=[below, above],
                        marker="o", capsize=3, label=name, color=f"C{position % 10}")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel(xlabel)
        if stat == "rate":
            ax.set_ylim(-0.05, 1.05)
            ax.set_ylabel("rate (95% Wilson interval)", fontsize=8)
        else:
            ax.set_ylabel("mean (95% t interval)", fontsize=8)
        if ticks is None and all(float(x).is_integer() for x in xs):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts, not 0.25 steps
        if ticks is not None:
            ax.set_xticks(range(len(ticks)), ticks, rotation=30 if len(ticks) > 4 else 0,
                          fontsize=8)
        if per_employee:  # counts below, the share of the employees they are above
            share = ax.secondary_xaxis("top", functions=(lambda x: x / per_employee,
                                                         lambda s: s * per_employee))
            share.set_xlabel(f"share of the {per_employee} employees", fontsize=8)
        ax.grid(alpha=0.3)
        handles, _ = ax.get_legend_handles_labels()
        if failed_total:
            handles.append(Line2D([], [], marker="x", color="red", linestyle="none",
                                  mew=2, label=f"self-check failed ({failed_total} runs)"))
        if len(lines) > 1 or failed_total:
            ax.legend(handles=handles, fontsize=7)

    def save(figure: Any, path: Path) -> None:
        FigureCanvasAgg(figure)
        figure.suptitle(title, fontsize=9)
        figure.savefig(path, dpi=100)

    written = []
    columns = 2 if len(panels) > 1 else 1
    rows = max(1, math.ceil(len(panels) / columns))
    figure = Figure(figsize=(6.5 * columns, 4.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        draw(ax, *panel)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    if not panels:
        axes[0].text(0.5, 0.5, "no values to plot (every run failed its self-check?)",
                     ha="center", va="center", transform=axes[0].transAxes)
    save(figure, out_dir / "sweep.png")
    written.append(out_dir / "sweep.png")
    for panel in panels:
        figure = Figure(figsize=(6.5, 4.5), layout="constrained")
        draw(figure.subplots(), *panel)
        path = out_dir / f"sweep_{panel[0]}.png"
        save(figure, path)
        written.append(path)
    return written


def _interval_text(low: Any, high: Any) -> str:
    if low is None or high is None:
        return ""
    return f"[{low:.2f}, {high:.2f}]"


def print_table(points: Sequence[dict[str, Any]], knobs: Sequence[str], out: TextIO,
                employees: int | None = None) -> None:
    header = [*knobs, "n", "failed", "employer poisoned", "95% CI"]
    body = []
    for p in points:
        rate = p.get("employer_poisoned_rate")
        cells = [with_share(str(p.get(k)), share_of_employees(k, p.get(k), p, employees))
                 for k in knobs]
        body.append([*cells, str(p["n"]),
                     str(p["n_self_check_failed"]), "" if rate is None else f"{rate:.2f}",
                     _interval_text(p.get("employer_poisoned_ci95_low"),
                                    p.get("employer_poisoned_ci95_high"))])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    for line in [header, *body]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip(),
              file=out)


def write_outputs(out_dir: Path, plan: Plan) -> tuple[list[Path], int]:
    """runs.csv, summary.csv and the plots from every row file; returns the files
    written and how many recorded runs failed the self-check."""
    records = load_records(out_dir / "runs")
    knobs = output_knobs(plan.varied_knobs, records)
    rows = flatten(records, knobs)
    points = summarize_rows(rows, knobs)
    write_csv(out_dir / "runs.csv", [*knobs, *RUN_COLUMNS], rows)
    write_csv(out_dir / "summary.csv", [*knobs, *SUMMARY_COLUMNS], points)
    fixed = ", ".join(f"{k}={v}" for k, v in plan.fixed.items())
    seeds = len({r["seed"] for r in rows})
    title = f"{len(rows)} runs, {seeds} seeds" + (f"; {fixed}" if fixed else "")
    employees = employees_of(records)
    plots = plot_points(points, knobs, out_dir, title, employees)
    if points:
        print_table(points, knobs, sys.stdout, employees)
    return [out_dir / "runs.csv", out_dir / "summary.csv", *plots], sum(
        p["n_self_check_failed"] for p in points)


# --- The command --------------------------------------------------------------------------


def execute(todo: Sequence[Run], runs_dir: Path, jobs: int, keep_logs: bool, quiet: bool,
            cluster: Any = None, requests: Sequence[Any] = ()
            ) -> tuple[int | None, dict[str, int]]:
    """Run ``todo`` ``jobs`` at a time, or as tasks on ``cluster`` (a ``cluster.Cluster``,
    each run declaring its ``requests`` entry); returns the signal that stopped the sweep
    (None when it ran to the end) and counts of the outcomes."""
    from tqdm import tqdm

    launcher = Launcher()
    stopper = launcher if cluster is None else cluster
    counts = {"recorded": 0, "interrupted": 0, "not started": 0, "error": 0}
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda s, _f: stopper.stop(s))
    # disable=None: no bar when stderr is not a terminal (a log file, CI).
    bar = tqdm(total=len(todo), unit="run", disable=True if quiet or not todo else None,
               smoothing=0, dynamic_ncols=True)
    failures = 0

    def troubles() -> None:
        shown = {"failed": failures, "not recorded": counts["error"]}
        bar.set_postfix({k: v for k, v in shown.items() if v})

    def note(text: str, stream: TextIO) -> None:
        if bar.disable:
            print(text, file=stream, flush=True)
        else:
            tqdm.write(text, file=stream)  # above the bar, which it redraws

    def report(outcome: Outcome) -> None:
        nonlocal failures
        counts[outcome.status] += 1
        if outcome.status == "not started":
            return
        # The bar (and each line's count) is of row files written: a run interrupted
        # or not recorded for an error is redone on resume.
        recorded = counts["recorded"]
        if outcome.status == "recorded":
            bar.update(1)
        code = outcome.exit_code
        default = ("killed by a signal" if code is not None and code < 0
                   else "unexpected exit code")
        meaning = default if code is None else EXIT_MEANINGS.get(code, default)
        if outcome.status == "error":
            troubles()
            note(f"error: {outcome.run.run_id}: {outcome.message}", sys.stderr)
        elif outcome.status == "recorded" and code not in RECORDED_LOGS_DELETED:
            failures += 1
            troubles()
            note(f"warning: {outcome.run.run_id} exited {code} ({meaning}); "
                 f"output kept in {runs_dir / (outcome.run.run_id + '.out')}",
                 sys.stderr)
        elif not quiet and bar.disable:
            state = ("interrupted, not recorded" if outcome.status == "interrupted"
                     else meaning)
            note(f"[{recorded}/{len(todo)}] {outcome.run.run_id}: exit {code} "
                 f"({state})", sys.stdout)

    try:
        if cluster is None:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                pending: set[Future[Outcome]] = {
                    pool.submit(run_one, run, runs_dir, launcher, keep_logs) for run in todo}
                while pending:
                    # A timeout keeps the main thread responsive to signals everywhere.
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    for future in done:
                        report(future.result())
        else:
            for outcome in on_cluster(cluster, todo, requests, runs_dir, keep_logs):
                report(outcome)
    finally:
        bar.close()
        for number, handler in previous.items():
            signal.signal(number, handler)
    return stopper.signum, counts


def on_cluster(cluster: Any, todo: Sequence[Run], requests: Sequence[Any], runs_dir: Path,
               keep_logs: bool) -> Iterable[Outcome]:
    """The outcomes of ``todo`` run as tasks on ``cluster``, as they end. Each task runs
    the command a local run has, with its files named relative to the node's folder."""
    from simulation.experiments.cluster import Job

    by_id = {run.run_id: run for run in todo}
    jobs = [Job(run.run_id, command_for(run, RunPaths.of(Path(), run.run_id)), request)
            for run, request in zip(todo, requests, strict=True)]
    for answer in cluster.run(jobs, keep_logs, RECORDED_LOGS_DELETED):
        try:
            yield record_answer(answer, by_id, runs_dir, keep_logs)
        except Exception as exc:  # noqa: BLE001 - as run_one: reported, redone on resume
            yield Outcome(by_id[answer.job.run_id], "error",
                          message=f"{type(exc).__name__}: {exc}")


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """--ray-address, --run-cpus and --run-memory: the sweep's, and a study's, which
    passes them on to each of its sweeps."""
    cluster = parser.add_argument_group(
        "on a Ray cluster", "every run a Ray task on the cluster's nodes, instead of --jobs "
                            "at a time on this machine")
    cluster.add_argument("--ray-address", metavar="ADDRESS",
                         help="the cluster: auto (the one this machine belongs to) or "
                              "HOST:PORT of its head. The runs' own RAY_ADDRESS knob is "
                              "--set RAY_ADDRESS=...")
    cluster.add_argument("--run-cpus", type=float, metavar="C",
                         help="CPUs each run declares (default: 1; EMPLOYEES_NUM with Keras "
                              "on the process backend; at most the largest node's)")
    cluster.add_argument("--run-memory", type=int, metavar="MB",
                         help="memory each run declares in MB (default: from BACKEND, TRAINER "
                              "and EMPLOYEES_NUM, e.g. 320 for 11 hash employees)")


def build_parser() -> config.FlagParser:
    parser = config.FlagParser(
        prog=PROG,
        usage="%(prog)s [--set KNOB=VALUES ...] [--seeds N|A..B] [--jobs J] --out DIR\n"
              "       [--knob-flag VALUE ...] [--keep-logs] [--quiet] [--dry-run]\n"
              "       [--ray-address ADDRESS [--run-cpus C] [--run-memory MB]]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run main.py over the Cartesian product of knob values times seeds, "
                    "resumably,\nand write runs.csv, summary.csv and plots.",
        epilog="""VALUES: a list separated by ',' or, if it contains a ';', by ';' (then a
value may hold commas). Inside a value, A..B or A..B..STEP (integers, inclusive) expands
into several values. A knob given with one value is fixed for every run.

examples:
  python -m simulation.sweep --set ADVERSARIES=poisoned:0..8 --seeds 20 --out study
  python -m simulation.sweep --set ADVERSARIES='poisoned:4,lazy:1;poisoned:2' \\
      --set EMPLOYEES_NUM=7..23..8 --trainer hash --seeds 3..5 --out study2

Interrupt with Ctrl-C (or SIGTERM): no new run starts, the signal is forwarded to the
running main.py processes, which stop within seconds and are redone later (a second Ctrl-C
is forwarded too: main.py then kills its processes at once). The outputs are written for
what is recorded; the same command with the same --out resumes.

On a Ray cluster (--ray-address auto): every run is a Ray task declaring its CPUs and
memory, so the runs spread over the nodes; every node needs this checkout at the same
path and the same environment. Outputs and resume are a local sweep's; runs.csv also
names each run's node.""")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        metavar="KNOB=VALUES",
                        help="a knob (constants.py name, or flag form employees-num) and "
                             "its values; repeatable")
    parser.add_argument("--seeds", default="1", metavar="N|A..B",
                        help="seeds 1..N, or A..B (default: 1)")
    parser.add_argument("--jobs", type=int, default=None, metavar="J",
                        help="runs at once on this machine (default: 2); each run is several "
                             "processes")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="output directory; runs/ holds one row file per recorded run")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep every run's .log and .out (default: only of runs that "
                             "exited other than 0 or 1)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no line per run")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the runs and exit")
    add_cluster_options(parser)
    group = parser.add_argument_group(
        "fixed knobs", "any knob flag of main.py but --ray-address (the sweep's own), fixed "
                       "for every run (the same as --set KNOB=VALUE); `python main.py --help` "
                       "(installed: `pot-sim --help`) says what each means")
    defaults = default_texts()
    for knob in config.knob_names():
        if knob in FLAG_TAKEN:
            continue
        # SEED and LOG_FILE are parsed only to say why they cannot be given.
        shown = (f"(default: {defaults[knob]})".replace("%", "%%") if knob in defaults
                 else argparse.SUPPRESS)
        group.add_argument(config.flag_name(knob), dest=f"fixed_{knob}", default=None,
                           metavar="VALUE", help=shown)
    return parser


def run_backend(run: Run) -> str:
    return {**default_texts(), **run.knobs}["BACKEND"].strip()


def cluster_problems(args: argparse.Namespace, plan: Plan | None) -> list[str]:
    """What is wrong with the cluster options, one line each (checked with the rest of
    the command line, before anything runs)."""
    import importlib.util

    out = []
    if args.ray_address is None:
        for flag, value in (("--run-cpus", args.run_cpus), ("--run-memory", args.run_memory)):
            if value is not None:
                out.append(f"{flag} is what a run declares on a Ray cluster: give "
                           f"--ray-address too")
        return out
    if not args.ray_address.strip():
        out.append("--ray-address needs the cluster's address: auto, or HOST:PORT of its "
                   "head")
    if args.jobs is not None:
        out.append("--jobs is the number of runs at once on this machine; with --ray-address "
                   "the cluster runs as many as its CPUs and memory hold (a run's share: "
                   "--run-cpus, --run-memory)")
    if args.run_cpus is not None and not args.run_cpus > 0:
        out.append(f"--run-cpus must be above 0, got {args.run_cpus:g}")
    if args.run_memory is not None and args.run_memory < 1:
        out.append(f"--run-memory must be at least 1 (MB), got {args.run_memory}")
    if importlib.util.find_spec("ray") is None:
        from simulation.experiments.cluster import NEEDS_RAY

        out.append(NEEDS_RAY)
    if plan is not None and any(run_backend(run) == "ray" for run in plan.runs):
        # Each task's run would start a Ray instance of its own on its node: refused
        # rather than quietly changing what `--backend ray --ray-address auto` used to do.
        out.append("--ray-address makes every run a task on the cluster, and runs with "
                   "BACKEND ray would each start a Ray instance of their own there; for runs "
                   "whose own Ray joins the cluster give --set RAY_ADDRESS=ADDRESS instead")
    return out


def requests_of(args: argparse.Namespace, runs: Sequence[Run]) -> list[Any]:
    """What each run declares before the cluster's cap: the options', else the defaults
    for its scenario."""
    from simulation.experiments.cluster import Request, default_request

    requests = []
    for run in runs:
        knobs = {**default_texts(), **run.knobs}
        default = default_request(knobs["BACKEND"].strip(), knobs["TRAINER"].strip(),
                                  parse_value("EMPLOYEES_NUM", knobs["EMPLOYEES_NUM"]))
        requests.append(Request(
            cpus=default.cpus if args.run_cpus is None else args.run_cpus,
            memory_mb=default.memory_mb if args.run_memory is None else args.run_memory))
    return requests


def describe_requests(args: argparse.Namespace, runs: Sequence[Run]) -> str:
    from simulation.experiments.cluster import describe

    return describe(requests_of(args, runs)) if runs else "nothing"


def join_cluster(args: argparse.Namespace, todo: Sequence[Run]
                 ) -> tuple[Any, list[Any], list[str]]:
    """The cluster at --ray-address, what each run of ``todo`` declares there, and the
    problems that stop the sweep before any run (the cluster is then left again)."""
    from simulation.experiments.cluster import Cluster, ClusterError, fit

    try:
        cluster = Cluster.connect(args.ray_address)
    except ClusterError as exc:
        return None, [], [str(exc)]
    largest = cluster.largest
    problems = []
    if largest.cpus <= 0:
        problems.append(f"the cluster at {args.ray_address} has no CPUs for the runs")
    if args.run_cpus is not None and args.run_cpus > largest.cpus:
        problems.append(f"--run-cpus {args.run_cpus:g} is more than the largest node has "
                        f"({largest.cpus:g}): no run could start")
    if args.run_memory is not None and args.run_memory > largest.memory_mb:
        problems.append(f"--run-memory {args.run_memory} is more than the largest node has "
                        f"({largest.memory_mb} MB): no run could start")
    if problems:
        cluster.close()
        return None, [], problems
    # A default is cut to the largest node (an option beyond it is refused above).
    return cluster, [fit(r, largest) for r in requests_of(args, todo)], []


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The command line's own problems (a mistyped flag, a bad --jobs, no --out) and the
    # plan's are reported together.
    args, errors = build_parser().parse_args_and_problems(argv)
    fixed = {knob: getattr(args, f"fixed_{knob}") for knob in config.knob_names()
             if knob not in FLAG_TAKEN and getattr(args, f"fixed_{knob}") is not None}
    plan, plan_errors = build_plan(args.sets, fixed, args.seeds)
    errors += plan_errors
    jobs = 2 if args.jobs is None else args.jobs
    if jobs < 1:
        errors.append(f"--jobs must be at least 1, got {jobs}")
    errors += cluster_problems(args, plan)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        errors.append(f"--out {args.out} exists and is not a directory")
    if errors or plan is None:
        for line in errors[:MAX_ERRORS_SHOWN]:
            print(f"error: {line}", file=sys.stderr)
        if len(errors) > MAX_ERRORS_SHOWN:
            print(f"error: ... and {len(errors) - MAX_ERRORS_SHOWN} more", file=sys.stderr)
        return EXIT_INVALID

    out_dir = args.out.resolve()
    runs_dir = out_dir / "runs"
    recorded = recorded_digests(runs_dir)
    todo = [run for run in plan.runs if run.digest not in recorded]
    skipped = len(plan.runs) - len(todo)
    if args.dry_run:
        try:
            if args.ray_address is not None:
                print(f"on the Ray cluster at {args.ray_address}, each run declaring "
                      f"{describe_requests(args, plan.runs)} (before the largest node's cap)")
            if plan.fixed:
                print("fixed: " + " ".join(f"{k}={v}" for k, v in plan.fixed.items()))
            for run in plan.runs:
                settings = " ".join([*(f"{k}={v}" for k, v in run.varied.items()),
                                     f"seed={run.seed}"])
                mark = "  (recorded)" if run.digest in recorded else ""
                print(f"{run.run_id}  {settings}{mark}")
            print(f"{len(plan.runs)} runs: {skipped} recorded, {len(todo)} to run",
                  flush=True)
        except BrokenPipeError:
            # The reader took what it wanted (``--dry-run | head``): no traceback, and
            # nothing left for the interpreter to flush into the closed pipe at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

    cluster: Any = None
    requests: list[Any] = []
    if args.ray_address is not None and todo:  # nothing to run: no cluster needed
        cluster, requests, problems = join_cluster(args, todo)
        if problems:
            for line in problems:
                print(f"error: {line}", file=sys.stderr)
            return EXIT_INVALID
    runs_dir.mkdir(parents=True, exist_ok=True)
    if cluster is not None:
        from simulation.experiments.cluster import describe

        where = (f" as Ray tasks on {cluster.nodes} nodes ({cluster.cpus:g} CPUs) at "
                 f"{args.ray_address}, each declaring {describe(requests)}")
    elif args.ray_address is not None:
        where = " on the cluster"
    else:
        where = f", {min(jobs, max(1, len(todo)))} at a time"
    print(f"{len(plan.runs)} runs: {skipped} already recorded (skipped), {len(todo)} to run"
          f"{where}; output in {out_dir}", flush=True)
    started = time.monotonic()
    try:
        signum, counts = execute(todo, runs_dir, jobs, args.keep_logs, args.quiet, cluster,
                                 requests)
    finally:
        if cluster is not None:
            cluster.close()
    files, failed = write_outputs(out_dir, plan)
    print(f"{counts['recorded']} runs recorded in {time.monotonic() - started:.0f} s; "
          f"written: {', '.join(str(f.relative_to(out_dir)) for f in files)} in {out_dir}")
    if failed:
        print(f"warning: {failed} recorded runs failed their self-check (see "
              f"self_check_failures in runs.csv and the kept .out files)")
    if counts["error"]:
        print(f"warning: {counts['error']} runs could not be started", file=sys.stderr)
    if signum is not None:
        missing = len(todo) - counts["recorded"]  # interrupted, not started or an error
        name = signal.Signals(signum).name
        print(f"interrupted by {name}: {missing} runs not recorded; resume with:\n"
              f"  {PROG} {shlex.join(argv)}")
        return 128 + signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
