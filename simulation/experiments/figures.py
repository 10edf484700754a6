"""The figures a study file declares (``[[figures]]`` in studies/*.toml), drawn from its
sweeps' summary.csv files.

Each kind has a checker (what settings it needs; run before any sweep starts) and a
drawer that writes its picture and returns the lines it prints. The settings name the
study's sweeps by their ``out`` folders, so no folder table is kept in code.

* ``threshold``: against the adversaries' share of the employees, the rate at which the
  employer received the poisoned model and the rate at which the honest employees
  reached the target, one curve per sweep (split by EMPLOYER_CONFIDENCE where a sweep
  varies it), with the sweeps' 95% Wilson intervals. Settings: ``output`` (a PNG path)
  and ``curves``, a list of ``{ sweep = "FOLDER", label = "TEXT" }`` with an optional
  ``employer_confidence = N`` to keep that value only.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def number_or_none(text: str | None) -> float | None:
    """A CSV cell as a number; None when blank."""
    return float(text) if text else None


def read_summary(folder: str) -> list[dict[str, str]]:
    path = ROOT / folder / "summary.csv"
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _needs_output(settings: dict[str, Any]) -> list[str]:
    output = settings.get("output")
    if not isinstance(output, str) or not output.endswith(".png"):
        return ["needs output = \"PATH.png\""]
    return []


def _curve_problems(settings: dict[str, Any], folders: set[Path]) -> list[str]:
    problems = _needs_output(settings)
    curves = settings.get("curves")
    if not isinstance(curves, list) or not curves:
        return [*problems, "needs curves = [{ sweep = \"FOLDER\", label = \"TEXT\" }, ...]"]
    for number, curve in enumerate(curves, 1):
        if not isinstance(curve, dict) or not isinstance(curve.get("sweep"), str):
            problems.append(f"curve {number} needs sweep = \"FOLDER\"")
            continue
        folder = (ROOT / curve["sweep"]).resolve()
        if folder not in folders and not (folder / "summary.csv").exists():
            problems.append(f"curve {number}: {curve['sweep']} is neither a sweep of this "
                            "study nor a folder with a summary.csv")
        extra = set(curve) - {"sweep", "label", "employer_confidence"}
        if extra:
            problems.append(f"curve {number}: unknown keys {', '.join(sorted(extra))}")
    return problems


def adversary_share(row: dict[str, str], fixed: dict[str, str]) -> float:
    """The adversaries' share of the employees at a summary row: its own column where the
    sweep wrote one, otherwise the ADVERSARIES counts over EMPLOYEES_NUM (the row's, the
    sweep's fixed value, or the default)."""
    if row.get("adversary_share"):
        return float(row["adversary_share"])
    from simulation import config

    text = row.get("ADVERSARIES") or fixed.get("ADVERSARIES", "")
    count = sum(int(part.rpartition(":")[2]) for part in text.split(",") if ":" in part)
    employees = row.get("EMPLOYEES_NUM") or fixed.get("EMPLOYEES_NUM")
    total = int(employees) if employees else config.default_scenario().employees_num
    return count / total


def threshold_curves(settings: dict[str, Any], fixed_of: Callable[[str], dict[str, str]]
                     ) -> list[tuple[str, list[tuple[float, dict[str, str]]]]]:
    """(label, [(adversary share, summary row)]) per curve, sorted by share."""
    out = []
    for curve in settings["curves"]:
        label = curve.get("label", curve["sweep"])
        keep = curve.get("employer_confidence")
        groups: dict[str, list[dict[str, str]]] = {}
        for row in read_summary(curve["sweep"]):
            confidence = row.get("EMPLOYER_CONFIDENCE") or ""
            if keep is not None and confidence not in ("", str(keep)):
                continue
            groups.setdefault(confidence, []).append(row)
        for confidence, rows in sorted(groups.items(), key=lambda kv: int(kv[0] or 0)):
            name = label if len(groups) == 1 else f"{label}, EMPLOYER_CONFIDENCE {confidence}"
            fixed = fixed_of(curve["sweep"])
            points = sorted(((adversary_share(r, fixed), r) for r in rows),
                            key=lambda p: p[0])
            out.append((name, points))
    return out


def draw_threshold(settings: dict[str, Any], fixed_of: Callable[[str], dict[str, str]]
                   ) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = threshold_curves(settings, fixed_of)
    if not any(points for _, points in found):
        return [f"figure threshold: no summary.csv yet for {settings['output']}; "
                "run the study's sweeps first"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharex=True)
    panels = (("employer_poisoned", "employer received the poisoned model"),
              ("finished", "honest employees reached the target"))
    for axis, (measure, title) in zip(axes, panels, strict=True):
        for name, points in found:
            xs, ys, below, above = [], [], [], []
            for share, row in points:
                rate = number_or_none(row[f"{measure}_rate"])
                if rate is None:
                    continue
                low = number_or_none(row[f"{measure}_ci95_low"])
                high = number_or_none(row[f"{measure}_ci95_high"])
                xs.append(share)
                ys.append(rate)
                below.append(rate - (rate if low is None else low))
                above.append((rate if high is None else high) - rate)
            axis.errorbar(xs, ys, yerr=[below, above], marker="o", capsize=3, label=name)
        axis.axvline(0.5, color="grey", linestyle=":", linewidth=1)
        axis.set_title(title)
        axis.set_xlabel("poisoned share of the employees")
        axis.set_ylabel("rate over seeds (95% Wilson interval)")
        axis.set_ylim(-0.05, 1.05)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    target = ROOT / settings["output"]
    fig.savefig(target, dpi=110)
    plt.close(fig)
    lines = [f"wrote {settings['output']}"]
    for name, points in found:
        lines.append(name)
        for share, row in points:
            lines.append(
                f"  share {share:.2f} n {row['n']:>3} failed {row['n_self_check_failed']} "
                f"employer poisoned {row['employer_poisoned_rate']} "
                f"[{row['employer_poisoned_ci95_low']}, {row['employer_poisoned_ci95_high']}]"
                f" finished {row['finished_rate']}")
    return lines


# kind -> (checker, drawer)
KINDS: dict[str, tuple[Callable[[dict[str, Any], set[Path]], list[str]],
                       Callable[[dict[str, Any], Callable[[str], dict[str, str]]],
                                list[str]]]] = {
    "threshold": (_curve_problems, draw_threshold),
}


def problems(kind: str, settings: dict[str, Any], folders: set[Path]) -> list[str]:
    if kind not in KINDS:
        return [f"unknown kind (known: {', '.join(sorted(KINDS))})"]
    return KINDS[kind][0](settings, folders)


def draw(kind: str, settings: dict[str, Any], fixed_of: Callable[[str], dict[str, str]]
         ) -> list[str]:
    """Draws one figure; ``fixed_of(folder)`` gives a sweep's fixed knobs (KNOB -> text)."""
    return KINDS[kind][1](settings, fixed_of)
