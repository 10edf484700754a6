"""What the event log costs (issue 24): whole runs with EVENT_LOG_MB off and on, side by
side.

    python scripts/event_log_benchmark.py                       # the default run, 5 pairs
    python scripts/event_log_benchmark.py --runs 3 --trainer hash --backend lockstep
    python scripts/event_log_benchmark.py --baseline /tmp/before  # and a checkout's runs

Each run is a fresh `python main.py --quiet` process with a run folder of its own; runs
alternate, log off then on (with --baseline, first the other checkout's main.py, which may
predate the log), so that the machine's drift hits them alike, and each round must end on
one tip, or the script stops. "wall" is the whole command, as a user
waits for it (with the log on it includes writing viewer.html at the end); "protocol" is
the results' protocol_seconds (the ticks alone, start-up excluded). Prints each run, the
medians, their ratio, and the sizes of events.jsonl and viewer.html; extra arguments are
passed to main.py. Nothing is hard-coded.
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
LOG_ON = ["--event-log-mb", "50"]


def one_run(extra: list[str], kind: str, tmp: str, number: int, root: str = ROOT
            ) -> dict[str, float | str]:
    log_on = kind == "on"
    folder = os.path.join(tmp, f"run-{number}-{kind}")
    command = [sys.executable, os.path.join(root, "main.py"), "--quiet", "--run-dir", folder,
               "--log-file", os.path.join(tmp, "pot_sim.log"), *extra,
               *(LOG_ON if log_on else [])]
    started = time.perf_counter()
    # From the temporary folder: a fork server started in a checkout would import that
    # checkout's package first, whichever main.py started it.
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, cwd=tmp)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command)} exited {done.returncode}: {done.stderr[-500:]}")
    with open(os.path.join(folder, "results.json"), encoding="utf-8") as f:
        results = json.load(f)

    def size(name: str) -> float:
        path = os.path.join(folder, name)
        return os.path.getsize(path) if os.path.exists(path) else 0.0

    return {"wall": wall, "protocol": float(results["protocol_seconds"]),
            "ticks": float(results["ticks"]), "tip": str(results["chain"]["tip_hash"]),
            "events": size("events.jsonl"), "page": size("viewer.html")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds of runs (default 5)")
    parser.add_argument("--baseline", metavar="CHECKOUT",
                        help="also time this checkout's main.py (log off), e.g. the commit "
                             "before the event log")
    args, extra = parser.parse_known_args()
    kinds = (["baseline"] if args.baseline else []) + ["off", "on"]
    rows: dict[str, list[dict[str, float | str]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(args.runs):
            for kind in kinds:
                root = args.baseline if kind == "baseline" else ROOT
                row = one_run(extra, kind, tmp, number, root)
                rows[kind].append(row)
                print(f"run {number + 1} {kind:>8}: wall {row['wall']:.2f} s, protocol "
                      f"{row['protocol']:.2f} s, {row['ticks']:.0f} ticks", flush=True)
            if len({rows[kind][-1]["tip"] for kind in kinds}) != 1:
                sys.exit("error: the runs of one round ended on different tips")
    print(f"\nmain.py {' '.join(extra) or '(the default scenario)'}, {args.runs} rounds, "
          f"medians:\n")
    names = {"baseline": "baseline, log off", "off": "log off", "on": "log on"}
    print("| | " + " | ".join(names[k] for k in kinds) + " | on / off |")
    print("| --- " * (len(kinds) + 2) + "|")
    for key in ("wall", "protocol"):
        medians = {k: statistics.median(float(r[key]) for r in rows[k]) for k in kinds}
        print(f"| {key} seconds | " + " | ".join(f"{medians[k]:.2f}" for k in kinds)
              + f" | {medians['on'] / medians['off']:.3f} |")
    for key, name in (("events", "events.jsonl"), ("page", "viewer.html")):
        size = statistics.median(float(r[key]) for r in rows["on"]) / 1e6
        print(f"| {name} | " + " | ".join("" for _ in kinds[:-1]) + f" | {size:.2f} MB | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
