"""Benchmark of the lockstep backend: whole runs in one process, with and without the
memos that let one check of a signature or parse of a frame serve every recipient.

    python scripts/lockstep_benchmark.py                  # 5 interleaved runs of each kind
    python scripts/lockstep_benchmark.py --runs 9 --scenario poisoned-grinder

Without the memos every employee verifies and parses each message it receives itself, as
it does in the process backend (one employee per process). Runs alternate, memo off then
on, so that the machine's drift hits both alike; each pair must give the same tip, or the
script stops. Prints each run, the medians and their ratio; nothing is hard-coded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from simulation.config import default_scenario  # noqa: E402
from simulation.net.lockstep import run_lockstep  # noqa: E402
from simulation.protocol import encoding, messages  # noqa: E402

SCENARIOS = {
    # The default network with the hash trainer (11 employees, 6 blocks).
    "default": {"trainer": "hash"},
    # The strongest attacker of the attack studies, 5 of 11, rules closed.
    "poisoned-grinder": {"trainer": "hash", "adversaries": "poisoned-grinder:5",
                         "seed": 2},
}


def one_run(changes: dict, memo: bool) -> tuple[float, str]:
    size_verified, size_parsed = (1 << 16, 1 << 13) if memo else (0, 0)
    encoding._VERIFIED = encoding.Memo(size_verified)
    messages._PARSED = messages.Memo(size_parsed)
    encoding.derive_keypair.cache_clear()
    scenario = default_scenario().replace(log_file="unused.log", **changes)
    started = time.perf_counter()
    run = run_lockstep(scenario)
    seconds = time.perf_counter() - started
    honest = run.honest()
    return seconds, honest[0].status().tip.hex()[:16] if honest else "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="default")
    args = parser.parse_args()
    changes = SCENARIOS[args.scenario]
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(args.runs):
        tips = {}
        for memo in (False, True):
            seconds, tips[memo] = one_run(changes, memo)
            times[memo].append(seconds)
            print(f"run {i + 1} memo {'on ' if memo else 'off'}: {seconds:6.2f} s "
                  f"tip {tips[memo]}", flush=True)
        if tips[False] != tips[True]:
            sys.exit(f"the memos changed the run: tip {tips[False]} without, "
                     f"{tips[True]} with")
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"scenario {args.scenario}: median {off:.2f} s without the memos, {on:.2f} s "
          f"with them: {off / on:.2f}x")


if __name__ == "__main__":
    main()
