"""Time one training stage of the KerasTrainer against plain per-sample train_on_batch.

    python scripts/bench_training.py [--stages 60] [--per-stage 10]

Both run in this process, one after the other, under the simulator's TensorFlow settings
(tf_env: one intra-op and one inter-op thread, oneDNN options fixed). The trainer's time
is a whole ``result(stage)`` call (pixel conversion, the training loop, the secret and the
model hash), divided by the samples of the stage; train_on_batch is timed per stage of the
same samples. Medians over the stages, after one warm-up stage each.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulation import tf_env  # noqa: E402

tf_env.configure_tf_environment()
tf_env.import_tensorflow_quietly()
tf_env.limit_tf_threads()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from simulation.dataset import load_mnist  # noqa: E402
from simulation.keras_training import KerasTrainer, build_model  # noqa: E402
from simulation.training import MNIST_TRAIN_SIZE, stage_indices  # noqa: E402


def time_keras_trainer(mnist, stages: int, per_stage: int, seed: int) -> list[float]:
    """ms per sample of each timed stage (stage 0 is the warm-up and traces the graph)."""
    trainer = KerasTrainer("bench", mnist, seed, per_stage)
    trainer.result(0)
    per_sample = []
    for stage in range(1, stages + 1):
        started = time.perf_counter()
        trainer.result(stage)
        per_sample.append((time.perf_counter() - started) * 1000 / per_stage)
    return per_sample


def time_train_on_batch(mnist, stages: int, per_stage: int, seed: int) -> list[float]:
    keras.utils.set_random_seed(seed)
    model = build_model(keras)
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")

    def run_stage(stage: int) -> None:
        for i in stage_indices(stage, per_stage, MNIST_TRAIN_SIZE):
            x = mnist.x_train[i : i + 1].astype(np.float32) / 255.0
            model.train_on_batch(x, mnist.y_train[i : i + 1])

    run_stage(0)
    per_sample = []
    for stage in range(1, stages + 1):
        started = time.perf_counter()
        run_stage(stage)
        per_sample.append((time.perf_counter() - started) * 1000 / per_stage)
    return per_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=60, help="timed stages (default 60)")
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
    print(f"{args.stages} timed stages of {args.per_stage} samples, after 1 warm-up stage")

    ours = time_keras_trainer(mnist, args.stages, args.per_stage, args.seed)
    plain = time_train_on_batch(mnist, args.stages, args.per_stage, args.seed)
    ours_median = statistics.median(ours)
    plain_median = statistics.median(plain)
    print(
        f"KerasTrainer (tf.function loop), ms per sample: median {ours_median:.3f}, "
        f"min {min(ours):.3f}, max {max(ours):.3f}"
    )
    print(
        f"train_on_batch per sample,       ms per sample: median {plain_median:.3f}, "
        f"min {min(plain):.3f}, max {max(plain):.3f}"
    )
    print(f"ratio train_on_batch / KerasTrainer: {plain_median / ours_median:.1f}x")


if __name__ == "__main__":
    main()
