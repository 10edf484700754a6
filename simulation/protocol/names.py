"""How the logs, the reports and the results name the parties of a run."""

from __future__ import annotations


def employee_name(index: int) -> str:
    """Employee ``index`` (its place in the genesis block's list): E0, E1, ..."""
    return f"E{index}"
