"""The ``network`` figure of a study file (studies/network.toml): how blocks spread.

For each series (one sweep: its employees and what it varies, ``latency`` or
``block_size``) the stale-block rate and the propagation delay (ticks until half and 90%
of the honest employees held a block) against the mean link latency or the mean encoded
block size, with the sweeps' 95% Student-t intervals. A third panel row sets the stale
rate against the ratio of the median propagation delay to the mean block interval, with
the curve 1 - exp(-ratio) that a Poisson block process predicts when a block is stale
whenever another is found while it spreads (the reasoning of Decker and Wattenhofer,
"Information propagation in the Bitcoin network", IEEE P2P 2013). Settings: ``output``
(a PNG path), ``title``, and ``series``, a list of
``{ sweep = "FOLDER", employees = N, x = "latency" | "block_size" }``. It also prints
every point as a table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from simulation.experiments.figures_io import ROOT, number_or_none, read_summary

X_KINDS = {"latency": "mean link latency (ticks of 100 ms)",
           "block_size": "mean encoded block size (bytes), 8,000 B/tick uplinks"}
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def mean_latency(text: str) -> float:
    """ "uniform:1:7" -> 4.0 (the mean of the whole ticks 1..7)."""
    kind, *values = text.split(":")
    numbers = [float(v) for v in values]
    if kind == "uniform":
        return (numbers[0] + numbers[1]) / 2
    if kind == "constant":
        return numbers[0]
    raise ValueError(f"no mean latency for {text!r}")


def points(series: dict[str, Any]) -> list[tuple[float, dict[str, str]]]:
    """(x, summary row) of one sweep, sorted by x."""
    rows = read_summary(series["sweep"])
    if series["x"] == "latency":
        out = [(mean_latency(r["LATENCY"]), r) for r in rows]
    else:
        out = [(number_or_none(r["block_bytes_mean_mean"]) or 0.0, r) for r in rows]
    return sorted(out, key=lambda p: p[0])


def block_interval(row: dict[str, str]) -> float | None:
    """Mean ticks per block of the run (ticks over the blocks after genesis)."""
    ticks = number_or_none(row["ticks_mean"])
    length = number_or_none(row["chain_length_mean"])
    if ticks is None or not length or length <= 1:
        return None
    return (ticks + 1) / (length - 1)


def problems(settings: dict[str, Any], sweep_problems: Any) -> list[str]:
    out = []
    series = settings.get("series")
    if not isinstance(series, list) or not series:
        return ["needs series = [{ sweep, employees, x }, ...]"]
    for number, item in enumerate(series, 1):
        if not isinstance(item, dict):
            out.append(f"series {number} must be a table")
            continue
        out += sweep_problems(item.get("sweep"), f"series {number}")
        if item.get("x") not in X_KINDS:
            out.append(f"series {number}: x must be one of {', '.join(X_KINDS)}")
        if not isinstance(item.get("employees"), int):
            out.append(f"series {number}: needs employees = N")
    return out


def _errorbar(axis: Any, xs: list[float], rows: list[dict[str, str]], measure: str,
              **style: Any) -> None:
    ys = [number_or_none(r[f"{measure}_mean"]) for r in rows]
    lows = [number_or_none(r[f"{measure}_ci95_low"]) for r in rows]
    highs = [number_or_none(r[f"{measure}_ci95_high"]) for r in rows]
    keep = [i for i, y in enumerate(ys) if y is not None]
    if not keep:
        return
    x = [xs[i] for i in keep]
    y = [ys[i] or 0.0 for i in keep]
    below = [y[k] - (low if (low := lows[i]) is not None else y[k]) for k, i in enumerate(keep)]
    above = [(high if (high := highs[i]) is not None else y[k]) - y[k]
             for k, i in enumerate(keep)]
    axis.errorbar(x, y, yerr=[below, above], capsize=3, marker="o", **style)


def _cell(row: dict[str, str], measure: str, digits: int = 1) -> str:
    value = number_or_none(row.get(f"{measure}_mean"))
    return "-" if value is None else f"{value:.{digits}f}"


def table(settings: dict[str, Any]) -> list[str]:
    lines = ["study          n  x            runs finished  ticks  p50   p90   stale  "
             "final50 bytes/block requests"]
    for kind in X_KINDS:
        for series in settings["series"]:
            if series["x"] != kind:
                continue
            for _, r in points(series):
                label = r["LATENCY"] if kind == "latency" else \
                    f"{r['MAX_BLOCK_TRANSACTIONS']} txs"
                lines.append(
                    f"{kind:<13} {series['employees']:>3}  {label:<12} {r['n']:>4} "
                    f"{float(r['finished_rate']):>8.2f} {_cell(r, 'ticks', 0):>6} "
                    f"{_cell(r, 'propagation_p50_ticks'):>5} "
                    f"{_cell(r, 'propagation_p90_ticks'):>5} "
                    f"{_cell(r, 'stale_rate', 3):>6} {_cell(r, 'finality_p50_ticks', 0):>7} "
                    f"{_cell(r, 'block_bytes_mean', 0):>11} {_cell(r, 'block_requests'):>8}")
    return lines


def draw(settings: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(points(series) for series in settings["series"]):
        return [f"figure network: no summary.csv yet for {settings['output']}; run the "
                "study's sweeps first"]
    sizes = sorted({series["employees"] for series in settings["series"]})
    colours = {size: COLOURS[i % len(COLOURS)] for i, size in enumerate(sizes)}
    fig, axes = plt.subplots(3, 2, figsize=(11, 12))
    for column, (kind, xlabel) in enumerate(X_KINDS.items()):
        for series in settings["series"]:
            data = points(series) if series["x"] == kind else []
            if not data:
                continue
            employees = series["employees"]
            xs = [x for x, _ in data]
            rows = [r for _, r in data]
            style = {"color": colours[employees]}
            _errorbar(axes[0][column], xs, rows, "stale_rate",
                      label=f"{employees} employees", **style)
            _errorbar(axes[1][column], xs, rows, "propagation_p50_ticks",
                      label=f"{employees} employees, 50%", **style)
            _errorbar(axes[1][column], xs, rows, "propagation_p90_ticks", linestyle="--",
                      label=f"{employees} employees, 90%", **style)
            ratios, stale = [], []
            for r in rows:
                interval = block_interval(r)
                p50 = number_or_none(r["propagation_p50_ticks_mean"])
                rate = number_or_none(r["stale_rate_mean"])
                if interval and p50 is not None and rate is not None:
                    ratios.append(p50 / interval)
                    stale.append(rate)
            axes[2][column].plot(ratios, stale, "o", color=colours[employees],
                                 label=f"{employees} employees")
        axes[0][column].set(xlabel=xlabel, ylabel="stale blocks / blocks known",
                            title=f"stale rate against {kind.replace('_', ' ')}")
        axes[1][column].set(xlabel=xlabel, ylabel="ticks",
                            title="ticks until 50% / 90% of honest employees hold a block")
        top = max([0.5, *[line.get_xdata().max() for line in axes[2][column].lines
                          if len(line.get_xdata())]])
        grid = [top * i / 50 for i in range(51)]
        axes[2][column].plot(grid, [1 - math.exp(-g) for g in grid], color="grey",
                             label="1 - exp(-ratio) (Poisson blocks)")
        axes[2][column].set(xlabel="median propagation / mean block interval",
                            ylabel="stale rate",
                            title=f"{kind.replace('_', ' ')} sweep: stale rate against "
                                  f"the delay ratio")
        for row in axes:
            row[column].grid(alpha=0.3)
            row[column].legend(fontsize=8)
    fig.suptitle(str(settings.get("title", "How blocks spread")))
    fig.tight_layout()
    target = ROOT / settings["output"]
    fig.savefig(Path(target), dpi=110)
    plt.close(fig)
    return [*table(settings), f"wrote {settings['output']}"]
