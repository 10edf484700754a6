"""The poisoning threshold across the studies of scripts/poisoning_studies.sh, in one figure.

Reads each study's summary.csv (written by ``python -m simulation.sweep``) and plots, against
the poisoned share of the employees, the rate at which the employer received the poisoned
model and the rate at which the honest employees reached the target, with the sweeps' 95%
Wilson intervals. Writes docs/studies/threshold.png and prints the points as a table;
with --attack the same for the studies of scripts/attack_studies.sh (the hardened
protocol against the plain and the grinding poisoner, and the grinder against the
protocol before the hardening rules), as docs/studies/attack_threshold.png.

    python scripts/threshold_figure.py [--attack]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDIES = ROOT / "docs" / "studies"
# study folder -> (employees, label); EMPLOYER_CONFIDENCE lines are split out of the first.
CURVES = {
    "employees_5": (5, "5 employees"),
    "poisoning_hash": (11, "11 employees"),
    "employees_21": (21, "21 employees"),
    "poisoning_keras": (11, "11 employees, Keras"),
}
ATTACK_CURVES = {
    "poisoning_hash": (11, "poisoned, before the rules (OPEN_RULES=all)"),
    "grinder_open": (11, "poisoned-grinder, before the rules (OPEN_RULES=all)"),
    "grinder_keys_only": (11, "poisoned-grinder, employee keys only (draw, kernel, "
                              "window open)"),
    "poisoning_hardened": (11, "poisoned, hardened"),
    "grinder_hardened": (11, "poisoned-grinder, hardened"),
}


def _float(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def load(folder: str) -> list[dict[str, str]]:
    path = STUDIES / folder / "summary.csv"
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def curves(table: dict[str, tuple[int, str]], only_default_confidence: bool = False
           ) -> list[tuple[str, list[tuple[float, dict[str, str]]]]]:
    out = []
    for folder, (employees, label) in table.items():
        rows = load(folder)
        groups: dict[str, list[dict[str, str]]] = {}
        for row in rows:
            confidence = row.get("EMPLOYER_CONFIDENCE") or "3"
            if only_default_confidence and confidence != "3":
                continue
            groups.setdefault(confidence, []).append(row)
        for confidence, group in sorted(groups.items(), key=lambda kv: int(kv[0])):
            name = label if len(groups) == 1 else f"{label}, EMPLOYER_CONFIDENCE {confidence}"
            points = [(int(r["ADVERSARIES"].split(":")[1]) / employees, r) for r in group]
            out.append((name, sorted(points, key=lambda p: p[0])))
    return out


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attack = "--attack" in sys.argv[1:]
    found = curves(ATTACK_CURVES, True) if attack else curves(CURVES)
    if not found:
        print("no summary.csv under docs/studies: run scripts/poisoning_studies.sh "
              "(and, for --attack, scripts/attack_studies.sh) first")
        return 1
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharex=True)
    panels = (("employer_poisoned", "employer received the poisoned model"),
              ("finished", "honest employees reached the target"))
    for axis, (measure, title) in zip(axes, panels, strict=True):
        for name, points in found:
            xs, ys, low, high = [], [], [], []
            for share, row in points:
                rate = _float(row[f"{measure}_rate"])
                if rate is None:
                    continue
                xs.append(share)
                ys.append(rate)
                low.append(rate - (_float(row[f"{measure}_ci95_low"]) or rate))
                high.append((_float(row[f"{measure}_ci95_high"]) or rate) - rate)
            axis.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label=name)
        axis.axvline(0.5, color="grey", linestyle=":", linewidth=1)
        axis.set_title(title)
        axis.set_xlabel("poisoned share of the employees")
        axis.set_ylabel("rate over seeds (95% Wilson interval)")
        axis.set_ylim(-0.05, 1.05)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    target = STUDIES / ("attack_threshold.png" if attack else "threshold.png")
    fig.savefig(target, dpi=110)
    print(f"wrote {target.relative_to(ROOT)}")
    for name, points in found:
        print(name)
        for share, row in points:
            print(f"  share {share:.2f} n {row['n']:>3} failed {row['n_self_check_failed']} "
                  f"employer poisoned {row['employer_poisoned_rate']} "
                  f"[{row['employer_poisoned_ci95_low']}, {row['employer_poisoned_ci95_high']}]"
                  f" finished {row['finished_rate']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
