"""What a new user meets on the command line of ``python main.py`` and
``python -m simulation.sweep``: every problem at once, one line each, exit 2, before any
process starts; a typo of a knob's value gets the closest value."""

from __future__ import annotations

import logging
import time

import pytest

import main
from simulation.config import FlagParser, default_scenario, problems
from simulation.experiments import sweep
from simulation.net.logs import PROGRESS_LOGGER
from simulation.net.watch import Watch


def test_main_py_says_a_bad_value_and_what_the_scenario_says_of_the_rest(capsys):
    """argparse stops at the first value it cannot convert: POISON_RATE half hid the
    mistyped TRAINER."""
    assert main.main(["--poison-rate", "half", "--trainer", "hsh"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: argument --poison-rate: invalid float value: 'half'",
        "error: TRAINER must be one of keras, hash, got 'hsh' (did you mean hash?)"]


def test_main_py_says_every_kind_of_problem_once(capsys):
    words = ["--employer-confidance", "5", "--poison-rate", "half", "--employees-num", "x",
             "stray", "--seed=-1", "--trainer", "hsh"]
    assert main.main(words) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: argument --poison-rate: invalid float value: 'half'",
        "error: argument --employees-num: not an integer: 'x'",
        "error: unknown flag --employer-confidance (did you mean --employer-confidence, "
        "--employer-fork-choice, --employer-peers?)",
        "error: unexpected argument 'stray': every option is a --flag VALUE",
        "error: SEED must be at least 0, got -1",
        "error: TRAINER must be one of keras, hash, got 'hsh' (did you mean hash?)"]


