"""Scenario files (``python main.py --scenario FILE``, simulation.config.scenario_file):
TOML and a run folder's scenario.json, flags over the file, one line per problem, and a
re-run command that does not depend on what constants.py holds later."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulation import constants
from simulation.config import ScenarioError, default_scenario, problems
from simulation.config.scenario_file import read_scenario_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import main  # noqa: E402 - main.py's parser, as a user's command line meets it

TOML = """
# a scenario of my own
EMPLOYEES_NUM = 5
adversaries = "poisoned:1"      # any case
TD_COINSTAKE = "2**250"         # TOML integers stop at 2**63
TRAINER = "hash"
POISON_RATE = 1                 # an integer where a float is expected is fine
"""


def _scenario(*argv: str):
    from simulation.config import scenario_from_args

    return scenario_from_args(main.build_parser().parse_args(list(argv)))


def test_a_toml_file_sets_its_knobs_and_the_flags_override_it(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(TOML)
    assert read_scenario_file(str(path)) == {
        "employees_num": 5, "adversaries": "poisoned:1", "td_coinstake": 2**250,
        "trainer": "hash", "poison_rate": 1}
    scenario = _scenario("--scenario", str(path), "--employees-num", "7", "--seed", "3")
    assert (scenario.employees_num, scenario.seed, scenario.adversaries) == (7, 3, "poisoned:1")
    assert scenario.td_coinstake == 2**250 and scenario.trainer == "hash"
    assert scenario.max_ticks == constants.MAX_TICKS  # what the file does not name
    assert problems(scenario) == []


def test_a_run_folders_scenario_json_reproduces_the_run_whatever_constants_py_says(
        tmp_path, monkeypatch):
    from simulation.net.runner import rerun_command, scenario_record

    original = default_scenario().replace(employees_num=6, seed=9, trainer="hash")
    record = scenario_record(original, str(tmp_path))
    (tmp_path / "scenario.json").write_text(json.dumps(record, default=str))
    assert record["rerun"] == f"python main.py --scenario {tmp_path / 'scenario.json'}"
    assert rerun_command(original) == "python main.py --employees-num 6 --seed 9 " \
                                      "--trainer hash"  # without a folder: the flags
    # Someone edits constants.py afterwards: the flags would now run another scenario,
    # the scenario file still runs this one.
    monkeypatch.setattr(constants, "EMPLOYEES_NUM", 13)
    monkeypatch.setattr(constants, "MAX_TICKS", 77)
    assert _scenario("--employees-num", "6", "--seed", "9", "--trainer", "hash") != original
    assert _scenario("--scenario", str(tmp_path / "scenario.json")) == original


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("typo.toml", "EMPLOYES_NUM = 4\n",
     "unknown knob EMPLOYES_NUM (did you mean EMPLOYEES_NUM, EMPLOYER_PEERS?)"),
    ("bad.toml", "EMPLOYEES_NUM = = 4\n", "not valid TOML"),
    ("bad.json", "{\"EMPLOYEES_NUM\": }", "not valid JSON"),
    ("list.json", "[1, 2]", "must hold a table of KNOB = value"),
    ("power.toml", "TD_COINSTAKE = \"2**x\"\n", "TD_COINSTAKE: not an integer: '2**x'"),
])
def test_a_bad_scenario_file_is_refused_in_one_line(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ScenarioError) as refused:
        read_scenario_file(str(path))
    assert len(refused.value.problems) == 1
    assert refused.value.problems[0].startswith(f"--scenario {path}: {expected}")


def test_a_value_of_the_wrong_type_is_refused_by_the_scenario_checks(tmp_path):
    path = tmp_path / "types.toml"
    path.write_text('SEED = 1.5\nTRAINER = 3\n')
    scenario = _scenario("--scenario", str(path))
    assert problems(scenario) == ["SEED must be int, got 1.5", "TRAINER must be str, got 3"]
    path.write_text('EMPLOYEES_NUM = "eleven"\n')  # text for a number: read as a power
    with pytest.raises(ScenarioError) as refused:
        read_scenario_file(str(path))
    assert refused.value.problems == [
        f"--scenario {path}: EMPLOYEES_NUM: not an integer: 'eleven'"]


@pytest.mark.processes
def test_main_runs_a_scenario_file_and_refuses_a_missing_one(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(TOML + 'BACKEND = "lockstep"\nTARGET_BLOCKCHAIN_LENGTH = 3\n')
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "--scenario", str(path),
                           "--quiet", "--results", "r.json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["scenario"]["EMPLOYEES_NUM"] == 5
    assert results["rerun"].startswith("python main.py --scenario ") and \
        results["rerun"].endswith("scenario.json")
    missing = subprocess.run([sys.executable, str(ROOT / "main.py"), "--scenario", "nope.toml"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip() == "error: --scenario nope.toml: cannot be read (No such " \
                                     "file or directory)"


def test_the_shipped_defaults_are_constants_py_as_committed():
    from simulation.config.shipped import SHIPPED_DEFAULTS, edited_knobs

    assert SHIPPED_DEFAULTS == default_scenario().knobs()
    assert edited_knobs(default_scenario().knobs()) == {}


def test_a_run_on_an_edited_constants_py_says_so(tmp_path, monkeypatch):
    from simulation.net.runner import run
    from simulation.report.reporting import render

    monkeypatch.setattr(constants, "MAX_TICKS", 1999)
    monkeypatch.setattr(constants, "TD_COINSTAKE", 2**251)
    scenario = default_scenario().replace(trainer="hash", backend="lockstep",
                                          log_file=str(tmp_path / "x.log"))
    summary = run(scenario, quiet=True).summary
    assert summary["constants_edited"] == {
        "MAX_TICKS": {"shipped": 2000, "here": 1999},
        "TD_COINSTAKE": {"shipped": 2**252, "here": 2**251}}
    assert ("Note: simulation/constants.py differs from the shipped defaults (MAX_TICKS "
            "2000 -> 1999, TD_COINSTAKE 2**252 -> 2**251); a re-run command without "
            "--scenario depends on it") in render(summary)
