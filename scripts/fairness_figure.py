"""Does PoT reward useful work proportionally? The fairness study of
studies/fairness.toml, as a table, a CSV and a figure.

Reads every run's results (docs/studies/fairness/runs/*.json, written by
``python -m simulation.sweep``) and, per STAGE_TICKS and hardware speed factor, averages
over the seeds the share of the coinbase and the share of the blocks that the employees
of that factor earned, with Student-t 95% intervals; their compute share is fixed by the
mix. Writes docs/studies/fairness/by_factor.csv and docs/studies/fairness.png.

    python scripts/fairness_figure.py
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulation.experiments.statistics import t_interval  # noqa: E402

STUDY = ROOT / "docs" / "studies" / "fairness"


def collect() -> dict[tuple[int, str], dict[str, list[float]]]:
    """(STAGE_TICKS, factor) -> {"reward_share": [...], "blocks_share": [...],
    "compute_share": [...]} over the runs that passed their self-check."""
    out: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted((STUDY / "runs").glob("*.json")):
        if path.name.endswith(".row.json"):
            continue
        results = json.loads(path.read_text())
        if not results.get("self_check", {}).get("passed"):
            continue
        ticks = int(results["scenario"]["STAGE_TICKS"])
        for factor, group in results["fairness"]["by_speed_factor"].items():
            for key in ("reward_share", "blocks_share", "compute_share"):
                if group[key] is not None:
                    out[(ticks, factor)][key].append(group[key])
    return out


def rows() -> list[dict[str, object]]:
    table = []
    for (ticks, factor), shares in sorted(collect().items(),
                                          key=lambda kv: (kv[0][0], float(kv[0][1]))):
        row: dict[str, object] = {"STAGE_TICKS": ticks, "speed_factor": factor,
                                  "runs": len(shares["reward_share"]),
                                  "compute_share": round(shares["compute_share"][0], 4)}
        for key in ("reward_share", "blocks_share"):
            values = shares[key]
            interval = t_interval(values)
            row[f"{key}_mean"] = round(statistics.fmean(values), 4)
            row[f"{key}_ci95_low"] = round(interval[0], 4) if interval else ""
            row[f"{key}_ci95_high"] = round(interval[1], 4) if interval else ""
        table.append(row)
    return table


def figure(table: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    factors = sorted({str(r["speed_factor"]) for r in table}, key=float)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, key, title in ((axes[0], "blocks_share", "share of the blocks trained"),
                           (axes[1], "reward_share", "share of the coinbase earned")):
        for i, factor in enumerate(factors):
            points = [r for r in table if r["speed_factor"] == factor]
            xs = [int(r["STAGE_TICKS"]) for r in points]  # type: ignore[call-overload]
            ys = [float(r[f"{key}_mean"]) for r in points]  # type: ignore[arg-type]
            low = [y - float(r[f"{key}_ci95_low"] or y) for y, r in zip(ys, points, strict=True)]
            high = [float(r[f"{key}_ci95_high"] or y) - y for y, r in zip(ys, points, strict=True)]
            colour = f"C{i}"
            ax.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, color=colour,
                        label=f"factor {factor} ({points[0]['runs']} runs per point)")
            ax.axhline(float(points[0]["compute_share"]), color=colour,  # type: ignore[arg-type]
                       linestyle=":", alpha=0.8)
        ax.set(xlabel="STAGE_TICKS (ticks the reference hardware needs per stage)",
               title=f"{title} (dotted: compute share)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of the 11 employees' total")
    axes[1].legend(fontsize=8)
    fig.suptitle("HARDWARE=mixed (2 fast x0.5, 5 reference, 3 slow x2, 1 very slow x4), "
                 "hash trainer, 20 blocks, 95% intervals")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    table = rows()
    if not table:
        raise SystemExit(f"no runs in {STUDY / 'runs'}: run python -m simulation.sweep --study studies/fairness.toml")
    with open(STUDY / "by_factor.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    print(f"{'ticks':>5} {'factor':>6} {'runs':>4} {'compute':>7} {'blocks [95% CI]':>24} "
          f"{'rewards [95% CI]':>24}")
    for r in table:
        print(f"{r['STAGE_TICKS']:>5} {r['speed_factor']:>6} {r['runs']:>4} "
              f"{r['compute_share']:>7} {r['blocks_share_mean']:>7} "
              f"[{r['blocks_share_ci95_low']}, {r['blocks_share_ci95_high']}] "
              f"{r['reward_share_mean']:>7} [{r['reward_share_ci95_low']}, "
              f"{r['reward_share_ci95_high']}]")
    figure(table, STUDY.parent / "fairness.png")
    print(f"wrote {STUDY / 'by_factor.csv'} and {STUDY.parent / 'fairness.png'}")


if __name__ == "__main__":
    main()
