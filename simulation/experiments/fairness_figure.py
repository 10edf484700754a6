"""The ``fairness`` figure of a study file (studies/fairness.toml): does PoT reward useful
work in proportion to compute?

Per STAGE_TICKS and hardware speed factor, the share of the blocks and of the coinbase
that the employees of that factor earned, averaged over the seeds with Student-t 95%
intervals, against their compute share (fixed by the mix). The per-factor table comes
from every run's results in the sweep's ``runs/`` folder (kept by the sweep, not
committed) and is written to ``table`` (a CSV); without those results the committed CSV is
drawn as it is. Settings: ``sweep``, ``output`` (a PNG path), ``table`` (a CSV path) and
``title``.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from simulation.experiments.figures_io import ROOT
from simulation.experiments.statistics import t_interval

COLUMNS = ["STAGE_TICKS", "speed_factor", "runs", "compute_share", "reward_share_mean",
           "reward_share_ci95_low", "reward_share_ci95_high", "blocks_share_mean",
           "blocks_share_ci95_low", "blocks_share_ci95_high"]


def collect(folder: Path) -> dict[tuple[int, str], dict[str, list[float]]]:
    """(STAGE_TICKS, factor) -> {"reward_share": [...], "blocks_share": [...],
    "compute_share": [...]} over the runs that passed their self-check."""
    out: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted((folder / "runs").glob("*.json")):
        if path.name.endswith(".row.json"):
            continue
        results = json.loads(path.read_text(encoding="utf-8"))
        if not results.get("self_check", {}).get("passed"):
            continue
        ticks = int(results["scenario"]["STAGE_TICKS"])
        for factor, group in results["fairness"]["by_speed_factor"].items():
            for key in ("reward_share", "blocks_share", "compute_share"):
                if group[key] is not None:
                    out[(ticks, factor)][key].append(group[key])
    return out


def table_from_runs(folder: Path) -> list[dict[str, Any]]:
    table = []
    for (ticks, factor), shares in sorted(collect(folder).items(),
                                          key=lambda kv: (kv[0][0], float(kv[0][1]))):
        row: dict[str, Any] = {"STAGE_TICKS": ticks, "speed_factor": factor,
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


def problems(settings: dict[str, Any], sweep_problems: Any) -> list[str]:
    out = sweep_problems(settings.get("sweep"), "sweep")
    table = settings.get("table")
    if not isinstance(table, str) or not table.endswith(".csv"):
        out.append("needs table = \"PATH.csv\"")
    return out


def _read_table(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def draw(settings: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = []
    table_path = ROOT / settings["table"]
    table = table_from_runs(ROOT / settings["sweep"])
    if table:
        with open(table_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(table)
        lines.append(f"wrote {settings['table']} from {settings['sweep']}/runs")
    else:
        table = _read_table(table_path)
        if not table:
            return [f"figure fairness: no runs in {settings['sweep']}/runs and no "
                    f"{settings['table']}; run the study's sweep first"]
        lines.append(f"read {settings['table']} (no run results in {settings['sweep']}/runs)")
    lines.append(f"{'ticks':>5} {'factor':>6} {'runs':>4} {'compute':>7} "
                 f"{'blocks [95% CI]':>24} {'rewards [95% CI]':>24}")
    for r in table:
        lines.append(f"{r['STAGE_TICKS']:>5} {r['speed_factor']:>6} {r['runs']:>4} "
                     f"{r['compute_share']:>7} {r['blocks_share_mean']:>7} "
                     f"[{r['blocks_share_ci95_low']}, {r['blocks_share_ci95_high']}] "
                     f"{r['reward_share_mean']:>7} [{r['reward_share_ci95_low']}, "
                     f"{r['reward_share_ci95_high']}]")
    factors = sorted({str(r["speed_factor"]) for r in table}, key=float)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for axis, key, title in ((axes[0], "blocks_share", "share of the blocks trained"),
                             (axes[1], "reward_share", "share of the coinbase earned")):
        for i, factor in enumerate(factors):
            points = [r for r in table if str(r["speed_factor"]) == factor]
            xs = [int(r["STAGE_TICKS"]) for r in points]
            ys = [float(r[f"{key}_mean"]) for r in points]
            low = [y - float(r[f"{key}_ci95_low"] or y) for y, r in zip(ys, points, strict=True)]
            high = [float(r[f"{key}_ci95_high"] or y) - y
                    for y, r in zip(ys, points, strict=True)]
            colour = f"C{i}"
            axis.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, color=colour,
                          label=f"factor {factor} ({points[0]['runs']} runs per point)")
            axis.axhline(float(points[0]["compute_share"]), color=colour, linestyle=":",
                         alpha=0.8)
        axis.set(xlabel="STAGE_TICKS (ticks the reference hardware needs per stage)",
                 title=f"{title} (dotted: compute share)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("share of the employees' total")
    axes[1].legend(fontsize=8)
    fig.suptitle(str(settings.get("title", "")))
    fig.tight_layout()
    fig.savefig(Path(ROOT / settings["output"]), dpi=110)
    plt.close(fig)
    lines.append(f"wrote {settings['output']}")
    return lines