def test_a_scenario_file_that_cannot_be_read_is_said_beside_a_bad_flag(tmp_path, capsys):
    missing = tmp_path / "none.toml"
    assert main.main(["--scenario", str(missing), "--tf-seed", "z"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: argument --tf-seed: not an integer: 'z'",
        f"error: --scenario {missing}: cannot be read (No such file or directory)"]


def _parser() -> FlagParser:
    parser = FlagParser(prog="probe")
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rate", type=float)
    return parser


def test_the_parser_collects_bad_values_and_a_missing_required_flag():
    args, found = _parser().parse_args_and_problems(["--jobs", "x", "--rate", "y"])
    assert found == ["argument --jobs: invalid int value: 'x'",
                     "argument --rate: invalid float value: 'y'",
                     "the flag --out DIR is required"]
    assert (args.jobs, args.rate, args.out) == (2, None, None)  # the defaults
    # The parser is unchanged by a parse: --out is still required in the next one.
    args, found = _parser().parse_args_and_problems(["--out", "o", "--jobs", "3"])
    assert found == [] and (args.out, args.jobs) == ("o", 3)
    parser = _parser()
    parser.parse_args_and_problems(["--jobs", "x"])
    assert parser.parse_args_and_problems([])[1] == ["the flag --out DIR is required"]


def test_what_argparse_cannot_parse_past_ends_the_parse_with_what_was_found(capsys):
    with pytest.raises(SystemExit) as stopped:
        _parser().parse_args(["--jobs", "x", "--rate"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: argument --jobs: invalid int value: 'x'",
        "error: argument --rate: expected one argument (see probe --help)"]


def test_the_sweep_says_its_flags_problems_beside_the_plans(capsys):
    """A bad --jobs, a mistyped flag and no --out used to stop the sweep before the
    plan's problems were looked at (and each hid the others)."""
    argv = ["--set", "POISON_RATE=half", "--trainer", "hsh", "--jobs", "x",
            "--employer-confidance", "5", "--employees", "31"]
    assert sweep.main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: argument --jobs: invalid int value: 'x'",
        "error: unknown flag --employer-confidance (did you mean --employer-confidence, "
        "--employer-fork-choice, --employer-peers?)",
        # No abbreviations: a prefix of a flag is not that flag.
        "error: unknown flag --employees (did you mean --employees-num, --employer-peers, "
        "--employer-confidence?)",
        "error: the flag --out DIR is required",
        "error: POISON_RATE: 'half' is not a valid float",
        "error: TRAINER must be one of keras, hash, got 'hsh' (did you mean hash?)"]


@pytest.mark.parametrize(("knob", "value", "line"), [
    ("trainer", "hsh", "TRAINER must be one of keras, hash, got 'hsh' (did you mean hash?)"),
    ("trainer", "pytorch", "TRAINER must be one of keras, hash, got 'pytorch'"),
    ("backend", "procss", "BACKEND must be one of process, ray, lockstep, got 'procss' "
                          "(did you mean process?)"),
    ("verification", "tolerent", "VERIFICATION must be one of exact, tolerant, got "
                                 "'tolerent' (did you mean tolerant?)"),
    ("adversary_placement", "employr", "ADVERSARY_PLACEMENT must be one of random, "
                                       "employer, got 'employr' (did you mean employer?)"),
    ("employer_fork_choice", "longst", "EMPLOYER_FORK_CHOICE must be one of longest, "
                                       "declarers, got 'longst' (did you mean longest?)"),
    ("latency", "unifrm:1:2", "LATENCY: unknown latency model 'unifrm' (did you mean "
                              "uniform? known: constant, uniform, lognormal, regions)"),
    ("latency", "gamma:1:2", "LATENCY: unknown latency model 'gamma' (known: constant, "
                             "uniform, lognormal, regions)"),
])
def test_a_typo_of_a_knobs_value_gets_the_closest_value(knob, value, line):
    assert problems(default_scenario().replace(**{knob: value})) == [line]


@pytest.mark.parametrize(("knob", "value", "start", "hint"), [
    ("adversaries", "poisond:3", "ADVERSARIES: unknown behaviour 'poisond' (",
     "did you mean poisoned? known: poisoned, lazy, "),
    ("open_rules", "al", "OPEN_RULES: unknown rule 'al' (", "did you mean all? known: "),
    ("hardware", "fst:2", "HARDWARE: unknown hardware profile 'fst' (",
     "did you mean fast? known: reference, "),
])
def test_a_typo_in_a_text_knob_gets_the_closest_name(knob, value, start, hint):
    (line,) = problems(default_scenario().replace(**{knob: value}))
    assert line.startswith(start + hint), line
    assert line.endswith(", or all)" if knob == "open_rules" else
                         ", xFACTOR, or mixed)" if knob == "hardware" else ", selfish)")


def _progress_lines(caplog, users_down) -> list[str]:
    scenario = default_scenario().replace(trainer="hash", employees_num=31)
    watch = Watch(scenario, time.monotonic(), lambda: (30, 31), users_down=users_down)
    with caplog.at_level(logging.INFO, logger=PROGRESS_LOGGER):
        watch(7, [])
        watch(9, [_Height(2)])
    return [r.getMessage() for r in caplog.records if r.name == PROGRESS_LOGGER]


class _Height:
    def __init__(self, height: int):
        self.height = height


def test_the_progress_line_counts_employees_and_says_when_the_users_are_gone(caplog):
    assert _progress_lines(caplog, None) == [
        "tick 9: longest honest chain has 3 blocks (live employees 30/31)"]
    caplog.clear()
    assert _progress_lines(caplog, lambda: True) == [
        "tick 9: longest honest chain has 3 blocks (live employees 30/31; the users' "
        "process is down)"]
    caplog.clear()
    assert _progress_lines(caplog, lambda: False) == [
        "tick 9: longest honest chain has 3 blocks (live employees 30/31)"]



def test_the_rerun_line_names_the_command_the_run_was_started_with(tmp_path, capsys):
    """pot-sim's run says `pot-sim --scenario ...`, not a main.py an installed copy lacks."""
    import json

    from simulation import cli
    from simulation.config import default_scenario
    from simulation.net import runner

    results = tmp_path / "r.json"
    code = cli.main(["--trainer", "hash", "--backend", "lockstep", "--employees-num", "4",
                     "--target-blockchain-length", "2", "--quiet", "--run-dir",
                     str(tmp_path / "run"), "--results", str(results),
                     "--log-file", str(tmp_path / "log")], prog="pot-sim")
    assert code == 0
    summary = json.loads(results.read_text())
    assert summary["rerun"] == f"pot-sim --scenario {tmp_path / 'run' / 'scenario.json'}"
    record = json.loads((tmp_path / "run" / "scenario.json").read_text())
    assert record["rerun"] == summary["rerun"]
    assert f"Re-run: {summary['rerun']}" in capsys.readouterr().out
    scenario = default_scenario().replace(seed=5)
    assert runner.rerun_command(scenario, command="python -m simulation") == \
        "python -m simulation --seed 5"
