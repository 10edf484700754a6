"""What every figure of a study file reads: the sweeps' CSV files, by folder relative to
the repository."""

from __future__ import annotations

import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # simulation/experiments/figures_io.py


def number_or_none(text: str | None) -> float | None:
    """A CSV cell as a number; None when blank."""
    return float(text) if text else None


def read_rows(folder: str, name: str) -> list[dict[str, str]]:
    """The rows of ``folder/name`` ([] before the sweep ran)."""
    path = ROOT / folder / name
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_summary(folder: str) -> list[dict[str, str]]:
    return read_rows(folder, "summary.csv")
