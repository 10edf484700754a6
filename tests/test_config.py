"""The scenario: defaults, validation (every problem reported), constants.py as the single
source of knobs and comments, and the command-line flags."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import math

import pytest

from simulation import constants
from simulation.config import (
    Scenario,
    ScenarioError,
    add_knob_arguments,
    default_scenario,
    flag_name,
    knob_comments,
    knob_names,
    knob_text,
    parse_int,
    problems,
    scenario_from_args,
    validated,
)


def test_default_scenario_is_valid():
    scenario = default_scenario()
    assert problems(scenario) == []
    assert validated(scenario) is scenario


def test_defaults_come_from_constants():
    scenario = default_scenario()
    for name, value in scenario.knobs().items():
        assert getattr(constants, name) == value
    assert scenario.td_coinstake == 2**252 and scenario.bh_coinstake == 2**251


def test_replace_returns_a_new_scenario():
    base = default_scenario()
    changed = base.replace(seed=99)
    assert changed.seed == 99 and base.seed == constants.SEED
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.seed = 5  # type: ignore[misc]


INVALID = [
    (dict(stakeholders_num=12), "STAKEHOLDERS_NUM (12) exceeds EMPLOYEES_NUM (11)"),
    (dict(employer_confidence=12), "EMPLOYER_CONFIDENCE (12) exceeds EMPLOYEES_NUM (11)"),
    (dict(employees_num=0), "EMPLOYEES_NUM must be at least 1"),
    (dict(employees_num=-3), "EMPLOYEES_NUM must be at least 1"),
    (dict(stakeholders_num=0), "STAKEHOLDERS_NUM must be at least 1"),
    (dict(employer_confidence=0), "EMPLOYER_CONFIDENCE must be at least 1"),
    (dict(users_num=-1), "USERS_NUM must be at least 0"),
    (dict(max_transactions_num=-1), "MAX_TRANSACTIONS_NUM must be at least 0"),
    (dict(max_block_transactions=-1), "MAX_BLOCK_TRANSACTIONS must be at least 0"),
    (dict(network_delay_ticks=0), "NETWORK_DELAY_TICKS must be at least 1"),
    (dict(max_ticks=0), "MAX_TICKS must be at least 1"),
    (dict(round_timeout_ticks=0), "ROUND_TIMEOUT_TICKS must be at least 1"),
    (dict(genesis_stake=0), "GENESIS_STAKE must be at least 1"),
    (dict(user_max_genesis_balance=0), "USER_MAX_GENESIS_BALANCE must be at least 1"),
    (dict(iterations_per_epoch=0), "ITERATIONS_PER_EPOCH must be at least 1"),
    (dict(task=" "), "TASK must not be empty"),
    (dict(target_blockchain_length=1), "TARGET_BLOCKCHAIN_LENGTH must be at least 2"),
    (dict(seed=-1), "SEED must be at least 0"),
    (dict(tf_seed=-1), "TF_SEED must be at least 0"),
    (dict(learning_rate=0.0), "LEARNING_RATE must lie in (0, 1]"),
    (dict(learning_rate=-0.001), "LEARNING_RATE must lie in (0, 1]"),
    (dict(learning_rate=1.5), "LEARNING_RATE must lie in (0, 1]"),
    (dict(tick_seconds=-0.5), "TICK_SECONDS must be at least 0"),
    (dict(party_timeout_seconds=0.0), "PARTY_TIMEOUT_SECONDS must be positive"),
    (dict(td_coinstake=0), "TD_COINSTAKE must lie in (0, 2**256)"),
    (dict(td_coinstake=2**256), "TD_COINSTAKE must lie in (0, 2**256)"),
    (dict(bh_coinstake=0), "BH_COINSTAKE must lie in (0, 2**256)"),
    (dict(bh_coinstake=2**256), "BH_COINSTAKE must lie in (0, 2**256)"),
    (dict(bh_coinstake=-(2**251)), "BH_COINSTAKE must lie in (0, 2**256)"),
    (dict(trainer_share=-0.1), "TRAINER_SHARE must lie in [0, 1]"),
    (dict(trainer_share=1.5), "TRAINER_SHARE must lie in [0, 1]"),
    (dict(trainer_share=math.nan), "TRAINER_SHARE must be a finite number"),
    (dict(transaction_probability=1.01), "TRANSACTION_PROBABILITY must lie in [0, 1]"),
    (dict(transaction_probability=-1.0), "TRANSACTION_PROBABILITY must lie in [0, 1]"),
    (dict(users_num=1), "transfers need at least 2 users"),
    (dict(trainer="pytorch"), "TRAINER must be one of keras, hash"),
    (dict(log_file=""), "LOG_FILE must not be empty"),
    # Wrong types
    (dict(employees_num="11"), "EMPLOYEES_NUM must be int, got '11'"),
    (dict(employees_num=11.0), "EMPLOYEES_NUM must be int, got 11.0"),
    (dict(employees_num=True), "EMPLOYEES_NUM must be int, got True"),
    (dict(td_coinstake=2.0**252), "TD_COINSTAKE must be int"),
    (dict(trainer_share="0.5"), "TRAINER_SHARE must be float, got '0.5'"),
    (dict(trainer_share=False), "TRAINER_SHARE must be float, got False"),
    (dict(trainer=None), "TRAINER must be str, got None"),
    (dict(log_file=3), "LOG_FILE must be str, got 3"),
]


@pytest.mark.parametrize(("changes", "expected"), INVALID,
                         ids=[f"{k}={v!r:.12}" for c, _ in INVALID for k, v in c.items()])
def test_each_invalid_setting_yields_a_problem_line(changes, expected):
    found = problems(default_scenario().replace(**changes))
    assert sum(expected in line for line in found) == 1, found
    (name,) = (k.upper() for k in changes)
    assert all(name in line for line in found)  # consequences name the knob too
    with pytest.raises(ScenarioError) as info:
        validated(default_scenario().replace(**changes))
    assert info.value.problems == found
    assert expected in str(info.value)


@pytest.mark.parametrize("changes", [
    dict(stakeholders_num=11, employer_confidence=11),  # equal to EMPLOYEES_NUM
    dict(employees_num=1, stakeholders_num=1, employer_confidence=1),
    dict(td_coinstake=1, bh_coinstake=2**256 - 1),
    dict(trainer_share=0), dict(trainer_share=1), dict(trainer_share=0.0),
    dict(transaction_probability=0.0), dict(users_num=0, max_transactions_num=0),
    dict(users_num=1, max_transactions_num=0), dict(iterations_per_epoch=60000),
    dict(tick_seconds=0), dict(trainer="hash"), dict(max_block_transactions=0),
])
def test_boundary_settings_are_valid(changes):
    assert problems(default_scenario().replace(**changes)) == []


def test_several_problems_are_all_reported_at_once():
    scenario = default_scenario().replace(
        employees_num=2, stakeholders_num=3, employer_confidence=4, td_coinstake=0,
        trainer_share=2.0, trainer="x", network_delay_ticks=0)
    found = problems(scenario)
    for text in ("STAKEHOLDERS_NUM (3) exceeds", "EMPLOYER_CONFIDENCE (4) exceeds",
                 "TD_COINSTAKE", "TRAINER_SHARE", "TRAINER must be one of",
                 "NETWORK_DELAY_TICKS"):
        assert sum(text in line for line in found) == 1, (text, found)
    assert len(found) == 6
    with pytest.raises(ScenarioError) as info:
        validated(scenario)
    assert info.value.problems == found
    assert str(info.value).count("\n  - ") == 6


def test_several_type_problems_are_all_reported():
    found = problems(default_scenario().replace(seed="1", trainer_share="x", trainer=1))
    assert [line.split()[0] for line in found] == ["SEED", "TRAINER_SHARE", "TRAINER"]


@pytest.mark.parametrize("changes", [
    dict(tick_seconds=math.nan), dict(tick_seconds=math.inf),
    dict(party_timeout_seconds=math.nan), dict(party_timeout_seconds=math.inf),
    dict(max_wall_seconds=math.inf), dict(poison_rate=math.nan),
])
def test_non_finite_numbers_are_problems(changes):
    # NaN compares false with everything, so range checks alone would let it through.
    (name,) = changes
    assert problems(default_scenario().replace(**changes)) == [
        f"{name.upper()} must be a finite number, got {changes[name]!r}"]


# --- constants.py is the single source -------------------------------------------------------


def constant_names() -> list[str]:
    tree = ast.parse(inspect.getsource(constants))
    return [node.targets[0].id for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)]


def test_every_constant_is_a_scenario_field_and_vice_versa():
    names = constant_names()
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(knob_names())
    assert all(name == name.upper() for name in names)
    assert sorted(f.name for f in dataclasses.fields(Scenario)) == sorted(
        n.lower() for n in names)


def test_every_constant_has_a_non_empty_comment():
    comments = knob_comments()
    assert set(comments) == set(knob_names())
    for name, text in comments.items():
        assert len(text.split()) >= 3, f"{name} has no real comment: {text!r}"
        assert not text.startswith("---"), name  # a section ruler is not a comment


def test_comments_are_the_lines_directly_above():
    comments = knob_comments()
    assert comments["STAKEHOLDERS_NUM"].startswith("Stakeholders drawn by follow-the-coin")
    assert comments["STAKEHOLDERS_NUM"].endswith('the K-th is "Roy", who wraps the block.')
    assert "1 in 16 per tick" in comments["TD_COINSTAKE"]


def test_constants_have_the_types_of_the_fields():
    for f in dataclasses.fields(Scenario):
        value = getattr(constants, f.name.upper())
        assert type(value).__name__ == f.type, f.name


# --- Command line -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("2**252", 2**252), (" 2 ** 251 ", 2**251), ("10**3", 1000), ("7", 7), ("-3", -3),
    ("1_000", 1000), ("0", 0), ("2**0", 1),
])
def test_parse_int(text, value):
    assert parse_int(text) == value


@pytest.mark.parametrize("text", ["abc", "2**", "**2", "1.5", "2^252", "", "2**5000",
                                  "0x10", "2**-1"])
def test_parse_int_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_int(text)


@pytest.mark.parametrize(("knob", "flag"), [
    ("EMPLOYEES_NUM", "--employees-num"),
    ("NETWORK_DELAY_TICKS", "--network-delay-ticks"),
    ("SEED", "--seed"),
    ("TD_COINSTAKE", "--td-coinstake"),
])
def test_flag_names(knob, flag):
    assert flag_name(knob) == flag


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pot")
    add_knob_arguments(p)
    return p


def test_every_knob_has_a_flag_with_its_comment_as_help():
    text = parser().format_help()
    for name in knob_names():
        assert flag_name(name) in text
    assert "(default: 2**252)" in text
    assert "Number of employees" in text


def test_flags_override_the_defaults():
    args = parser().parse_args(["--td-coinstake", "2**250", "--trainer-share", "0.25",
                                "--trainer", "hash", "--employees-num", "5"])
    scenario = scenario_from_args(args)
    assert scenario == default_scenario().replace(
        td_coinstake=2**250, trainer_share=0.25, trainer="hash", employees_num=5)
    assert scenario_from_args(parser().parse_args([])) == default_scenario()


def test_a_bad_flag_value_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["--seed", "one"])
    assert "not an integer" in capsys.readouterr().err


def test_the_learning_rate_names_the_task_only_when_it_is_not_the_default():
    from simulation.node.genesis import genesis_of
    from simulation.protocol.stages import model_id

    assert model_id(42, 6000) == "mnist-dnn128-adam-tfseed42-ipe6000"  # the specification's
    assert model_id(42, 6000, 0.001) == "mnist-dnn128-adam-tfseed42-ipe6000"
    assert model_id(42, 3, 0.0003) == "mnist-dnn128-adam-tfseed42-ipe3-lr0.0003"
    slower = default_scenario().replace(learning_rate=0.0003)
    assert genesis_of(slower).hash != genesis_of(default_scenario()).hash
    parsed = scenario_from_args(parser().parse_args(["--learning-rate", "3e-4"]))
    assert parsed.learning_rate == 0.0003


def test_a_run_parses_each_text_knob_once(monkeypatch):
    """The validated scenario carries its parsed text knobs (Scenario's cached
    properties): validating, running and summarising a run parse each text knob once,
    where each consumer used to parse it again."""
    from collections import Counter

    from simulation.config import knobs, validated
    from simulation.net.lockstep import network_result, run_lockstep
    from simulation.node.adversaries import assign_adversaries
    from simulation.node.genesis import genesis_of
    from simulation.report.reporting import summarize

    calls: Counter[str] = Counter()
    parsers = ("parse_adversaries", "parse_open_rules", "parse_latency", "parse_partitions",
               "parse_churn", "hardware_profiles")
    def counting(name, parse):
        def counted(*args):
            calls[name] += 1
            return parse(*args)
        return counted

    for name in parsers:
        monkeypatch.setattr(knobs, name, counting(name, getattr(knobs, name)))
    scenario = validated(default_scenario().replace(
        trainer="hash", adversaries="poisoned:2,lazy:1", hardware="fast:2,slow:2",
        latency="uniform:1:3", partitions="0-4|5-10@10:20", churn="3@5:9",
        open_rules="draw", max_ticks=60, log_file="unused.log"))
    run = run_lockstep(scenario)
    summarize(scenario, genesis_of(scenario), network_result(run),
              assign_adversaries(scenario), 0.0)
    assert run.ticks > 20
    assert calls == dict.fromkeys(parsers, 1)


@pytest.mark.parametrize(("value", "text"), [
    (2**252, "2**252"), (2**33, "2**33"), (2**20, "1048576"), (7, "7"), (0.1, "0.1"),
    (1e-3, "0.001"), ("uniform:1:3", "uniform:1:3")])
def test_one_function_writes_a_knob_as_main_py_reads_it(value, text):
    """The rerun command, the changed flags and the sweep's CSVs all write knobs with
    config.knob_text; main.py reads the text back to the same value."""
    assert knob_text(value) == text
    if type(value) is int:
        assert parse_int(text) == value
    elif isinstance(value, float):
        assert float(text) == value


def test_the_process_wide_computations_are_those_tensorflow_sets_per_process():
    """config names the computations that need a process of their own (a Ray shard
    cannot host them); ml.hardware says how TensorFlow is set to them: the same set."""
    from simulation.config import PROCESS_WIDE_COMPUTATIONS
    from simulation.ml.hardware import (
        INTRA_OP_THREADS_OF_COMPUTATION,
        TF_ENVIRONMENT_OF_COMPUTATION,
    )

    assert PROCESS_WIDE_COMPUTATIONS == {*TF_ENVIRONMENT_OF_COMPUTATION,
                                         *INTRA_OP_THREADS_OF_COMPUTATION}
