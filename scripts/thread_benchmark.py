"""Why every employee runs TensorFlow with one thread per pool: time a training step when
several employee-like processes share the machine, with TensorFlow's default thread pools
and with one intra-op and one inter-op thread (tf_env.limit_tf_threads).

    python scripts/thread_benchmark.py [--processes 4] [--stages 30] [--rounds 2]

Each round starts ``--processes`` fresh processes at once, all with the default pools or
all with one thread each, and alternates the two settings, so that the machine's drift
hits both alike. Every process trains the simulator's KerasTrainer (stage 0, which traces
the graph, is not timed) and reports its median milliseconds per sample; the script
prints each process, then the median over all processes of each setting and the ratio.
Nothing is hard-coded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

CHILD = """
import json, statistics, sys, time
from simulation.ml import tf_env
tf_env.configure_tf_environment()
tf_env.import_tensorflow_quietly()
if {one_thread}:
    tf_env.limit_tf_threads()
from simulation.ml.dataset import load_mnist_from_hub
from simulation.ml.keras_training import KerasTrainer
trainer = KerasTrainer("bench", load_mnist_from_hub(), 42, 10)
trainer.result(0)
times = []
for stage in range(1, {stages} + 1):
    started = time.perf_counter()
    trainer.result(stage)
    times.append((time.perf_counter() - started) * 1000 / 10)
print(json.dumps(statistics.median(times)))
"""


def one_round(processes: int, stages: int, one_thread: bool) -> list[float]:
    code = CHILD.format(one_thread=one_thread, stages=stages)
    started = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    medians = []
    for process in started:
        out, err = process.communicate(timeout=900)
        if process.returncode != 0:
            sys.exit(f"a benchmark process failed:\n{err[-2000:]}")
        medians.append(json.loads(out.strip().splitlines()[-1]))
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--stages", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[bool, list[float]] = {False: [], True: []}
    for round_number in range(1, args.rounds + 1):
        for one_thread in (False, True):
            began = time.perf_counter()
            medians = one_round(args.processes, args.stages, one_thread)
            results[one_thread].extend(medians)
            label = "one thread per pool" if one_thread else "default pools      "
            print(f"round {round_number}, {label}: ms per sample "
                  f"{', '.join(f'{m:.2f}' for m in medians)} "
                  f"({time.perf_counter() - began:.1f} s)", flush=True)
    default, single = statistics.median(results[False]), statistics.median(results[True])
    print(f"{args.processes} processes at once: median {default:.2f} ms per sample with "
          f"TensorFlow's default pools, {single:.2f} ms with one thread per pool "
          f"({default / single:.2f}x)")


if __name__ == "__main__":
    main()
