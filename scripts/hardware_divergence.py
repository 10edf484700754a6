"""How often do two honest hardware profiles disagree? (issue 9, item 1)

Trains the default task (MNIST, TF_SEED 42, 10 samples per stage) for STAGES stages with
every computation the HARDWARE profiles offer on this machine (today: the reference
kernels and XLA) and prints, per pair, the share of stages whose secrets differ, the share
of per-sample losses that differ, and the largest relative difference of a loss. The
speed profiles (fast, slow, ...) compute exactly like the reference and are not listed.

    python scripts/hardware_divergence.py [--stages 20]
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=20)
    args = parser.parse_args()

    from simulation.config import default_scenario
    from simulation.ml import tf_env

    tf_env.configure_tf_environment()
    tf_env.import_tensorflow_quietly()
    from simulation.ml.dataset import load_mnist
    from simulation.ml.keras_training import KerasTrainer
    from simulation.protocol.stages import MNIST_TRAIN_SIZE, model_id_of, samples_per_stage

    scenario = default_scenario()
    mnist = load_mnist()
    per_stage = samples_per_stage(MNIST_TRAIN_SIZE, scenario.iterations_per_epoch)
    computations = {"exact": False, "xla": True}
    results = {}
    for name, jit in computations.items():
        trainer = KerasTrainer(model_id_of(scenario), mnist, scenario.tf_seed, per_stage,
                               jit_compile=jit)
        results[name] = [trainer.result(s) for s in range(args.stages)]
    names = list(computations)
    print(f"{args.stages} stages of {per_stage} samples, TF_SEED {scenario.tf_seed}")
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            pairs = list(zip(results[a], results[b], strict=True))
            secrets = sum(x.secret != y.secret for x, y in pairs)
            losses = [(p, q) for x, y in pairs for p, q in zip(x.losses, y.losses,
                                                                 strict=True)]
            changed = [(p, q) for p, q in losses if p != q]
            largest = max((abs(p - q) / abs(p) for p, q in changed if p), default=0.0)
            print(f"{a}/{b}: secrets differ in {secrets} of {len(pairs)} stages; "
                  f"{len(changed)} of {len(losses)} losses differ; largest relative "
                  f"difference {largest:.2e}")


if __name__ == "__main__":
    main()
