"""The security experiment: sweep the share of poisoned employees and measure who wins.

    python scripts/poison_sweep.py                          # 11 employees, 0..8 poisoned
    python scripts/poison_sweep.py --seeds 1 2 3 --counts 0 2 4 6 8 --out docs/poison

For every (poisoned count, seed) it runs `python main.py` with that many poisoned
employees (real Keras training unless --trainer hash) and reads the results JSON. It
writes OUT.csv (one row per run) and OUT.png: poisoned blocks in the honest employees'
chain and in the employer's chain, blocks per tick of the honest and the poisoned
branch, and the test accuracy of the honest model and of the model the employer gets.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COLUMNS = [
    "employees", "poisoned", "share", "seed", "finished", "stopped_by", "ticks",
    "wall_seconds", "honest_chain_length", "honest_poisoned_blocks", "honest_blocks_per_tick",
    "poisoned_chain_length", "poisoned_blocks_per_tick", "employer_chain_length",
    "employer_poisoned_blocks", "employer_model_source", "honest_test_accuracy",
    "poisoned_test_accuracy_same_stage", "employer_test_accuracy", "forks",
]


def one_run(employees: int, poisoned: int, seed: int, args: argparse.Namespace,
            workdir: str) -> dict:
    results = os.path.join(workdir, f"r-{poisoned}-{seed}.json")
    command = [
        sys.executable, os.path.join(ROOT, "main.py"), "--quiet", "--results", results,
        "--log-file", os.path.join(workdir, "pot_sim.log"),
        "--employees-num", str(employees), "--seed", str(seed),
        "--max-ticks", str(args.max_ticks), "--trainer", args.trainer,
        "--poison-rate", str(args.poison_rate),
        "--target-blockchain-length", str(args.target),
    ]
    if poisoned:
        command += ["--adversaries", f"poisoned:{poisoned}"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"run failed ({done.returncode}): {done.stderr[-2000:]}")
    with open(results) as f:
        s = json.load(f)
    if s.get("error"):
        raise SystemExit(f"run with {poisoned} poisoned, seed {seed} failed: {s['error']}")
    branch = s["poisoned_branch"] or {}
    employer = s["employer"]
    return {
        "employees": employees, "poisoned": poisoned,
        "share": round(poisoned / employees, 3), "seed": seed,
        "finished": s["finished"], "stopped_by": s["stopped_by"], "ticks": s["ticks"],
        "wall_seconds": s["wall_seconds"],
        "honest_chain_length": s["chain"]["length"],
        "honest_poisoned_blocks": s["honest"]["poisoned_blocks"],
        "honest_blocks_per_tick": s["honest"]["blocks_per_tick"],
        "poisoned_chain_length": branch.get("chain_length"),
        "poisoned_blocks_per_tick": branch.get("blocks_per_tick"),
        "employer_chain_length": employer["chain_length"],
        "employer_poisoned_blocks": employer["poisoned_blocks"],
        "employer_model_source": employer["model_source"],
        "honest_test_accuracy": s["model"]["test_accuracy"],
        "poisoned_test_accuracy_same_stage": s["model"]["poisoned_test_accuracy"],
        "employer_test_accuracy": employer["model_test_accuracy"],
        "forks": s["forks"],
    }


def plot(rows: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted({r["poisoned"] for r in rows})
    shares = [100 * c / rows[0]["employees"] for c in counts]

    def series(key: str) -> tuple[list[float], list[float], list[float]]:
        mid, low, high = [], [], []
        for c in counts:
            values = [r[key] for r in rows if r["poisoned"] == c and r[key] not in (None, "")]
            values = [float(v) for v in values]
            mid.append(statistics.median(values) if values else float("nan"))
            low.append(min(values) if values else float("nan"))
            high.append(max(values) if values else float("nan"))
        return mid, low, high

    def draw(ax, key: str, label: str, marker: str) -> None:
        mid, low, high = series(key)
        ax.plot(shares, mid, marker=marker, label=label)
        ax.fill_between(shares, low, high, alpha=0.15)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    ax = axes[0]
    draw(ax, "honest_poisoned_blocks", "in the honest employees' chain", "o")
    draw(ax, "employer_poisoned_blocks", "in the employer's chain", "s")
    ax.set_title("Blocks built on poisoned training")
    ax.set_ylabel("blocks (median, band: min-max over seeds)")
    ax = axes[1]
    draw(ax, "honest_blocks_per_tick", "honest branch", "o")
    draw(ax, "poisoned_blocks_per_tick", "poisoned branch", "s")
    ax.set_title("Growth of each branch")
    ax.set_ylabel("blocks per tick")
    ax = axes[2]
    draw(ax, "honest_test_accuracy", "honest model", "o")
    draw(ax, "employer_test_accuracy", "model the employer takes", "s")
    ax.set_title("MNIST test accuracy")
    ax.set_ylabel("accuracy")
    for ax in axes:
        ax.set_xlabel("poisoned employees (% of EMPLOYEES_NUM)")
        ax.axvline(50, color="grey", linestyle=":", linewidth=1)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, default=11)
    parser.add_argument("--counts", type=int, nargs="+", default=list(range(0, 9)),
                        help="numbers of poisoned employees (default 0..8 of 11)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--max-ticks", type=int, default=300)
    parser.add_argument("--target", type=int, default=6)
    parser.add_argument("--poison-rate", type=float, default=0.5)
    parser.add_argument("--trainer", default="keras", choices=["keras", "hash"])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "poison_sweep"),
                        help="output path without extension (.csv and .png)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for count in args.counts:
            for seed in args.seeds:
                row = one_run(args.employees, count, seed, args, workdir)
                rows.append(row)
                print(", ".join(f"{k} {row[k]}" for k in COLUMNS), flush=True)
    with open(args.out + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    title = (f"{args.employees} employees, target {args.target} blocks, MAX_TICKS "
             f"{args.max_ticks}, POISON_RATE {args.poison_rate}, trainer {args.trainer}, "
             f"seeds {args.seeds}")
    plot(rows, args.out + ".png", title)
    print(f"wrote {args.out}.csv and {args.out}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
