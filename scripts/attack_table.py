"""The README's table of the attack studies (studies/attacks.toml), from their
summary.csv and runs.csv files: per count of attackers, how often the employer took the
poisoned model (k/n [95% Wilson interval]) under each protocol and attacker, how often
the honest chain reached the target, and what the grinders' search found: headers with
the draw they wanted per 100 ticks, and the hash tries per such header.

    python scripts/attack_table.py
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDIES = ROOT / "docs" / "studies"
# column title -> study folder (EMPLOYER_CONFIDENCE 3 rows only)
COLUMNS = {
    "poisoned, before the rules": "poisoning_hash",
    "poisoned-grinder, before the rules": "grinder_open",
    "poisoned-grinder, employee keys only": "grinder_keys_only",
    "poisoned, hardened": "poisoning_hardened",
    "poisoned-grinder, hardened": "grinder_hardened",
}


def rows(folder: str, name: str) -> list[dict[str, str]]:
    path = STUDIES / folder / name
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if (r.get("EMPLOYER_CONFIDENCE") or "3") == "3"]


def count_of(row: dict[str, str]) -> int:
    return int(row["ADVERSARIES"].split(":")[1])


def rate(row: dict[str, str], measure: str) -> str:
    n = int(row["n"])
    share = float(row[f"{measure}_rate"])
    low, high = float(row[f"{measure}_ci95_low"]), float(row[f"{measure}_ci95_high"])
    return f"{round(share * n)}/{n} [{low:.2f}, {high:.2f}]"


def grinding(folder: str, count: int) -> str:
    """Headers found with the draw the grinders wanted, per 100 ticks, and the hash
    tries they spent per header found."""
    runs = [r for r in rows(folder, "runs.csv") if count_of(r) == count]
    found = sum(int(r["attack_found"] or 0) for r in runs)
    tries = sum(int(r["attack_tries"] or 0) for r in runs)
    ticks = sum(int(r["ticks"] or 0) for r in runs)
    if not found:
        return "0"
    return f"{100 * found / ticks:.2g} ({tries / found:,.0f})"


def main() -> int:
    summaries = {title: {count_of(r): r for r in rows(folder, "summary.csv")}
                 for title, folder in COLUMNS.items()}
    counts = sorted(set().union(*summaries.values()))
    if not counts:
        print("no summary.csv yet: run python -m simulation.sweep --study studies/attacks.toml")
        return 1
    head = ["attackers (share)", *(f"employer poisoned: {t}" for t in COLUMNS),
            "honest chain reached 6 blocks (grinder, hardened)",
            "wanted headers per 100 ticks (tries per header): grinder before / keys only "
            "/ hardened"]
    print("| " + " | ".join(head) + " |")
    print("| " + " | ".join("---" for _ in head) + " |")
    for count in counts:
        cells = [f"{count} ({count / 11:.0%})"]
        cells += [rate(summaries[t][count], "employer_poisoned") if count in summaries[t]
                  else "-" for t in COLUMNS]
        hardened = summaries["poisoned-grinder, hardened"].get(count)
        cells.append(rate(hardened, "finished") if hardened else "-")
        cells.append(" / ".join(grinding(folder, count) if count else "-" for folder in
                                ("grinder_open", "grinder_keys_only", "grinder_hardened")))
        print("| " + " | ".join(cells) + " |")
    walls = [float(r["wall_seconds"]) for title, folder in COLUMNS.items()
             if folder != "poisoning_hash" for r in rows(folder, "runs.csv")
             if r["wall_seconds"]]
    if walls:
        print(f"\n{len(walls)} runs of the attack studies: {sum(walls):.0f} s of run wall "
              f"time in all, median {statistics.median(walls):.1f} s per run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
