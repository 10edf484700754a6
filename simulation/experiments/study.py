"""Study files: ``python -m simulation.sweep --study studies/NAME.toml``.

Why: a committed study is a handful of sweeps (knob values, seeds, fixed knobs, an output
folder each) and the figures drawn from them. Kept as a file, the study says exactly what
was run, re-runs with one command, resumes as a sweep does, and cannot drift from a
script's folder table. A study file::

    title = "Does the network catch poisoned training?"
    page = "docs/studies/poisoning.md"       # where it is written up
    fixed = { OPEN_RULES = "all" }           # knobs fixed for every sweep below

    [[sweeps]]
    out = "docs/studies/poisoning_hash"      # relative to the repository
    seeds = "20"                              # N (1..N) or A..B, as --seeds
    fixed = { TRAINER = "hash" }
    set = { ADVERSARIES = "poisoned:0..8", EMPLOYER_CONFIDENCE = "1,3,6" }

    [[steps]]                                 # a study script, after the sweeps
    run = ["scripts/tolerance_study.py", "--seeds", "10", "--stages", "100"]

    [[figures]]
    kind = "threshold"                        # a figure of simulation.experiments.figures
    ...                                       # the figure's own settings

A study that is not a sweep (a script that trains with Keras directly) runs as a step: a
script of the repository and its arguments, started with this interpreter from the
repository. A step is not resumable; it writes its own outputs.

Knobs are written as constants.py names (any case), values as ``--set`` takes them
(ranges, ``;`` between values that hold commas). ``set`` keeps its order: the first knob
is the plots' x axis. Everything is checked before the first run: an unknown key, a knob
or value any sweep would refuse, a figure that does not exist or lacks a setting, one line
per problem.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulation import config
from simulation.experiments import sweep as sweeping

ROOT = sweeping.ROOT
STUDY_KEYS = {"title", "page", "fixed", "sweeps", "figures", "description", "jobs", "steps"}
SWEEP_KEYS = {"out", "seeds", "fixed", "set", "note"}


class StudyError(ValueError):
    """Problems with a study file: one ``error:`` line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class SweepSpec:
    """One sweep of a study: what ``python -m simulation.sweep`` would be given."""

    out: Path  # absolute
    seeds: str
    sets: tuple[str, ...]  # "KNOB=VALUES", in the file's order
    fixed: tuple[tuple[str, str], ...]  # (KNOB, value): the study's, then the sweep's

    def argv(self) -> list[str]:
        """The sweep's own command line (without --jobs, --quiet and the like)."""
        words = ["--out", str(self.out), "--seeds", self.seeds]
        for item in self.sets:
            words += ["--set", item]
        for knob, text in self.fixed:  # as a knob flag: a fixed value is never split at ","
            name = sweeping.normalize_knob(knob)
            if name in sweeping.FLAG_TAKEN:  # its flag is the sweep's own option
                words += ["--set", f"{name}={text}"]
            else:
                words += [config.flag_name(name), text]
        return words


@dataclass(frozen=True)
class Step:
    """A study script and its arguments; its output also goes to ``stdout`` if given
    (steps of one study naming the same file write one after another into it)."""

    run: tuple[str, ...]
    stdout: str = ""


@dataclass(frozen=True)
class FigureSpec:
    kind: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class Study:
    path: Path
    title: str
    page: str
    sweeps: tuple[SweepSpec, ...]
    figures: tuple[FigureSpec, ...]
    jobs: int = 2  # runs at once unless --jobs says otherwise
    steps: tuple[Step, ...] = ()  # scripts run after the sweeps

    def fixed_knobs(self, out: str) -> dict[str, str]:
        """The fixed knobs (upper-case names) and single-valued --set knobs of a sweep;
        none for a folder another study writes."""
        try:
            spec = self.sweep_named(out)
        except KeyError:
            return {}
        knobs = {sweeping.normalize_knob(k): v for k, v in spec.fixed}
        for item in spec.sets:
            knob, _, values = item.partition("=")
            texts = sweeping.expand_values(values)
            if len(texts) == 1:
                knobs[sweeping.normalize_knob(knob)] = texts[0]
        return knobs

    def sweep_named(self, out: str) -> SweepSpec:
        """The sweep whose folder is ``out`` (as the file writes it)."""
        target = (ROOT / out).resolve()
        for spec in self.sweeps:
            if spec.out == target:
                return spec
        raise KeyError(out)


