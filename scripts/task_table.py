"""The README's table of the useful-work study (studies/useful_work.toml), printed as
Markdown from docs/studies/useful_work/summary.csv (written by ``python -m simulation.sweep``).

    python scripts/task_table.py
"""

from __future__ import annotations

import csv
from pathlib import Path

SUMMARY = Path(__file__).resolve().parent.parent / "docs" / "studies" / "useful_work" / \
    "summary.csv"


def _value(row: dict[str, str], column: str) -> float | None:
    text = row.get(column) or ""
    return None if text == "" else float(text)


def main() -> None:
    with open(SUMMARY, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    print("| task | employees | runs | useful share, mean [95% CI] | CPU ms of training per "
          "certified sample: network | once | network / once | test accuracy |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        share = _value(row, "useful_share_mean")
        low, high = _value(row, "useful_share_ci95_low"), _value(row, "useful_share_ci95_high")
        network = _value(row, "work_per_certified_sample_mean")
        once = _value(row, "useful_work_per_certified_sample_mean")
        accuracy = _value(row, "model_accuracy_mean")
        interval = "" if low is None or high is None else f" [{100 * low:.1f}, {100 * high:.1f}]"
        print(f"| {row['TASK']} | {row['EMPLOYEES_NUM']} | {row['n']} | "
              + ("-" if share is None else f"{100 * share:.1f}%{interval}") + " | "
              + ("-" if network is None else f"{1000 * network:.2f}") + " | "
              + ("-" if once is None else f"{1000 * once:.2f}") + " | "
              + ("-" if not (network and once) else f"{network / once:.1f}") + " | "
              + ("-" if accuracy is None else f"{accuracy:.3f}") + " |")


if __name__ == "__main__":
    main()
