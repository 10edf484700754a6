"""The network studies of studies/network.toml, in one figure and one table.

Reads the four sweeps' summary.csv (written by ``python -m simulation.sweep``) and plots,
for 11 and 51 employees, the stale-block rate and the propagation delay (ticks until half
and 90% of the honest employees held a block) against the mean link latency and against
the mean encoded block size, with the sweeps' 95% intervals (Student-t over the seeds).
A third panel row sets the stale rate against the ratio of the median propagation delay
to the mean block interval, with the curve 1 - exp(-ratio) that a Poisson block process
predicts when a block is stale whenever another is found while it spreads (the reasoning
of Decker and Wattenhofer, "Information propagation in the Bitcoin network", IEEE P2P
2013). Writes docs/studies/network.png and prints every point.

    python scripts/network_figure.py
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDIES = ROOT / "docs" / "studies"


def _float(text: str | None) -> float | None:
    return float(text) if text not in ("", None) else None


def load(folder: str) -> list[dict[str, str]]:
    """A study's summary.csv rows ([] before it ran)."""
    path = STUDIES / folder / "summary.csv"
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))

SIZES = (11, 51)


def mean_latency(text: str) -> float:
    """ "uniform:1:7" -> 4.0 (the mean of the whole ticks 1..7)."""
    kind, *values = text.split(":")
    numbers = [float(v) for v in values]
    if kind == "uniform":
        return (numbers[0] + numbers[1]) / 2
    if kind == "constant":
        return numbers[0]
    raise ValueError(f"no mean latency for {text!r}")


def points(kind: str, employees: int) -> list[tuple[float, dict[str, str]]]:
    """(x, summary row) of one sweep, sorted by x."""
    rows = load(f"{kind}_{employees}")
    if kind == "latency":
        out = [(mean_latency(r["LATENCY"]), r) for r in rows]
    else:
        out = [(_float(r["block_bytes_mean_mean"]) or 0.0, r) for r in rows]
    return sorted(out, key=lambda p: p[0])


def block_interval(row: dict[str, str]) -> float | None:
    """Mean ticks per block of the run (ticks over the blocks after genesis)."""
    ticks, length = _float(row["ticks_mean"]), _float(row["chain_length_mean"])
    if ticks is None or not length or length <= 1:
        return None
    return (ticks + 1) / (length - 1)


def _errorbar(ax, xs, row_list, measure, **style) -> None:
    ys = [_float(r[f"{measure}_mean"]) for r in row_list]
    lows = [_float(r[f"{measure}_ci95_low"]) for r in row_list]
    highs = [_float(r[f"{measure}_ci95_high"]) for r in row_list]
    keep = [i for i, y in enumerate(ys) if y is not None]
    if not keep:
        return
    x = [xs[i] for i in keep]
    y = [ys[i] for i in keep]
    below = [y[k] - (lows[i] if lows[i] is not None else y[k]) for k, i in enumerate(keep)]
    above = [(highs[i] if highs[i] is not None else y[k]) - y[k] for k, i in enumerate(keep)]
    ax.errorbar(x, y, yerr=[below, above], capsize=3, marker="o", **style)


def _cell(row: dict[str, str], measure: str, digits: int = 1) -> str:
    value = _float(row.get(f"{measure}_mean"))
    return "-" if value is None else f"{value:.{digits}f}"


def table() -> list[str]:
    lines = ["study          n  x            runs finished  ticks  p50   p90   stale  "
             "final50 bytes/block requests"]
    for kind in ("latency", "block_size"):
        for employees in SIZES:
            for _, r in points(kind, employees):
                def cell(measure: str, digits: int = 1, row: dict[str, str] = r) -> str:
                    return _cell(row, measure, digits)
                label = r["LATENCY"] if kind == "latency" else \
                    f"{r['MAX_BLOCK_TRANSACTIONS']} txs"
                lines.append(
                    f"{kind:<13} {employees:>3}  {label:<12} {r['n']:>4} "
                    f"{float(r['finished_rate']):>8.2f} {cell('ticks', 0):>6} "
                    f"{cell('propagation_p50_ticks'):>5} {cell('propagation_p90_ticks'):>5} "
                    f"{cell('stale_rate', 3):>6} {cell('finality_p50_ticks', 0):>7} "
                    f"{cell('block_bytes_mean', 0):>11} {cell('block_requests'):>8}")
    return lines


def figure(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 2, figsize=(11, 12))
    colours = {11: "tab:blue", 51: "tab:orange"}
    for column, (kind, xlabel) in enumerate((
            ("latency", "mean link latency (ticks of 100 ms)"),
            ("block_size", "mean encoded block size (bytes), 8,000 B/tick uplinks"))):
        for employees in SIZES:
            data = points(kind, employees)
            if not data:
                continue
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
                p50, rate = _float(r["propagation_p50_ticks_mean"]), _float(
                    r["stale_rate_mean"])
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
    fig.suptitle("How blocks spread: hash trainer, 10 seeds per point, 95% intervals "
                 "(python -m simulation.sweep --study studies/network.toml)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    for line in table():
        print(line)
    figure(STUDIES / "network.png")
    print(f"wrote {STUDIES / 'network.png'}")


if __name__ == "__main__":
    main()
