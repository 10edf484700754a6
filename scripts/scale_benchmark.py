"""Scaling benchmark: protocol messages, time and memory as the network grows.

    python scripts/scale_benchmark.py                          # 3..20 employees, seeds 1-3
    python scripts/scale_benchmark.py --employees 3 5 8 10 13 16 20 30 50 100 --seeds 1 2 3
    python scripts/scale_benchmark.py --trainer hash           # protocol only, no TensorFlow
    python scripts/scale_benchmark.py --plot-only --out docs/scale   # redraw from the CSV
    python scripts/scale_benchmark.py --profile                # where one default run spends

Every point is a fresh `python main.py --quiet` run (real Keras training unless --trainer
hash) with EMPLOYEES_NUM and SEED set and every other knob at its default, watched like
scripts/benchmark.py's memory runs (the summed PSS of the run's process tree). One CSV row
per run, appended as soon as the run ends (an interrupted sweep keeps what it measured);
then two plots: the protocol messages against employees, with the seed project's own
figures marked, and the cost (wall seconds, peak PSS per run and per employee) against
employees. The plots show medians over the seeds, with the range as bars.

--profile runs the default scenario once with every forked process (employees, users,
network) measuring its CPU time (the fork server sets this up when POT_PROFILE_DIR is set,
see simulation/net/tf_preload.py): by default with counters around the functions that train,
trace, hash, verify signatures, frame and pipe messages and log; with --profile cprofile
under cProfile (which inflates Python-heavy parts such as tracing).

    python scripts/scale_benchmark.py --profile
    python scripts/scale_benchmark.py --profile timers --profile-args --employees-num 50
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

from benchmark import MB, one_run  # noqa: E402

# The seed project's own benchmark (6 blocks): employees -> (forks, training declarations,
# block headers). Quoted from the issue; they are that project's figures, not ours.
SEED_PROJECT = {3: (1, 15, 6), 10: (13, 31, 5), 20: (20, 39, 5)}

COLUMNS = ["employees", "seed", "trainer", "finished", "forks", "training_declarations",
           "block_headers", "stakeholder_signatures", "wrapped_blocks", "transactions",
           "ticks", "chain_length", "wall_seconds", "startup_seconds", "protocol_seconds",
           "peak_pss_mb", "peak_pss_mb_per_employee", "peak_pss_plus_shm_mb",
           "memory_samples", "tip_hash"]
KIND_COLUMNS = {"TD": "training_declarations", "BH": "block_headers",
                "SS": "stakeholder_signatures", "WB": "wrapped_blocks", "TX": "transactions"}


def row_of(summary: dict, memory: dict, employees: int, seed: int, trainer: str) -> dict:
    sent = summary.get("messages", {}).get("sent", {})
    row = {
        "employees": employees,
        "seed": seed,
        "trainer": trainer,
        "finished": summary.get("finished"),
        "forks": summary.get("forks"),
        "ticks": summary.get("ticks"),
        "chain_length": summary.get("chain", {}).get("length"),
        "wall_seconds": summary.get("wall_seconds"),
        "startup_seconds": summary.get("startup_seconds"),
        "protocol_seconds": summary.get("protocol_seconds"),
        "peak_pss_mb": memory["peak_pss_mb"],
        "peak_pss_mb_per_employee": memory["peak_pss_mb_per_employee"],
        "peak_pss_plus_shm_mb": memory["peak_pss_plus_shm_mb"],
        "memory_samples": memory["samples"],
        "tip_hash": summary.get("chain", {}).get("tip_hash"),
    }
    for kind, column in KIND_COLUMNS.items():
        row[column] = sent.get(kind)
    return row


def sweep(args: argparse.Namespace, csv_path: str) -> None:
    new_file = not os.path.exists(csv_path) or args.restart
    mode = "w" if new_file else "a"
    with open(csv_path, mode, newline="") as f, tempfile.TemporaryDirectory() as workdir:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new_file:
            writer.writeheader()
        for n in args.employees:
            for seed in args.seeds:
                argv = ["--employees-num", str(n), "--seed", str(seed), "--trainer",
                        args.trainer, "--log-file", os.path.join(workdir, "pot_sim.log"),
                        "--max-ticks", str(args.max_ticks)]
                started = time.monotonic()
                summary, watcher, _ = one_run(argv, workdir, watch=True)
                assert watcher is not None
                memory = watcher.figures(n)
                row = row_of(summary, memory, n, seed, args.trainer)
                writer.writerow(row)
                f.flush()
                print(f"n={n:3d} seed={seed}: finished {row['finished']}, "
                      f"{row['chain_length']} blocks in {row['ticks']} ticks, forks "
                      f"{row['forks']}, TD {row['training_declarations']}, BH "
                      f"{row['block_headers']}, SS {row['stakeholder_signatures']}, WB "
                      f"{row['wrapped_blocks']}; wall {row['wall_seconds']} s (start-up "
                      f"{row['startup_seconds']} s), peak PSS {row['peak_pss_mb']} MB "
                      f"({row['peak_pss_mb_per_employee']} MB per employee); took "
                      f"{time.monotonic() - started:.0f} s", flush=True)


def read_rows(csv_path: str, trainer: str) -> list[dict]:
    with open(csv_path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["trainer"] == trainer]
    for r in rows:
        for k in COLUMNS:
            if k in ("trainer", "tip_hash", "finished"):
                continue
            r[k] = float(r[k]) if r[k] not in ("", "None") else None
    return rows


def by_employees(rows: list[dict], column: str) -> tuple[list[int], list[float], list, list]:
    """Employees, median of ``column`` over the seeds, and the distances to min and max."""
    groups: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        if r[column] is not None:
            groups[int(r["employees"])].append(r[column])
    xs = sorted(groups)
    med = [statistics.median(groups[x]) for x in xs]
    low = [m - min(groups[x]) for x, m in zip(xs, med, strict=True)]
    high = [max(groups[x]) - m for x, m in zip(xs, med, strict=True)]
    return xs, med, low, high


def table(rows: list[dict]) -> str:
    """A Markdown table of the medians per employee count."""
    head = ["employees", "runs", "forks", "training_declarations", "block_headers",
            "stakeholder_signatures", "wrapped_blocks", "ticks", "wall_seconds",
            "peak_pss_mb", "peak_pss_mb_per_employee"]
    names = ["employees", "runs", "forks", "TD", "BH", "SS", "WB", "ticks", "wall s",
             "peak PSS MB", "MB per employee"]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    counts: dict[int, int] = defaultdict(int)
    for r in rows:
        counts[int(r["employees"])] += 1
    columns = {c: dict(zip(*by_employees(rows, c)[:2], strict=True)) for c in head[2:]}
    for n in sorted(counts):
        cells = [str(n), str(counts[n])]
        for c in head[2:]:
            value = columns[c].get(n)
            cells.append("" if value is None else f"{value:g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], out: str, trainer: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    seeds = sorted({int(r["seed"]) for r in rows})
    written = []

    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(13, 5),
                                   gridspec_kw={"width_ratios": [3, 2]})
    series = [("forks", "forks", "tab:red", "o"),
              ("training_declarations", "training declarations (TD)", "tab:blue", "s"),
              ("block_headers", "block headers (BH)", "tab:green", "^"),
              ("stakeholder_signatures", "stakeholder signatures (SS)", "tab:purple", "v"),
              ("wrapped_blocks", "wrapped blocks (WB)", "tab:orange", "D")]
    small = [r for r in rows if r["employees"] <= max(SEED_PROJECT)]
    for axis, subset in ((ax, rows), (zoom, small)):
        for column, label, color, marker in series:
            xs, med, low, high = by_employees(subset, column)
            axis.errorbar(xs, med, yerr=[low, high], label=label, color=color,
                          marker=marker, capsize=3)
        for index, (_column, color) in enumerate((("forks", "tab:red"),
                                                  ("training_declarations", "tab:blue"),
                                                  ("block_headers", "tab:green"))):
            xs = sorted(SEED_PROJECT)
            axis.scatter(xs, [SEED_PROJECT[x][index] for x in xs], marker="*", s=180,
                         facecolors="none", edgecolors=color, linewidths=1.5)
        axis.scatter([], [], marker="*", s=180, facecolors="none", edgecolors="black",
                     label="seed project's own figures: forks, TD, BH (same colours)")
        axis.set_xlabel("employees (EMPLOYEES_NUM)")
        axis.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_ylabel("messages sent in the run (median over seeds; bars: range)")
    ax.set_title("all sizes (employees on a log scale)")
    ax.set_xscale("log")
    ax.set_xticks(sorted({int(r["employees"]) for r in rows}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    zoom.set_xticks(sorted({int(r["employees"]) for r in small}))
    zoom.set_title(f"up to {max(SEED_PROJECT)} employees, where the seed project has figures")
    fig.suptitle(f"PoT protocol messages for 6 blocks, trainer {trainer}, seeds "
                 f"{', '.join(map(str, seeds))}")
    path = f"{out}_messages.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    xs, med, low, high = by_employees(rows, "wall_seconds")
    left.errorbar(xs, med, yerr=[low, high], marker="o", capsize=3, label="wall (whole run)")
    xs, med, low, high = by_employees(rows, "startup_seconds")
    left.errorbar(xs, med, yerr=[low, high], marker="s", capsize=3, label="start-up")
    left.set_xlabel("employees")
    left.set_ylabel("seconds")
    left.set_title("time to 6 blocks")
    left.legend(fontsize=8)
    xs, med, low, high = by_employees(rows, "peak_pss_mb")
    right.errorbar(xs, [m / 1024 for m in med], yerr=[[v / 1024 for v in low],
                   [v / 1024 for v in high]], marker="o", capsize=3, color="tab:red",
                   label="peak PSS, all processes (GiB)")
    right.set_xlabel("employees")
    right.set_ylabel("GiB, all processes", color="tab:red")
    twin = right.twinx()
    xs, med, low, high = by_employees(rows, "peak_pss_mb_per_employee")
    twin.errorbar(xs, med, yerr=[low, high], marker="s", capsize=3, color="tab:blue",
                  label="per employee (MB)")
    twin.set_ylabel("MB per employee", color="tab:blue")
    right.set_title("peak memory (PSS summed over the run's processes)")
    for axis in (left, right):
        axis.grid(True, alpha=0.3)
    fig.suptitle(f"Cost of a run against employees, trainer {trainer}, "
                 f"{os.cpu_count()} CPUs")
    fig.tight_layout()
    path = f"{out}_cost.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written


# --- profile of one run ----------------------------------------------------------------------

# What a process's CPU time went to: (label, [(file name ending, function names)]). The
# cumulative time of the listed functions (calls nested in another listed function of the
# same label are not counted twice). Labels starting with "  " are parts of the label above.
PARTS = [
    ("building the trainer (model, Adam state)", [("keras_training.py", {"__init__"})]),
    ("training (KerasTrainer.result)", [("keras_training.py", {"result"})]),
    ("  tracing the training graph", [("polymorphic_function.py",
                                       {"get_concrete_function"})]),
    ("  running the training graph", [("concrete_function.py", {"__call__"})]),
    ("  model hash (SHA-256 of the weights)", [("keras_training.py", {"weights_hash"})]),
    ("test accuracy", [("keras_training.py", {"test_accuracy"})]),
    ("protocol step (Employee.step, incl. training)", [("employee.py", {"step"})]),
    ("  signature checks (Ed25519 verify)", [("encoding.py", {"verify"})]),
    ("  signing", [("encoding.py", {"sign"})]),
    ("  decoding messages (CBOR, schema)", [("messages.py", {"decode", "from_bytes"})]),
    ("frames (pack/unpack)", [("frames.py", {"to_wire", "read", "from_fields"})]),
    ("pipes (send/recv, CPU only)", [("connection.py", {"send_bytes", "recv_bytes"})]),
    ("logging", [("logs.py", set()), ("logging/__init__.py", {"handle"})]),
]


def part_seconds(stats: pstats.Stats, wanted: list[tuple[str, set[str]]]) -> float:
    """Cumulative seconds of the matching functions, minus calls made from each other."""
    entries = stats.stats  # type: ignore[attr-defined]

    def matches(key: tuple) -> bool:
        filename, _, function = key
        return any(filename.endswith(end) and (not names or function in names)
                   for end, names in wanted)

    total = 0.0
    for key, (_, _, _, cumtime, callers) in entries.items():
        if not matches(key):
            continue
        nested = sum(c[3] for caller, c in callers.items() if matches(caller))
        total += cumtime - nested
    return total


# The timers that do not run inside one another (training runs inside Employee.step).
OUTERMOST = ("trainer: build (model, Adam state)", "trainer: test accuracy",
             "protocol: Employee.step (training included)", "IPC: frames pack/unpack",
             "IPC: pipe send/recv (CPU only)", "logging")


def profile(args: argparse.Namespace) -> None:
    mode = args.profile
    with tempfile.TemporaryDirectory() as workdir:
        profile_dir = os.path.join(workdir, "profiles")
        os.makedirs(profile_dir)
        env = dict(os.environ, POT_PROFILE_DIR=profile_dir, POT_PROFILE=mode)
        argv = ["--log-file", os.path.join(workdir, "pot_sim.log"), *args.profile_args]
        command = [sys.executable, os.path.join(ROOT, "main.py"), "--quiet", "--no-run-dir",
                   "--results", os.path.join(workdir, "results.json"), *argv]
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"profiled run failed: {done.stderr[-2000:]}")
        with open(os.path.join(workdir, "results.json")) as f:
            summary = json.load(f)
        files = sorted(glob.glob(os.path.join(profile_dir, "*.json")))
        if not files:
            raise SystemExit("no profiles were written (is simulation/net/tf_preload.py the one "
                             "with POT_PROFILE_DIR support?)")
        groups: dict[str, list[dict]] = defaultdict(list)
        for path in files:
            name = os.path.basename(path).split(".")[0]
            with open(path) as f:
                data = json.load(f)
            data["path"] = path
            groups["employees" if name.startswith("E") else name].append(data)
        n = summary["scenario"]["EMPLOYEES_NUM"]
        print(f"profiled run ({n} employees, {mode}): {summary['wall_seconds']} s wall, "
              f"start-up {summary['startup_seconds']} s, {summary['ticks']} ticks; CPU "
              f"seconds of each forked process, summed per kind of process")
        for group, items in sorted(groups.items()):
            total = sum(d["cpu_seconds"] for d in items)
            print(f"{group} ({len(items)} processes): {total:.2f} CPU s in all, "
                  f"{total / len(items):.3f} s each")
            if mode == "cprofile":
                stats = [pstats.Stats(d["path"][: -len(".json")] + ".prof") for d in items]
                for label, wanted in PARTS:
                    seconds = sum(part_seconds(st, wanted) for st in stats)
                    if seconds >= 0.005:
                        print(f"    {label:50s} {seconds:7.2f} s {100 * seconds / total:5.1f}%")
                continue
            counted = 0.0
            for label in items[0]["order"]:
                seconds = sum(d["parts"].get(label, [0.0, 0])[0] for d in items)
                calls = sum(d["parts"].get(label, [0.0, 0])[1] for d in items)
                if label in OUTERMOST:
                    counted += seconds
                if calls:
                    print(f"    {label:46s} {seconds:7.3f} s {100 * seconds / total:5.1f}%  "
                          f"{calls:7d} calls")
            rest = total - counted
            print(f"    {'rest (start after fork, imports, page faults)':46s} {rest:7.3f} s "
                  f"{100 * rest / total:5.1f}%")
        if args.profile_dump and mode == "cprofile":
            for path in files:
                if os.path.basename(path).startswith(("E0.", "network.")):
                    print(f"--- {os.path.basename(path)}: top functions by cumulative time")
                    pstats.Stats(path[: -len(".json")] + ".prof").sort_stats(
                        "cumulative").print_stats(25)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, nargs="+",
                        default=[3, 5, 8, 10, 13, 16, 20])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--trainer", choices=("keras", "hash"), default="keras")
    parser.add_argument("--max-ticks", type=int, default=2000)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "scale"),
                        help="path prefix of the CSV and the PNGs (default docs/scale)")
    parser.add_argument("--restart", action="store_true",
                        help="overwrite the CSV instead of appending to it")
    parser.add_argument("--plot-only", action="store_true",
                        help="draw the plots and the table from the existing CSV")
    parser.add_argument("--profile", nargs="?", const="timers", choices=("timers", "cprofile"),
                        help="profile one run (default scenario) instead of sweeping: CPU "
                             "timers around a few functions (default), or cProfile")
    parser.add_argument("--profile-args", nargs=argparse.REMAINDER, default=[],
                        help="with --profile: main.py flags for the profiled run (last)")
    parser.add_argument("--profile-dump", action="store_true",
                        help="with --profile cprofile: also print the top functions of E0 "
                             "and the network")
    args = parser.parse_args()
    if args.profile:
        profile(args)
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    csv_path = f"{args.out}.csv"
    if not args.plot_only:
        sweep(args, csv_path)
    rows = read_rows(csv_path, args.trainer)
    if not rows:
        raise SystemExit(f"no {args.trainer} rows in {csv_path}")
    for path in plot(rows, args.out, args.trainer):
        print(f"wrote {path}")
    print(f"medians over the seeds ({csv_path}, trainer {args.trainer}):")
    print(table(rows))
    unfinished = [r for r in rows if r["finished"] != "True"]
    if unfinished:
        print(f"{len(unfinished)} runs did not reach the target: " + ", ".join(
            f"n={int(r['employees'])} seed={int(r['seed'])}" for r in unfinished))
    print(f"largest peak PSS: {max(r['peak_pss_mb'] for r in rows) * MB / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
