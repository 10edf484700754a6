"""End to end with real processes and real Keras training on MNIST (small scenario)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulation.protocol.names import employee_name
from simulation.protocol.reasons import Reason
from tests.helpers import KERAS_RUN

pytestmark = [pytest.mark.tf, pytest.mark.processes]
ROOT = Path(__file__).resolve().parent.parent
NOISE = ("oneDNN", "cuda", "absl", "cudart", "TensorFlow binary", "I0000", "W0000")


def test_keras_network_agrees_is_deterministic_and_keeps_the_console_clean(tmp_path,
                                                                           keras_run):
    # Run 1: the real command line, from another working directory, console captured.
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in KERAS_RUN.items()]
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *flags, "--results", "cli.json",
         "--log-file", "cli.log"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    console = done.stdout + done.stderr
    for noise in NOISE:
        assert noise not in console, f"TensorFlow noise {noise!r} reached the console"
    assert "accepted TD" in done.stdout  # INFO reaches the console without --quiet
    log = (tmp_path / "cli.log").read_text()
    assert " DEBUG " in log and "iteration 0 loss" in log and "TD lottery" in log
    assert "did not preload TensorFlow" not in log
    first = json.loads((tmp_path / "cli.json").read_text())

    # Run 2: the same scenario in this process's runner (conftest's keras_run).
    second = keras_run.results
    assert keras_run.outcome.exit_code == 0

    for summary in (first, second):
        assert summary["finished"] is True
        assert summary["agreement"]["all_honest_agree"] is True
        assert summary["chain"]["length"] >= 3
        assert summary["training"]["secrets_identical"] is True
        assert summary["training"]["stages_compared"] >= 2
        tx = summary["transactions"]
        assert tx["issued"] == tx["included"] + tx["rejected"] + tx["pending"] > 0
        assert tx["lost"] == 0 and tx["included_more_than_once"] == 0
        accuracy = summary["model"]["test_accuracy"]
        assert 0.1 < accuracy <= 1.0  # two stages (20 samples) of training beat chance
        assert summary["model"]["evaluated_stage"] == summary["chain"]["length"] - 2
    for key in ("chain", "messages", "rewards", "balances", "transactions", "ticks",
                "forks"):
        assert first[key] == second[key], key


def test_a_poisoned_minority_with_real_training_is_rejected(keras_run):
    """conftest's Keras run, 4 employees with real training, 1 of them poisoned: its
    declarations are rejected, the honest chain reaches the target and the employer takes
    its model. (The poisoned majority with real training is the issue-7 run below.)"""
    s = keras_run.outcome.summary
    employer = s["employer"]
    assert list(s["adversaries"].values()) == ["poisoned"]
    assert s["self_check"] == {"passed": True, "failures": []}
    assert s["cut_off"] == {} and s["failures"] == {}
    assert s["honest"]["poisoned_blocks"] == 0
    assert s["training"]["secrets_identical"] is True  # among the honest
    assert isinstance(s["model"]["test_accuracy"], float)
    assert keras_run.outcome.exit_code == 0 and s["finished"]
    assert employer["model_source"] == "honest" and employer["poisoned_blocks"] == 0
    assert employer["model_test_accuracy"] == s["model"]["test_accuracy"]
    assert s["messages"]["rejected"]["TD"][Reason.MODEL_HASH_NOT_OWN_TRAINING] > 0


def test_issue_7_majority_run_evaluates_stages_far_behind_the_training(tmp_path):
    """`python main.py --adversaries poisoned:7 --seed 3` once crashed an honest employee:
    re-checking the poisoned branch had trained it 66 stages deep, and the weights after
    stage 4 of its own chain were no longer kept; the run still exited 0 and the results
    said employer.poisoned_blocks = null. The same command line, with MAX_TICKS 500
    instead of the default 2000 (a quarter of the time): 7 of 11 employees poisoned,
    with real training; the poisoned branch outgrows the honest chain by more than
    SNAPSHOTS_KEPT stages, so the stage the honest evaluator evaluates must be replayed
    from a checkpoint, as in the crash, and the real stop step (the network's evaluation
    plan) must still deliver every figure."""
    from simulation.ml.keras_training import SNAPSHOTS_KEPT

    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--adversaries", "poisoned:7", "--seed", "3",
         "--max-ticks", "500", "--quiet", "--results", "hi.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    results = json.loads((tmp_path / "hi.json").read_text())
    assert "crashed" not in (tmp_path / "pot_sim.log").read_text()
    assert results["self_check"] == {"passed": True, "failures": []}, done.stdout[-3000:]
    assert results["cut_off"] == {} and results["failures"] == {}
    assert set(results["employees_reporting"]) == {employee_name(i) for i in range(11)}
    assert results["honest"]["poisoned_blocks"] == 0
    assert results["training"]["secrets_identical"] is True  # among the honest
    employer = results["employer"]
    assert employer["model_source"] == "poisoned"
    assert employer["chain_length"] > results["chain"]["length"]
    assert employer["poisoned_blocks"] == employer["chain_length"] - 1 > 10
    assert employer["model_test_accuracy"] == \
        results["poisoned_branch"]["model_test_accuracy"]
    # The honest evaluator trained far beyond its own chain and still evaluated it.
    assert results["model"]["evaluated_stage"] < employer["model_stage"] - SNAPSHOTS_KEPT
    assert isinstance(results["model"]["test_accuracy"], float)
    assert isinstance(employer["model_test_accuracy"], float)
    assert done.returncode == results["exit_code"] == (0 if results["finished"] else 1)
