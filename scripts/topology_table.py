"""The README's tables of the peer-graph studies (studies/topology.toml), printed as
Markdown from each study's summary.csv (written by ``python -m simulation.sweep``).

    python scripts/topology_table.py
"""

from __future__ import annotations

import csv
from pathlib import Path

STUDIES = Path(__file__).resolve().parent.parent / "docs" / "studies"


def _rows(study: str) -> list[dict[str, str]]:
    with open(STUDIES / study / "summary.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _count(row: dict[str, str], measure: str) -> str:
    """k/n of a proportion (its rate times the runs)."""
    n = int(row["n"])
    rate = row.get(f"{measure}_rate") or ""
    return "-" if rate == "" else f"{round(float(rate) * n)}/{n}"


def _mean(row: dict[str, str], measure: str, digits: int = 1) -> str:
    value = row.get(f"{measure}_mean") or ""
    return "-" if value == "" else f"{float(value):.{digits}f}"


def exposure(study: str) -> None:
    """Runs in which the employer took the poisoned model (and the mean length of its
    chain), by poisoned employees and the employer's peers, per fork choice."""
    rows = _rows(study)
    peers = sorted({r["EMPLOYER_PEERS"] for r in rows}, key=lambda p: int(p) or 10**9)
    names = ["all" if p == "0" else p for p in peers]
    print(f"\n{study}: employer took the poisoned model (runs), mean employer chain length")
    print("| poisoned | fork choice | " + " | ".join(f"{n} peer(s)" for n in names) + " |")
    print("| --- | --- |" + " --- |" * len(peers))
    order = sorted({r["ADVERSARIES"] for r in rows}, key=lambda a: int(a.split(":")[1]))
    for adversaries in order:
        for choice in ("longest", "declarers"):
            cells = []
            for p in peers:
                row = next((r for r in rows if r["ADVERSARIES"] == adversaries
                            and r["EMPLOYER_PEERS"] == p
                            and r["EMPLOYER_FORK_CHOICE"] == choice), None)
                cells.append("-" if row is None else
                             f"{_count(row, 'employer_poisoned')}, "
                             f"{_mean(row, 'employer_chain_length')}")
            print(f"| {adversaries.split(':')[1]} | {choice} | " + " | ".join(cells) + " |")


def baseline(study: str) -> None:
    """The full mesh on the exposure studies' points."""
    rows = _rows(study)
    print(f"\n{study}: employer took the poisoned model (runs), mean employer chain length")
    print("| poisoned | longest | declarers |")
    print("| --- | --- | --- |")
    for adversaries in sorted({r["ADVERSARIES"] for r in rows},
                              key=lambda a: int(a.split(":")[1])):
        cells = [next((f"{_count(r, 'employer_poisoned')}, "
                       f"{_mean(r, 'employer_chain_length')}" for r in rows
                       if r["ADVERSARIES"] == adversaries
                       and r["EMPLOYER_FORK_CHOICE"] == choice), "-")
                 for choice in ("longest", "declarers")]
        print(f"| {adversaries.split(':')[1]} | " + " | ".join(cells) + " |")


def propagation(study: str) -> None:
    rows = _rows(study)
    print(f"\n{study}: means over seeds")
    print("| TOPOLOGY | STAGE_TICKS | runs | ticks | p50 / p90 ticks | p50 / p90 hops | "
          "stale rate | bytes uploaded per employee | duplicates |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    order = ["full", "random:4", "random:8", "random:16", "bitcoin"]
    for topology in order:
        for stage in ("0", "5"):
            row = next((r for r in rows if r["TOPOLOGY"] == topology
                        and r["STAGE_TICKS"] == stage), None)
            if row is None:
                continue
            print(f"| {topology} | {stage} | {row['n']} | {_mean(row, 'ticks', 0)} | "
                  f"{_mean(row, 'propagation_p50_ticks')} / "
                  f"{_mean(row, 'propagation_p90_ticks')} | {_mean(row, 'hops_p50')} / "
                  f"{_mean(row, 'hops_p90')} | {_mean(row, 'stale_rate', 3)} | "
                  f"{float(row['uploaded_bytes_per_employee_mean']) / 1e6:.2f} MB | "
                  f"{_mean(row, 'duplicates', 0)} |")


if __name__ == "__main__":
    for name in ("employer_peers_11", "eclipse_11", "employer_peers_51", "eclipse_51"):
        if (STUDIES / name / "summary.csv").exists():
            exposure(name)
    for name in ("employer_full_11", "employer_full_51"):
        if (STUDIES / name / "summary.csv").exists():
            baseline(name)
    for name in ("topology_51", "topology_201"):
        if (STUDIES / name / "summary.csv").exists():
            propagation(name)
