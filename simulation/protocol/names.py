"""How the logs, the reports and the results name the parties of a run."""

from __future__ import annotations

EMPLOYER_PARTY = -1  # the employer's light client's party index
EMPLOYER_NAME = "employer"
USERS_NAME = "users"  # the users party (its process, its report, its event log records)


def employee_name(index: int) -> str:
    """Employee ``index`` (its place in the genesis block's list): E0, E1, ..."""
    return f"E{index}"


def party_name(index: int) -> str:
    """A party of the protocol by its index: an employee's name, or the employer's."""
    return EMPLOYER_NAME if index == EMPLOYER_PARTY else employee_name(index)


def user_name(index: int) -> str:
    """User account ``index`` (its place in the genesis block's users): U0, U1, ..."""
    return f"U{index}"
