"""Pinned outcomes: the same scenario and seed must give the same chain as when recorded.

Speed work (fewer passes, other processes, other start-up order) must never change an
outcome. These runs use the pure-Python HashTrainer, whose secrets and model hashes depend
on nothing but the scenario, so the pinned hashes hold on every machine. No hash that
depends on Keras training is pinned (docs/DETERMINISM.md: CPUs may differ in the last bits; the
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
from simulation.net.lockstep import run_lockstep  # noqa: E402
from simulation.net.runner import run  # noqa: E402
from simulation.protocol.reasons import Reason

# A small network with a fork (two blocks for one round): 6 employees, 5 blocks, delay 2
# (seed 11 forked under the protocol before the hardening rules, seed 2 forks with them).
SMALL_OPEN = {"employees_num": 6, "target_blockchain_length": 5, "seed": 11,
              "network_delay_ticks": 2}
SMALL = {**SMALL_OPEN, "seed": 2}

# name -> (knob changes, ticks, tip hash of employee 0's chain), recorded with the
# HashTrainer.
# "-open" entries run with every hardening rule left open (OPEN_RULES=all): they are the
# pins recorded before the rules existed, unchanged, so the open rules are the old
# protocol bit for bit.
OPEN = {"open_rules": "all"}
PINNED = {
    "small": (SMALL, 91, "4d8fbe214c1dbbb112ff45e210af93a88e08fa8b0301903e73ab4351fba7a736"),
    "default": ({}, 53, "3c5ece0b2119969d2ca4037c75ebc01a7203abae985c4d5891ef3e5d28f197e3"),
    "small-open": ({**SMALL_OPEN, **OPEN}, 93,
                   "2aa3d9dfa8074dde5f889256042b279f75fd8984d0e3a376b4785b4f04e3475f"),
    "default-open": (OPEN, 101,
                     "bccf60edcf74052fc76f43d2be63511936a73beb8a0f5aa3eeffbedf841cd5ca"),
}


# Adversarial scenarios, pinned with what the employer chose and what every message kind
# did: name -> (knob changes, expected figures of the summary).
ADVERSARIAL = {
    # The scenario of issue 7 with the hash trainer: 7 of 11 poisoned, default MAX_TICKS.
    "poisoned-majority-open": ({"adversaries": "poisoned:7", "seed": 3, **OPEN}, {
        "finished": False, "ticks": 2000,
        "tip": "cdc4cbfe747260b454b6ad1704d867c0a516fe8ed3c9c3d7a2b89237348c2a3f",
        "employer": (67, 66, "poisoned",
                     "debe3b93f729cd5bf692a062b7bb004d866b6c050a00e3d007ee9d34f4a26aa9"),
        "sent": {"TX": 100, "TD": 382, "BH": 331, "SS": 391, "WB": 74, "RQ": 0},
        "rejected": {
            "BH": {Reason.SECRET_NOT_OWN_TRAINING: 80,
                   Reason.UNKNOWN_PARENT_BLOCK: 628},
            "SS": {Reason.UNKNOWN_HEADER: 1064},
            "TD": {Reason.MODEL_HASH_NOT_OWN_TRAINING: 28, Reason.UNKNOWN_PARENT_BLOCK: 1436},
            # Blocks built on a rejected block are rejected with it (they were once held
            # as orphans for ever).
            "WB": {Reason.INVALID_HEADER.because(Reason.SECRET_NOT_OWN_TRAINING): 4,
                   Reason.PARENT_BLOCK_IS_INVALID: 276}},
    }),
    # One of most kinds at once, 6 adversaries of 9 but only 2 training on poisoned data.
    "mixed-open": ({"employees_num": 9, "target_blockchain_length": 5, "seed": 5,
                    "adversaries": "poisoned:2,lazy:1,forger:1,equivocator:1,withholder:1",
                    **OPEN}, {
        "finished": True, "ticks": 241,
        "tip": "ca5d2acc34bbc8b733c28d4b36d46d938c26e1f31c30f0e8483735eb68e8c65c",
        "employer": (5, 0, "honest",
                     "ca5d2acc34bbc8b733c28d4b36d46d938c26e1f31c30f0e8483735eb68e8c65c"),
        "sent": {"TX": 100, "TD": 24, "BH": 23, "SS": 25, "WB": 4, "RQ": 0},
        "rejected": {
            "BH": {Reason.COMMITMENT_NOT_REVEALED_SECRET: 9,
                   Reason.SECOND_HEADER_FOR_WIN: 6},
            "TD": {Reason.BAD_SIGNATURE: 9, Reason.COMMITMENT_NOT_OWN_SECRET: 126,
                   Reason.LOTTERY_NOT_WON: 354, Reason.MODEL_HASH_NOT_OWN_TRAINING: 6,
                   Reason.TICK_IN_THE_FUTURE: 180},
            "WB": {Reason.SECOND_BLOCK_FOR_HEADER: 3}},
    }),
    # The hardened protocol (every rule in force) on the same scenarios, and the
    # strongest poisoning attacker at 4 of 11, which the open rules let through.
    "poisoned-majority": ({"adversaries": "poisoned:7", "seed": 3}, {
        "finished": True, "ticks": 1375,
        "tip": "bed3a8611da89609469e5584d0db13de7aa08816d092f104eb383eebf556b0da",
        "employer": (54, 53, "poisoned",
                     "fe67f4a16c3ee72c94f3193f933e90ca8cb9aca1c991fc3b07ccee0f2b6e7927"),
        "sent": {"TX": 100, "TD": 302, "BH": 225, "SS": 274, "WB": 60, "RQ": 0},
        "rejected": {
            "BH": {Reason.SECRET_NOT_OWN_TRAINING: 44,
                   Reason.UNKNOWN_PARENT_BLOCK: 460},
            "SS": {Reason.UNKNOWN_HEADER: 756},
            "TD": {Reason.MODEL_HASH_NOT_OWN_TRAINING: 28, Reason.UNKNOWN_PARENT_BLOCK: 1100},
            "WB": {Reason.INVALID_HEADER.because(Reason.SECRET_NOT_OWN_TRAINING): 4,
                   Reason.PARENT_BLOCK_IS_INVALID: 216}},
    }),
    "mixed": ({"employees_num": 9, "target_blockchain_length": 5, "seed": 5,
               "adversaries": "poisoned:2,lazy:1,forger:1,equivocator:1,withholder:1"}, {
        "finished": True, "ticks": 122,
        "tip": "3553014c13756e410fcf8d3311795cb8bc0aa6c5614913448520b160acb43868",
        "employer": (5, 0, "honest",
                     "3553014c13756e410fcf8d3311795cb8bc0aa6c5614913448520b160acb43868"),
        "sent": {"TX": 100, "TD": 23, "BH": 11, "SS": 15, "WB": 4, "RQ": 0},
        "rejected": {
            "BH": {Reason.SECOND_HEADER_FOR_WIN: 6},
            "TD": {Reason.BAD_SIGNATURE: 6, Reason.COMMITMENT_NOT_OWN_SECRET: 9,
                   Reason.LOTTERY_NOT_WON: 240, Reason.MODEL_HASH_NOT_OWN_TRAINING: 6,
                   Reason.TICK_IN_THE_FUTURE: 90}},
    }),
    "poisoned-grinder-minority": ({"adversaries": "poisoned-grinder:4", "seed": 4}, {
        "finished": True, "ticks": 127,
        "tip": "d6a0982361a636f494a45854d551c781b3bc9c8b605bfb9d95241a77f4572037",
        "employer": (6, 0, "honest",
                     "d6a0982361a636f494a45854d551c781b3bc9c8b605bfb9d95241a77f4572037"),
        "sent": {"TX": 100, "TD": 33, "BH": 15, "SS": 19, "WB": 5, "RQ": 0},
        "rejected": {"TD": {Reason.MODEL_HASH_NOT_OWN_TRAINING: 28}},
    }),
    "poisoned-grinder-minority-open": ({"adversaries": "poisoned-grinder:4", "seed": 4,
                                        **OPEN}, {
        "finished": True, "ticks": 182,
        "tip": "7c50c61c8bd3e48b67f212cf238dae1d76aeaae1257a5dde68d874df5ae155e3",
        "employer": (37, 36, "poisoned",
                     "404ac5c6677a8600ec4be66672035416659c9546c8359ec1ee3ae26db9ff1bad"),
        "sent": {"TX": 100, "TD": 96, "BH": 81, "SS": 138, "WB": 45, "RQ": 0},
        "rejected": {
            "BH": {Reason.SECRET_NOT_OWN_TRAINING: 21,
                   Reason.UNKNOWN_PARENT_BLOCK: 413},
            "SS": {Reason.UNKNOWN_HEADER: 798},
            "TD": {Reason.MODEL_HASH_NOT_OWN_TRAINING: 21, Reason.UNKNOWN_PARENT_BLOCK: 441},
            "WB": {Reason.INVALID_HEADER.because(Reason.SECRET_NOT_OWN_TRAINING): 7,
                   Reason.PARENT_BLOCK_IS_INVALID: 273}},
    }),
}


def pinned_figures(summary: dict) -> dict:
    """The figures ADVERSARIAL pins, read from a summary."""
    employer = summary["employer"]
    return {
        "finished": summary["finished"], "ticks": summary["ticks"],
        "tip": summary["chain"]["tip_hash"],
        "employer": (employer["chain_length"], employer["poisoned_blocks"],
                     employer["model_source"], employer["tip_hash"]),
        "sent": summary["messages"]["sent"], "rejected": summary["messages"]["rejected"],
    }


def adversarial_summary(name: str, log_file: str) -> dict:
    """The lockstep run, ended through the same evaluation plan as the process network."""
    from simulation.net.lockstep import network_result
    from simulation.node.adversaries import assign_adversaries
    from simulation.node.genesis import genesis_of
    from simulation.report.reporting import summarize

    s = scenario(ADVERSARIAL[name][0], log_file)
    return summarize(s, genesis_of(s), network_result(run_lockstep(s)),
                     assign_adversaries(s), 0.0)


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_lockstep_run_gives_the_pinned_figures(name, tmp_path):
    assert pinned_figures(adversarial_summary(name, str(tmp_path / "x.log"))) == \
        ADVERSARIAL[name][1]


@pytest.mark.processes
# The process backend on the cases but the majority's (its 18 s run to MAX_TICKS): that
# the process backend gives the lockstep run is what these cases show, and the majority's
# figures are pinned by its lockstep case above.
@pytest.mark.parametrize("name", sorted(n for n in ADVERSARIAL if not n.endswith("-open")
                                        and n != "poisoned-majority"))
def test_adversarial_process_run_gives_the_same_pinned_figures(name, tmp_path):
    """The real runner: processes, the network's own stop step and evaluation, the
    self-check; nobody cut off, every figure present."""
    outcome = run(scenario(ADVERSARIAL[name][0], str(tmp_path / "x.log")), quiet=True)
    s = outcome.summary
    assert pinned_figures(s) == ADVERSARIAL[name][1]
    assert s["self_check"] == {"passed": True, "failures": []}
    assert s["cut_off"] == {} and s["failures"] == {}
    assert outcome.exit_code == (0 if s["finished"] else 1)
    assert s["honest"]["poisoned_blocks"] == 0


def scenario(changes: dict, log_file: str):
    return default_scenario().replace(trainer="hash", log_file=log_file, **changes)


def lockstep_outcome(changes: dict, log_file: str) -> tuple[bool, int, str]:
    result = run_lockstep(scenario(changes, log_file))
    return result.finished, result.ticks, result.employees[0].tree.tip_hash.hex()


@pytest.mark.parametrize("name", sorted(PINNED))
def test_lockstep_run_gives_the_pinned_chain(name, tmp_path):
    changes, ticks, tip = PINNED[name]
    assert lockstep_outcome(changes, str(tmp_path / "pot_sim.log")) == (True, ticks, tip)


@pytest.mark.parametrize("name", ["small", "small-open"])
def test_the_small_pins_hold_a_fork(name, tmp_path):
    result = run_lockstep(scenario(PINNED[name][0], str(tmp_path / "pot_sim.log")))
    assert max(e.tree.forks for e in result.employees) > 0


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
    import pprint
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        for key, (knobs, _, _) in sorted(PINNED.items()):
            done, t, h = lockstep_outcome(knobs, str(Path(workdir) / "pot_sim.log"))
            print(f'    "{key}": ({knobs!r}, {t}, "{h}"),  # finished: {done}')
        for key in sorted(ADVERSARIAL):
            print(key)
            pprint.pprint(pinned_figures(adversarial_summary(key, str(Path(workdir) / "x"))))
