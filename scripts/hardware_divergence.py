"""How often do two honest hardware profiles disagree? (issue 9, item 1; per task, issue 21)

Trains a task (by default mnist-dnn: MNIST, TF_SEED 42, 10 samples per stage) for STAGES
stages with
every computation the HARDWARE profiles offer (the reference kernels, XLA, oneDNN, 4
intra-op threads), each in a fresh Python process set up as that profile's employee is
(oneDNN is read by TensorFlow at import), and prints, per pair, the share of stages whose
secrets differ, the share of per-sample losses that differ, and the largest relative
difference of a loss. The speed profiles (fast, slow, ...) compute exactly like the
reference and are not listed.

    python scripts/hardware_divergence.py [--stages 20] [--task mnist-cnn]
    python scripts/hardware_divergence.py --computation onednn --stages 3   # one, as JSON
    python scripts/hardware_divergence.py --noise-model --stages 100

With --noise-model it writes simulation/ml/measured_divergence.py instead: for XLA and
oneDNN against the reference, the share of per-sample losses that differ and every
signed difference measured, from which the hash trainer draws its noise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from simulation.ml.study_task import keras_task

COMPUTATIONS = ("exact", "xla", "onednn", "cpu-4threads")


def train(computation: str, stages: int, task_name: str = "mnist-dnn") -> list[dict]:
    """This process trains as ``computation``: the losses and secret of each stage."""
    from simulation.ml.hardware import (
        INTRA_OP_THREADS_OF_COMPUTATION,
        TF_ENVIRONMENT_OF_COMPUTATION,
    )

    threads = INTRA_OP_THREADS_OF_COMPUTATION.get(computation, 1)
    task = keras_task(TF_ENVIRONMENT_OF_COMPUTATION.get(computation, {}), threads, task_name)
    from simulation.ml.keras_training import KerasTrainer

    trainer = KerasTrainer(task.model_id, task.mnist, task.scenario.tf_seed, task.per_stage,
                           learning_rate=task.learning_rate, jit_compile=computation == "xla",
                           intra_op_threads=threads, task=task.task)
    results = [trainer.result(s) for s in range(stages)]
    import tensorflow as tf

    in_effect = tf.config.threading.get_intra_op_parallelism_threads()
    return [{"losses": list(r.losses), "secret": r.secret.hex(),
             "intra_op_threads": in_effect} for r in results]


def train_elsewhere(computation: str, stages: int, task: str = "mnist-dnn") -> list[dict]:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--computation",
                          computation, "--stages", str(stages), "--task", task],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


NOISE_MODULE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "simulation",
                            "ml", "measured_divergence.py")
SIMULATED = ("xla", "onednn")  # the computations the hash trainer simulates from these


def write_noise_model(stages: int) -> None:
    reference = train_elsewhere("exact", stages)
    import tensorflow as tf  # noqa: F401 - only for its version in the header

    lines = ['"""Measured divergence of honest hardware from the reference computation, the',
             "hash trainer's noise model (ml.training). Written by",
             f"`python scripts/hardware_divergence.py --noise-model --stages {stages}`",
             f"(TensorFlow {tf.__version__}, the default task): for each computation, the "
             "per-sample",
             "losses compared, how many differed, and each differing loss's signed",
             "difference (other - reference), to 3 significant digits. Differences, not",
             "ratios: the largest ratios belong to losses near 0 and their differences are as",
             'small as the others (float32 rounding inside the loss, not of the loss)."""',
             "", "MEASURED: dict[str, dict[str, object]] = {"]
    for computation in SIMULATED:
        other = train_elsewhere(computation, stages)
        pairs = [(p, q) for x, y in zip(reference, other, strict=True)
                 for p, q in zip(x["losses"], y["losses"], strict=True)]
        changes = [float(f"{q - p:.3g}") for p, q in pairs if p != q]
        lines.append(f'    "{computation}": {{"losses": {len(pairs)}, "changed": '
                     f'{len(changes)}, "differences": (')
        for start in range(0, len(changes), 8):
            lines.append("        " + ", ".join(repr(v) for v in changes[start:start + 8])
                         + ",")
        lines.append("    )},")
    lines.append("}")
    with open(NOISE_MODULE, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    print(f"wrote {os.path.normpath(NOISE_MODULE)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=20)
    parser.add_argument("--computation", choices=COMPUTATIONS,
                        help="train this one in this process and print JSON")
    parser.add_argument("--task", default="mnist-dnn",
                        help="the TASK to train (default mnist-dnn; the noise model is "
                             "always the default task's)")
    parser.add_argument("--noise-model", action="store_true",
                        help="write simulation/ml/measured_divergence.py")
    args = parser.parse_args()
    if args.computation:
        print(json.dumps(train(args.computation, args.stages, args.task)))
        return
    if args.noise_model:
        write_noise_model(args.stages)
        return
    results = {c: train_elsewhere(c, args.stages, args.task) for c in COMPUTATIONS}
    print(f"{args.stages} stages of TASK {args.task}, one fresh process per computation")
    for i, a in enumerate(COMPUTATIONS):
        for b in COMPUTATIONS[i + 1:]:
            pairs = list(zip(results[a], results[b], strict=True))
            secrets = sum(x["secret"] != y["secret"] for x, y in pairs)
            losses = [(p, q) for x, y in pairs
                      for p, q in zip(x["losses"], y["losses"], strict=True)]
            changed = [(p, q) for p, q in losses if p != q]
            largest = max((abs(p - q) / abs(p) for p, q in changed if p), default=0.0)
            print(f"{a}/{b}: secrets differ in {secrets} of {len(pairs)} stages; "
                  f"{len(changed)} of {len(losses)} losses differ; largest relative "
                  f"difference {largest:.2e}")


if __name__ == "__main__":
    main()
