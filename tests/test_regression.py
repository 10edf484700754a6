"""Pinned outcomes: the same scenario and seed must give the same chain as when recorded.

Speed work (fewer passes, other processes, other start-up order) must never change an
outcome. These runs use the pure-Python HashTrainer, whose secrets and model hashes depend
on nothing but the scenario, so the pinned hashes hold on every machine. No hash that
depends on Keras training is pinned (FINDINGS.md: CPUs may differ in the last bits; the
Keras trainer is compared with train_on_batch in the same process instead, see
tests/test_keras_training.py).

A deliberate change of the protocol changes these hashes. Then re-record them, after
checking that the change was meant, with ``python tests/test_regression.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulation.config import default_scenario  # noqa: E402
from simulation.lockstep import run_lockstep  # noqa: E402
from simulation.runner import run  # noqa: E402

# A small network with a fork (two blocks for one round): 6 employees, 5 blocks, delay 2.
SMALL = {"employees_num": 6, "target_blockchain_length": 5, "seed": 11,
         "network_delay_ticks": 2}

# name -> (knob changes, ticks, tip hash of employee 0's chain), recorded with the
# HashTrainer.
PINNED = {
    "small": (SMALL, 93, "2aa3d9dfa8074dde5f889256042b279f75fd8984d0e3a376b4785b4f04e3475f"),
    "default": ({}, 101, "bccf60edcf74052fc76f43d2be63511936a73beb8a0f5aa3eeffbedf841cd5ca"),
}


def scenario(changes: dict, log_file: str):
    return default_scenario().replace(trainer="hash", log_file=log_file, **changes)


def lockstep_outcome(changes: dict, log_file: str) -> tuple[bool, int, str]:
    result = run_lockstep(scenario(changes, log_file))
    return result.finished, result.ticks, result.employees[0].tree.tip_hash.hex()


@pytest.mark.parametrize("name", sorted(PINNED))
def test_lockstep_run_gives_the_pinned_chain(name, tmp_path):
    changes, ticks, tip = PINNED[name]
    assert lockstep_outcome(changes, str(tmp_path / "pot_sim.log")) == (True, ticks, tip)


@pytest.mark.processes
def test_process_run_gives_the_same_pinned_chain(tmp_path):
    """The real runner (fork server, pipes, network process) with the hash trainer."""
    changes, ticks, tip = PINNED["small"]
    outcome = run(scenario(changes, str(tmp_path / "pot_sim.log")), quiet=True)
    assert outcome.exit_code == 0
    assert outcome.summary["finished"] is True
    assert outcome.summary["agreement"]["all_honest_agree"] is True
    assert outcome.summary["ticks"] == ticks
    assert outcome.summary["chain"]["tip_hash"] == tip


if __name__ == "__main__":  # prints the values to pin
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        for key, (knobs, _, _) in sorted(PINNED.items()):
            done, t, h = lockstep_outcome(knobs, str(Path(workdir) / "pot_sim.log"))
            print(f'    "{key}": ({knobs!r}, {t}, "{h}"),  # finished: {done}')
