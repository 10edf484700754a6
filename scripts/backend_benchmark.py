"""The process backend against the Ray backend, side by side in one run.

    python scripts/backend_benchmark.py                   # every point, 3 repeats up to 100
    python scripts/backend_benchmark.py --points hash:11 keras:11 --repeats 5
    python scripts/backend_benchmark.py --table-only      # the table from the CSV

A point is TRAINER:EMPLOYEES (default scenario otherwise); a point above the process
backend's limit (240 employees) runs on Ray only. Above 100 employees the coinstakes are
scaled by 11/N, as in the 51-employee network study, so that the network's message rate
stays that of 11 employees. Each repeat runs the backends one after the other (process,
ray, process, ray, ...), each a fresh `python main.py --quiet` watched like
scripts/benchmark.py's memory runs: the summed PSS of the run's whole process tree, which
for Ray includes its GCS, raylet and worker processes. Wall seconds are the whole command;
ticks per second are the protocol's (results' protocol_seconds, without start-up).

One CSV row per run, appended as soon as it ends; then a markdown table of medians, the
Ray/process wall-time ratio per point and whether every run of a point reached the same
tip. Nothing is hard-coded.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

from benchmark import MB, one_run  # noqa: E402

from simulation.config import MAX_PROCESS_EMPLOYEES, default_scenario  # noqa: E402

DEFAULT_POINTS = ["hash:11", "hash:100", "hash:240", "hash:1000", "keras:11", "keras:50"]
COLUMNS = ["trainer", "employees", "backend", "repeat", "exit_finished", "wall_seconds",
           "startup_seconds", "protocol_seconds", "ticks", "ticks_per_second",
           "chain_length", "peak_pss_mb", "peak_pss_mb_per_employee", "tip_hash"]


def scenario_args(trainer: str, employees: int) -> list[str]:
    args = ["--trainer", trainer, "--employees-num", str(employees)]
    if employees > 100:  # keep 11 employees' message rate (see the docstring)
        defaults = default_scenario()
        args += ["--td-coinstake", str(defaults.td_coinstake * 11 // employees),
                 "--bh-coinstake", str(defaults.bh_coinstake * 11 // employees)]
    return args


def measure(trainer: str, employees: int, backend: str, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="pot-backends-") as workdir:
        summary, watcher, elapsed = one_run(
            [*scenario_args(trainer, employees), "--backend", backend], workdir, watch=True)
    assert watcher is not None
    protocol = summary.get("protocol_seconds") or 0.0
    peak = watcher.peak / MB
    return {"trainer": trainer, "employees": employees, "backend": backend,
            "repeat": repeat, "exit_finished": summary["finished"],
            "wall_seconds": round(elapsed, 2),
            "startup_seconds": round(summary["startup_seconds"], 2),
            "protocol_seconds": round(protocol, 2), "ticks": summary["ticks"],
            "ticks_per_second": round(summary["ticks"] / protocol, 2) if protocol else "",
            "chain_length": summary["chain"]["length"], "peak_pss_mb": round(peak),
            "peak_pss_mb_per_employee": round(peak / employees, 1),
            "tip_hash": summary["chain"]["tip_hash"]}


def table(rows: list[dict]) -> str:
    points: dict[tuple[str, int], dict[str, list[dict]]] = {}
    for row in rows:
        key = (row["trainer"], int(row["employees"]))
        points.setdefault(key, {}).setdefault(row["backend"], []).append(row)

    def med(runs: list[dict], column: str) -> float:
        return statistics.median(float(r[column]) for r in runs if r[column] != "")

    lines = ["| trainer | employees | backend | runs | wall s | start-up s | ticks/s "
             "| peak PSS | PSS per employee | ray / process wall | same tip |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (trainer, employees), by_backend in sorted(points.items()):
        tips = {r["tip_hash"] for runs in by_backend.values() for r in runs}
        for backend in ("process", "ray"):
            runs = by_backend.get(backend)
            if not runs:
                continue
            ratio = ""
            if backend == "ray" and "process" in by_backend:
                base = med(by_backend["process"], "wall_seconds")
                ratio = f"{med(runs, 'wall_seconds') / base:.2f}"
            lines.append(
                f"| {trainer} | {employees} | {backend} | {len(runs)} "
                f"| {med(runs, 'wall_seconds'):.1f} | {med(runs, 'startup_seconds'):.1f} "
                f"| {med(runs, 'ticks_per_second'):.1f} "
                f"| {med(runs, 'peak_pss_mb') / 1024:.2f} GB "
                f"| {med(runs, 'peak_pss_mb_per_employee'):.0f} MB | {ratio} "
                f"| {'yes' if len(tips) == 1 else 'NO: ' + ', '.join(sorted(tips))} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", nargs="+", default=DEFAULT_POINTS,
                        help="TRAINER:EMPLOYEES (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per backend at points of 100 employees or fewer "
                             "(larger points run once)")
    parser.add_argument("--csv", default=os.path.join(ROOT, "docs", "backends.csv"))
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if not args.table_only:
        new = not os.path.exists(args.csv)
        with open(args.csv, "a", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            if new:
                writer.writeheader()
            for point in args.points:
                trainer, employees = point.split(":")
                n = int(employees)
                backends = ["process", "ray"] if n <= MAX_PROCESS_EMPLOYEES else ["ray"]
                for repeat in range(args.repeats if n <= 100 else 1):
                    for backend in backends:
                        row = measure(trainer, n, backend, repeat)
                        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
                        writer.writerow(row)
                        f.flush()
    with open(args.csv) as f:
        print(table(list(csv.DictReader(f))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
