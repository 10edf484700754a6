"""Unit tests of the training secrets and task names in simulation.protocol.stages:
tolerant verification's quantized hash chain, which rule a scenario's employees use,
and the model id that names the delegated task. Pure Python, no training."""

from __future__ import annotations

import hashlib
import struct

import pytest

from simulation.config import default_scenario
from simulation.ml.tasks import model_id_of
from simulation.protocol.stages import (
    model_id,
    quantized_loss,
    secret_rule,
    tolerant_secret,
    training_secret,
)

# Tolerances that are powers of two keep loss / tolerance exact in binary floating point,
# so the expected quanta below are exact, boundaries included.
QUARTER = 0.25
LOSSES = (0.1, 0.375, -0.2)  # quanta at 0.25: round(0.4) = 0, round(1.5) = 2, round(-0.8) = -1
QUANTA = (0, 2, -1)
BASE = "mnist-dnn128-adam-tfseed42-ipe6000"  # the default scenario's model id


def chain(sid: str, quanta, author: bytes = b"") -> bytes:
    """The tolerant secret written out independently: h_0 = SHA-256(id || author),
    h_i = SHA-256(int64_be(q_i) || h_{i-1}), the int64 packed by struct, not to_bytes."""
    h = hashlib.sha256(sid.encode() + author).digest()
    for q in quanta:
        h = hashlib.sha256(struct.pack(">q", q) + h).digest()
    return h


# --- quantized_loss ------------------------------------------------------------------------

@pytest.mark.parametrize("loss, tolerance, expected", [
    (0.0, QUARTER, 0),
    (0.1, QUARTER, 0),      # 0.4 quanta rounds down
    (0.125, QUARTER, 1),    # exactly half a quantum rounds up
    (0.124, QUARTER, 0),    # just below the boundary
    (0.375, QUARTER, 2),    # 1.5 rounds up, not to even
    (0.25, QUARTER, 1),
    (3.0, 0.5, 6),          # loss / tolerance, not loss * tolerance
    (-0.2, QUARTER, -1),    # -0.8 rounds to -1
    (-0.125, QUARTER, 0),   # -0.5 rounds half *up*, towards zero here
    (-0.375, QUARTER, -1),  # -1.5 rounds up to -1
    (-0.4, QUARTER, -2),    # -1.6
    (0.004, 0.01, 0),       # the decimal example of test_fairness
    (-0.006, 0.01, -1),
])
def test_quantized_loss_rounds_half_up_in_units_of_tolerance(loss, tolerance, expected):
    q = quantized_loss(loss, tolerance)
    assert q == expected and isinstance(q, int)


# --- tolerant_secret -----------------------------------------------------------------------

def test_tolerant_secret_without_losses_is_the_hash_of_the_stage_id():
    # No author by default: h_0 = SHA-256(id_s), as for the exact secret.
    assert tolerant_secret("m:0", [], QUARTER) == hashlib.sha256(b"m:0").digest()
    assert tolerant_secret("m:0", [], QUARTER) == training_secret("m:0", [])


def test_tolerant_secret_is_the_hash_chain_over_signed_int64_quanta():
    secret = tolerant_secret("m:3", LOSSES, QUARTER)
    assert secret == chain("m:3", QUANTA)
    # Pinned as well, so that a change of the chain shows even if `chain` followed it.
    assert secret.hex() == "d832622d4a8f4e02da9466db699ed06dfa3261244d4a2dfddbd88f8414c710b1"


def test_a_negative_quantum_is_hashed_as_twos_complement():
    # -1 as a signed big-endian int64 is eight 0xff bytes.
    h0 = hashlib.sha256(b"m:1").digest()
    expected = hashlib.sha256(b"\xff" * 8 + h0).digest()
    assert tolerant_secret("m:1", [-0.2], QUARTER) == expected


def test_a_single_quantum_is_hashed_as_eight_big_endian_bytes():
    h0 = hashlib.sha256(b"m:1").digest()
    expected = hashlib.sha256(b"\x00" * 7 + b"\x02" + h0).digest()
    assert tolerant_secret("m:1", [0.375], QUARTER) == expected


def test_tolerant_secret_binds_the_author():
    personal = tolerant_secret("m:3", LOSSES, QUARTER, b"E1")
    assert personal == chain("m:3", QUANTA, b"E1")
    assert personal.hex() == "3a02549aaf123561f5cb78c79896da3f43956778ac97516c647aebc5009584ef"
    assert personal != tolerant_secret("m:3", LOSSES, QUARTER)
    assert personal != tolerant_secret("m:3", LOSSES, QUARTER, b"E2")


