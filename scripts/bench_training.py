"""Time one training stage of the KerasTrainer against plain per-sample train_on_batch.

    python scripts/bench_training.py [--stages 60] [--per-stage 10] [--rounds 3]

Both run in this process under the simulator's TensorFlow settings (tf_env: one intra-op
and one inter-op thread, oneDNN options fixed), in alternating rounds (KerasTrainer, then
train_on_batch, then again), so that a burst of load from other programs on the machine
hits both alike. The trainer's time is a whole ``result(stage)`` call (pixel conversion,
the training loop, the secret, the weights snapshot and the model hash), divided by the
samples of the stage; train_on_batch is timed per stage of the same samples. Wall time
and this process's CPU time are both reported; medians over all timed stages, after one
warm-up stage per trainer.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from simulation.ml import tf_env  # noqa: E402

tf_env.configure_tf_environment()
tf_env.import_tensorflow_quietly()
tf_env.limit_tf_threads()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from simulation.config import MNIST_TRAIN_SIZE  # noqa: E402
from simulation.ml.dataset import load_mnist  # noqa: E402
from simulation.ml.keras_training import KerasTrainer, build_model  # noqa: E402
from simulation.protocol.stages import stage_indices  # noqa: E402


def time_stages(run_stage, stages: range) -> tuple[list[float], list[float]]:
    """(wall ms, CPU ms) of each stage in ``stages``."""
    wall, cpu = [], []
    for stage in stages:
        started, cpu_started = time.perf_counter(), time.process_time()
        run_stage(stage)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    return wall, cpu


def keras_trainer(mnist, per_stage: int, seed: int):
    """The simulator's trainer; stage 0 (which traces the graph) is the warm-up."""
    trainer = KerasTrainer("bench", mnist, seed, per_stage)
    trainer.result(0)
    return trainer.result


def train_on_batch(mnist, per_stage: int, seed: int):
    """The straightforward reference: one ``train_on_batch`` call per sample."""
    keras.utils.set_random_seed(seed)
    model = build_model(keras)
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")

    def run_stage(stage: int) -> None:
        for i in stage_indices(stage, per_stage, MNIST_TRAIN_SIZE):
            x = mnist.x_train[i : i + 1].astype(np.float32) / 255.0
            model.train_on_batch(x, mnist.y_train[i : i + 1])

    run_stage(0)
    return run_stage


def describe(values: list[float], per_stage: int) -> str:
    per_sample = [v / per_stage for v in values]
    return (f"median {statistics.median(per_sample):.3f}, min {min(per_sample):.3f}, "
            f"max {max(per_sample):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=60,
                        help="timed stages per round (default 60)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--per-stage", type=int, default=10, help="samples per stage")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    started = time.perf_counter()
    mnist = load_mnist()
    print(f"MNIST from {mnist.source} in {time.perf_counter() - started:.1f} s")
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, "
        f"TF_ENABLE_ONEDNN_OPTS={os.environ['TF_ENABLE_ONEDNN_OPTS']}, threads "
        f"intra={tf.config.threading.get_intra_op_parallelism_threads()} "
        f"inter={tf.config.threading.get_inter_op_parallelism_threads()}"
    )
    print(f"{args.rounds} rounds of {args.stages} timed stages of {args.per_stage} samples "
          f"per trainer, after 1 warm-up stage each")

    ours = keras_trainer(mnist, args.per_stage, args.seed)
    plain = train_on_batch(mnist, args.per_stage, args.seed)
    timings: dict[str, tuple[list[float], list[float]]] = {"ours": ([], []), "plain": ([], [])}
    for r in range(args.rounds):
        stages = range(1 + r * args.stages, 1 + (r + 1) * args.stages)
        for name, run_stage in (("ours", ours), ("plain", plain)):
            wall, cpu = time_stages(run_stage, stages)
            timings[name][0].extend(wall)
            timings[name][1].extend(cpu)
    for name, label in (("ours", "KerasTrainer.result (whole stage)"),
                        ("plain", "train_on_batch per sample        ")):
        wall, cpu = timings[name]
        print(f"{label} ms per sample: wall {describe(wall, args.per_stage)}")
        print(f"{' ' * len(label)}               CPU  {describe(cpu, args.per_stage)}")
    ratio = statistics.median(timings["plain"][0]) / statistics.median(timings["ours"][0])
    print(f"ratio train_on_batch / KerasTrainer (median wall): {ratio:.1f}x")


if __name__ == "__main__":
    main()
