"""Benchmark of whole runs: wall time, start-up, ticks, peak memory, training speed.

    python scripts/benchmark.py                 # default scenario, 3 runs
    python scripts/benchmark.py --runs 5 --employees-num 20

Each run is a fresh `python main.py --quiet` process, so every run pays TensorFlow's
start-up. The timed runs are not watched. One more run measures memory: the peak of the
summed proportional set size (PSS) of its whole process tree (main, fork server,
employees, users, network), read from /proc/PID/smaps_rollup every 0.5 s. Reading
smaps_rollup of a dozen TensorFlow processes takes about half a second of CPU, so that
run is slower and its times are not used. Prints each run and the medians; nothing is
hard-coded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from simulation.config import add_knob_arguments, flag_name  # noqa: E402


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def one_run(argv: list[str], workdir: str, watch: bool) -> tuple[dict, int, float]:
    results = os.path.join(workdir, "results.json")
    command = [sys.executable, os.path.join(ROOT, "main.py"), "--quiet", "--results",
               results, *argv]
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        if watch:
            peak = max(peak, sum(pss_bytes(p) for p in tree(proc.pid)))
            time.sleep(0.5)
        else:
            time.sleep(0.05)
    elapsed = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr.read()[-2000:]}")
    with open(results) as f:
        return json.load(f), peak, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    add_knob_arguments(parser)
    args = parser.parse_args()
    argv = []
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    for name, value in vars(args).items():
        if name not in ("runs", "json") and value is not None:
            argv += [flag_name(name.upper()), str(value)]
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        if args.log_file is None:
            argv += ["--log-file", os.path.join(workdir, "pot_sim.log")]
        for i in range(args.runs):
            s, _, elapsed = one_run(argv, workdir, watch=False)
            n = s["scenario"]["EMPLOYEES_NUM"]
            row = {
                "run": i + 1,
                "finished": s["finished"],
                "process_seconds": round(elapsed, 2),
                "wall_seconds": s["wall_seconds"],
                "startup_seconds": s["startup_seconds"],
                "protocol_seconds": s["protocol_seconds"],
                "ticks": s["ticks"],
                "chain_length": s["chain"]["length"],
                "forks": s["forks"],
                "ms_per_sample": s["training"]["median_ms_per_sample"],
                "first_stage_seconds": s["training"]["median_first_stage_seconds"],
                "tip_hash": s["chain"]["tip_hash"],
            }
            rows.append(row)
            print(f"run {row['run']}: " + ", ".join(f"{k} {v}" for k, v in row.items()
                                                     if k != "run"), flush=True)
        s, peak, _ = one_run(argv, workdir, watch=True)
        n = s["scenario"]["EMPLOYEES_NUM"]
        memory = {"peak_pss_mb": round(peak / 2**20, 1),
                  "peak_pss_mb_per_employee": round(peak / 2**20 / n, 1)}
        print(f"memory run: peak PSS of all processes {memory['peak_pss_mb']} MB, "
              f"{memory['peak_pss_mb_per_employee']} MB per employee", flush=True)
    skip = ("run", "tip_hash", "finished")
    medians = {k: statistics.median(r[k] for r in rows if r[k] is not None)
               for k in rows[0] if k not in skip}
    knobs = rows and s["scenario"]
    print(f"scenario: {knobs['EMPLOYEES_NUM']} employees, target "
          f"{knobs['TARGET_BLOCKCHAIN_LENGTH']} blocks, seed {knobs['SEED']}, trainer "
          f"{knobs['TRAINER']}; {args.runs} runs on {os.cpu_count()} CPUs")
    print("median: " + ", ".join(f"{k} {v:g}" for k, v in medians.items()))
    same = len({r["tip_hash"] for r in rows}) == 1
    print(f"same tip hash in every run: {same}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"scenario": knobs, "runs": rows, "median": medians,
                       "memory": memory}, f, indent=2)
    return 0 if same and all(r["finished"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