def _text(value: Any) -> str | None:
    """A knob value as the sweep's text: TOML numbers and booleans as they read."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _knob_table(table: Any, where: str, problems: list[str]) -> list[tuple[str, str]]:
    if table is None:
        return []
    if not isinstance(table, dict):
        problems.append(f"{where}: must be a table of KNOB = value")
        return []
    out = []
    for knob, value in table.items():
        text = _text(value)
        if text is None:
            problems.append(f"{where}: {knob} must be a string or a number, got "
                            f"{type(value).__name__}")
            continue
        out.append((str(knob), text))
    return out


def _unknown_keys(table: dict[str, Any], allowed: set[str], where: str,
                  problems: list[str]) -> None:
    for key in table:
        if key not in allowed:
            problems.append(f"{where}: unknown key {key!r} (known: "
                            f"{', '.join(sorted(allowed))})")


def _steps(raw: Any, where: str, problems: list[str]) -> list[Step]:
    if not isinstance(raw, list):
        problems.append(f"{where}: steps must be [[steps]] tables")
        return []
    steps = []
    for number, step in enumerate(raw, 1):
        run = step.get("run") if isinstance(step, dict) else None
        if (not isinstance(run, list) or not run
                or not all(isinstance(word, str) for word in run)):
            problems.append(f"{where}: step {number} needs run = [\"SCRIPT.py\", ARGS...]")
            continue
        extra = set(step) - {"run", "note", "stdout"}
        if extra:
            problems.append(f"{where}: step {number}: unknown keys {', '.join(sorted(extra))}")
        stdout = step.get("stdout", "")
        if not isinstance(stdout, str):
            problems.append(f"{where}: step {number}: stdout must be a path")
            stdout = ""
        script = (ROOT / run[0]).resolve()
        if not script.is_relative_to(ROOT) or not script.is_file():
            problems.append(f"{where}: step {number}: no script {run[0]} in the repository")
            continue
        steps.append(Step(tuple(run), stdout))
    return steps


def load_study(path: Path) -> Study:
    """Read and check a study file; StudyError with every problem found."""
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudyError([f"{where}: cannot be read ({exc.strerror or exc})"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StudyError([f"{where}: not valid TOML: {exc}"]) from None
    problems: list[str] = []
    _unknown_keys(data, STUDY_KEYS, where, problems)
    study_fixed = _knob_table(data.get("fixed"), f"{where}: fixed", problems)
    raw_sweeps = data.get("sweeps", [])
    steps = _steps(data.get("steps", []), where, problems)
    if not isinstance(raw_sweeps, list) or not (raw_sweeps or data.get("steps")):
        problems.append(f"{where}: needs at least one [[sweeps]] or [[steps]] table")
        raw_sweeps = []
    specs: list[SweepSpec] = []
    folders: set[Path] = set()
    for number, raw in enumerate(raw_sweeps, 1):
        label = f"{where}: sweep {number}"
        if not isinstance(raw, dict):
            problems.append(f"{label}: must be a table")
            continue
        _unknown_keys(raw, SWEEP_KEYS, label, problems)
        out = raw.get("out")
        if not isinstance(out, str) or not out:
            problems.append(f"{label}: needs out = \"FOLDER\"")
            continue
        label = f"{where}: sweep {out}"
        folder = (ROOT / out).resolve()
        if folder in folders:
            problems.append(f"{label}: another sweep of the study writes there too")
        folders.add(folder)
        seeds = _text(raw.get("seeds", "1"))
        sets = [f"{k}={v}" for k, v in _knob_table(raw.get("set"), f"{label}: set", problems)]
        fixed = study_fixed + _knob_table(raw.get("fixed"), f"{label}: fixed", problems)
        spec = SweepSpec(out=folder, seeds=seeds or "", sets=tuple(sets), fixed=tuple(fixed))
        _, errors = sweeping.build_plan(list(spec.sets), dict(fixed), spec.seeds)
        problems += [f"{label}: {line}" for line in errors]
        specs.append(spec)
    figures: list[FigureSpec] = []
    raw_figures = data.get("figures", [])
    if not isinstance(raw_figures, list):
        problems.append(f"{where}: figures must be [[figures]] tables")
        raw_figures = []
    from simulation.experiments import figures as drawing  # matplotlib only when drawn

    for number, raw in enumerate(raw_figures, 1):
        if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
            problems.append(f"{where}: figure {number} needs kind = \"NAME\"")
            continue
        settings = {k: v for k, v in raw.items() if k != "kind"}
        problems += [f"{where}: figure {raw['kind']}: {line}"
                     for line in drawing.problems(raw["kind"], settings, folders)]
        figures.append(FigureSpec(raw["kind"], settings))
    jobs = data.get("jobs", 2)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        problems.append(f"{where}: jobs must be a whole number of at least 1, got {jobs!r}")
    if problems:
        raise StudyError(problems)
    return Study(path=path, title=str(data.get("title", path.stem)),
                 page=str(data.get("page", "")), sweeps=tuple(specs), figures=tuple(figures),
                 jobs=jobs, steps=tuple(steps))


def run_study(study: Study, options: Sequence[str], dry_run: bool) -> int:
    """Each sweep in turn through the sweep command itself (so resume, outputs and
    interruption are a sweep's), then the figures. Stops at the first sweep that is
    interrupted or refused, and returns its exit code."""
    for number, spec in enumerate(study.sweeps, 1):
        print(f"== {study.title}: sweep {number} of {len(study.sweeps)}, "
              f"{spec.out.relative_to(ROOT) if spec.out.is_relative_to(ROOT) else spec.out}",
              flush=True)
        code = sweeping.main([*spec.argv(), *options, *(["--dry-run"] if dry_run else [])])
        if code != 0:
            return code
    written: set[str] = set()  # files a step of this study already wrote
    for number, step in enumerate(study.steps, 1):
        into = f" > {step.stdout}" if step.stdout else ""
        print(f"== {study.title}: step {number} of {len(study.steps)}: "
              f"python {shlex.join(step.run)}{into}", flush=True)
        if dry_run:
            continue
        code = run_step(step, append=step.stdout in written)
        written.add(step.stdout)
        if code != 0:
            print(f"error: step {number} exited with {code}", file=sys.stderr)
            return code
    if dry_run:
        for figure in study.figures:
            print(f"figure {figure.kind}: {figure.settings.get('output', '')}")
        return 0
    draw_figures(study)
    return 0


def run_step(step: Step, append: bool) -> int:
    """Runs one step from the repository; its lines are printed and, with ``stdout``,
    also written to that file."""
    process = subprocess.Popen([sys.executable, *step.run], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE)
    assert process.stdout is not None
    sink = open(ROOT / step.stdout, "a" if append else "w", encoding="utf-8") \
        if step.stdout else None
    try:
        for line in process.stdout:
            print(line, end="", flush=True)
            if sink:
                sink.write(line)
    finally:
        if sink:
            sink.close()
    return process.wait()


def draw_figures(study: Study) -> None:
    from simulation.experiments import figures as drawing

    for figure in study.figures:
        for line in drawing.draw(figure.kind, figure.settings, study.fixed_knobs):
            print(line)


def build_parser() -> config.FlagParser:
    parser = config.FlagParser(
        prog=sweeping.PROG,
        usage=f"{sweeping.PROG} --study FILE [--jobs J | --ray-address ADDRESS "
              "[--run-cpus C] [--run-memory MB]]\n       [--keep-logs] [--quiet] "
              "[--dry-run | --figures-only]",
        description="Run every sweep a study file declares (resumably, as the sweep does), "
                    "then draw its figures.")
    parser.add_argument("--study", type=Path, required=True, metavar="FILE",
                        help="a study file, e.g. studies/poisoning.toml")
    parser.add_argument("--jobs", type=int, default=None, metavar="J",
                        help="runs at once on this machine (default: the study's jobs, else 2)")
    sweeping.add_cluster_options(parser)  # on a cluster the study's jobs do not apply
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep every run's .log and .out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--dry-run", action="store_true",
                        help="list every sweep's runs and the figures, run nothing")
    parser.add_argument("--figures-only", action="store_true",
                        help="draw the figures from the sweeps' summary.csv as they are, "
                             "run nothing")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        study = load_study(args.study)
    except StudyError as exc:
        for line in exc.problems[:sweeping.MAX_ERRORS_SHOWN]:
            print(f"error: {line}", file=sys.stderr)
        return sweeping.EXIT_INVALID
    # On a cluster the study's jobs (the local pool's size) do not apply; a --jobs given
    # here is passed on, and the sweep says it does not go with --ray-address.
    jobs = args.jobs if args.jobs is not None or args.ray_address is not None else study.jobs
    options = [*(["--jobs", str(jobs)] if jobs is not None else []),
               *(["--keep-logs"] if args.keep_logs else []),
               *(["--quiet"] if args.quiet else [])]
    for flag, value in (("--ray-address", args.ray_address), ("--run-cpus", args.run_cpus),
                        ("--run-memory", args.run_memory)):
        if value is not None:  # checked by the sweep, with its other options
            options += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    try:
        if args.figures_only:
            draw_figures(study)
            return 0
        return run_study(study, options, args.dry_run)
    except BrokenPipeError:
        # The reader took what it wanted (``--dry-run | head``): no traceback, and nothing
        # left for the interpreter to flush into the closed pipe at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