def test_losses_within_tolerance_share_the_secret_and_beyond_it_differ():
    secret = tolerant_secret("m:3", LOSSES, QUARTER)
    # Each loss moved, but every one stays inside its quantum.
    assert tolerant_secret("m:3", (0.0, 0.4, -0.3), QUARTER) == secret
    assert tolerant_secret("m:3", (0.124, 0.6, -0.126), QUARTER) == secret
    # One loss across a boundary (0.124 -> 0.125 is quantum 0 -> 1) changes the secret.
    assert tolerant_secret("m:3", (0.125, 0.375, -0.2), QUARTER) == chain("m:3", (1, 2, -1))
    assert tolerant_secret("m:3", (0.125, 0.375, -0.2), QUARTER) != secret
    # Order matters: it is a chain, not a set.
    assert tolerant_secret("m:3", (0.375, 0.1, -0.2), QUARTER) != secret


def test_another_tolerance_gives_another_secret():
    # 0.375 is quantum 2 at 0.25 and quantum 1 at 0.5 (0.75 rounds up).
    assert tolerant_secret("m:1", [0.375], QUARTER) == chain("m:1", [2])
    assert tolerant_secret("m:1", [0.375], 0.5) == chain("m:1", [1])
    assert tolerant_secret("m:1", [0.375], QUARTER) != tolerant_secret("m:1", [0.375], 0.5)


def test_tolerant_and_exact_secrets_differ_for_the_same_losses():
    assert tolerant_secret("m:3", LOSSES, QUARTER) != training_secret("m:3", LOSSES)


# --- secret_rule ---------------------------------------------------------------------------

def test_exact_verification_uses_the_exact_training_secret():
    scenario = default_scenario()
    assert scenario.verification == "exact"
    assert secret_rule(scenario) is training_secret
    # The tolerance is ignored in exact verification.
    assert secret_rule(scenario.replace(tolerance=QUARTER)) is training_secret


def test_tolerant_verification_uses_the_tolerant_secret_with_the_scenarios_tolerance():
    rule = secret_rule(default_scenario().replace(verification="tolerant", tolerance=QUARTER))
    assert rule is not training_secret
    # Called with two arguments: the stage's shared secret, author b"".
    assert rule("m:3", LOSSES) == tolerant_secret("m:3", LOSSES, QUARTER)
    assert rule("m:3", LOSSES) == chain("m:3", QUANTA)
    assert rule("m:0", []) == hashlib.sha256(b"m:0").digest()
    assert rule("m:3", LOSSES) != training_secret("m:3", LOSSES)
    # The scenario's tolerance, not another: 0.375 is quantum 2 at 0.25, 1 at 0.5.
    assert rule("m:1", [0.375]) == chain("m:1", [2])
    coarse = secret_rule(default_scenario().replace(verification="tolerant", tolerance=0.5))
    assert coarse("m:1", [0.375]) == chain("m:1", [1])


def test_the_tolerant_rule_passes_the_author_through():
    rule = secret_rule(default_scenario().replace(verification="tolerant", tolerance=QUARTER))
    personal = rule("m:3", LOSSES, b"E1")
    assert personal == tolerant_secret("m:3", LOSSES, QUARTER, b"E1")
    assert personal == chain("m:3", QUANTA, b"E1")
    assert personal != rule("m:3", LOSSES)
    assert rule("m:3", LOSSES, b"") == rule("m:3", LOSSES)


# --- model_id / model_id_of ----------------------------------------------------------------

def test_model_id_names_only_the_knobs_that_differ_from_the_default():
    assert model_id(42, 6000) == BASE
    assert model_id(42, 6000, 0.001) == BASE  # Keras' default rate is not named
    assert model_id(7, 600) == "mnist-dnn128-adam-tfseed7-ipe600"
    assert model_id(7, 600, 0.0003) == "mnist-dnn128-adam-tfseed7-ipe600-lr0.0003"
    assert model_id(7, 600, tolerance=0.01) == "mnist-dnn128-adam-tfseed7-ipe600-tol0.01"
    assert model_id(7, 600, 0.0003, 1e-05) == (
        "mnist-dnn128-adam-tfseed7-ipe600-lr0.0003-tol1e-05")


def test_model_id_of_names_the_tolerance_only_in_tolerant_verification():
    exact = default_scenario()
    assert model_id_of(exact) == BASE
    assert model_id_of(exact.replace(tolerance=0.01)) == BASE
    assert model_id_of(exact.replace(learning_rate=0.0003)) == BASE + "-lr0.0003"
    tolerant = exact.replace(verification="tolerant", tolerance=0.01)
    assert model_id_of(tolerant) == BASE + "-tol0.01"
    assert model_id_of(exact.replace(verification="tolerant")) == BASE + "-tol0.0001"
    everything = tolerant.replace(tf_seed=7, iterations_per_epoch=600, learning_rate=0.0003)
    assert model_id_of(everything) == "mnist-dnn128-adam-tfseed7-ipe600-lr0.0003-tol0.01"
