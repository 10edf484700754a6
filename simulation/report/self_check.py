"""The run checks its own results before it reports them.

A figure a researcher cannot trust is worse than none, so before the summary is printed
``self_check`` re-reads it and lists every way in which it could be lying:

- processes: a party that should have lived to the end (every honest employee, every
  adversary whose behaviour is not to die, the users, the network) died of an exception,
  was killed, was cut off or sent no report. Only the ``crash`` adversary (its process
  exits) and the ``spammer`` (the network cuts it off) may go missing, by design.
- figures: a number the summary prints is missing (null), such as the employer's count
  of poisoned blocks or, with real training, the accuracy of a model that was delivered.
- transactions: issued != included + rejected + pending, or any lost, included twice,
  or in the chain without having been issued.
- training: honest employees derived different secrets for the same stage.
- agreement: the run says it reached the target, but the honest chains do not share it.
- coins: the rewards do not add up to the coinbase minted, or the balances to the
  genesis coins plus the coinbase.

Any failure makes ``python main.py`` exit with EXIT_SELF_CHECK_FAILED (3) and the summary
says which check failed, for which party, and where the traceback is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulation.config import training_of
from simulation.protocol.ledger import coinbase
from simulation.protocol.names import employee_name

# Adversaries that leave the run on purpose, and the exit codes their processes may have.
LEAVE_BY_DESIGN = {"crash": (0, 3), "spammer": (0,)}
MODEL_SOURCES = ("honest", "poisoned", "genesis", "unknown")


@dataclass(frozen=True)
class Failure:
    check: str  # processes, figures, transactions, training, agreement, coins
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "detail": self.detail}


def self_check(summary: dict[str, Any], log_file: str | None = None) -> list[Failure]:
    """Every inconsistency found in ``summary`` (``reporting.summarize``'s output, with
    ``exit_codes`` of the processes when they ran as processes); empty when none."""
    failures: list[Failure] = []
    for name, check in _CHECKS:
        try:
            failures += [Failure(name, d) for d in check(summary, log_file)]
        except Exception as exc:  # noqa: BLE001 - a malformed summary is a failure too
            failures.append(Failure(name, f"could not be checked: {type(exc).__name__}: "
                                          f"{exc}"))
    return failures


def as_report(failures: list[Failure]) -> dict[str, Any]:
    return {"passed": not failures, "failures": [f.to_dict() for f in failures]}


# --- the checks ---------------------------------------------------------------------------


def _processes(s: dict[str, Any], log_file: str | None) -> list[str]:
    out: list[str] = []
    behaviours = s["adversaries"]
    exit_codes: dict[str, Any] = s.get("exit_codes") or {}
    reporting = set(s["employees_reporting"])
    where = f"; traceback in {log_file}" if log_file else ""
    if s.get("error"):
        out.append(f"network: {s['error']}{where}")
    names = [employee_name(i) for i in range(s["scenario"]["EMPLOYEES_NUM"])] + ["users", "network"]
    for name in names:
        behaviour = behaviours.get(name, "honest")
        allowed_codes = LEAVE_BY_DESIGN.get(behaviour, (0,))
        problems: list[str] = []
        if name in (s.get("failures") or {}):
            problems.append(f"died of an exception ({s['failures'][name]}){where}")
        code = exit_codes.get(name)
        if name in exit_codes and code not in allowed_codes:
            problems.append(f"was killed by signal {-code}" if isinstance(code, int)
                            and code < 0 else f"exited with code {code}")
        if behaviour not in LEAVE_BY_DESIGN:
            if name in s["cut_off"]:
                problems.append(f"was cut off ({s['cut_off'][name]})")
            if name.startswith("E") and name not in reporting:
                problems.append("sent no report")
            if name == "users" and not s["users_reported"]:
                problems.append("sent no report (transactions cannot be accounted for)")
        if problems:
            role = "" if name in ("users", "network") else f" ({behaviour})"
            out.append(f"{name}{role} " + "; ".join(problems))
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _figures(s: dict[str, Any], log_file: str | None) -> list[str]:
    out: list[str] = []

    def need(label: str, value: Any, ok: Callable[[Any], bool] = _is_int) -> None:
        if not ok(value):
            out.append(f"{label} is {value!r}")

    keras = s["scenario"]["TRAINER"] == "keras"
    chain = s["chain"]
    need("chain.length", chain["length"], lambda v: _is_int(v) and v >= 1)
    need("chain.tip_hash", chain["tip_hash"], lambda v: isinstance(v, str))
    for key in ("ticks", "forks", "blocks_known"):
        need(key, s[key])
    need("wall_seconds", s["wall_seconds"], _is_number)
    need("agreement.common_prefix_length", s["agreement"]["common_prefix_length"])
    need("honest.poisoned_blocks", s["honest"]["poisoned_blocks"])
    for key in ("issued", "included", "rejected", "pending"):
        need(f"transactions.{key}", s["transactions"][key])
    for kind, count in {**s["messages"]["sent"], **s["messages"]["accepted"]}.items():
        need(f"messages count of {kind}", count)
    for name, coins in s["rewards"].items():
        need(f"rewards of {name}", coins)
    if s["training"]["stages_compared"]:
        need("training.secrets_identical", s["training"]["secrets_identical"],
             lambda v: isinstance(v, bool))
    if keras and _is_int(chain["length"]) and chain["length"] >= 2:
        need("model.test_accuracy", s["model"]["test_accuracy"], _is_number)
    employer = s["employer"]
    if not isinstance(employer, dict):
        out.append(f"employer is {employer!r}")
    else:
        need("employer.chain_length", employer["chain_length"])
        need("employer.poisoned_blocks", employer["poisoned_blocks"])
        need("employer.model_source", employer["model_source"], lambda v: v in MODEL_SOURCES)
        if keras and employer["model_source"] in ("honest", "poisoned"):
            need("employer.model_test_accuracy (a model was delivered)",
                 employer["model_test_accuracy"], _is_number)
    poisoned = [n for n, b in s["adversaries"].items() if training_of(b) == "poisoned"
                and n in s["employees_reporting"]]
    branch = s["poisoned_branch"]
    if poisoned and not isinstance(branch, dict):
        out.append(f"poisoned_branch is {branch!r} although {poisoned[0]} reported")
    elif isinstance(branch, dict):
        need("poisoned_branch.chain_length", branch["chain_length"])
        need("poisoned_branch.poisoned_blocks", branch["poisoned_blocks"])
        if keras and _is_int(branch["chain_length"]) and branch["chain_length"] >= 2:
            need("poisoned_branch.model_test_accuracy", branch["model_test_accuracy"],
                 _is_number)
    return out


def _transactions(s: dict[str, Any], log_file: str | None) -> list[str]:
    t = s["transactions"]
    out: list[str] = []
    if t["issued"] != t["included"] + t["rejected"] + t["pending"]:
        out.append(f"issued {t['issued']} != included {t['included']} + rejected "
                   f"{t['rejected']} + pending {t['pending']}")
    for key, meaning in (("lost", "lost (in no chain, mempool or flight)"),
                         ("included_more_than_once", "included more than once"),
                         ("in_chain_not_issued", "in the chain but never issued")):
        if t.get(key):
            out.append(f"{t[key]} transaction(s) {meaning}")
    in_blocks = sum(b["transactions"] for b in s["chain"]["blocks"])
    if not out and in_blocks != t["included"]:
        out.append(f"the chain's blocks hold {in_blocks} transactions, but {t['included']} "
                   f"are counted as included")
    return out


def _training(s: dict[str, Any], log_file: str | None) -> list[str]:
    training = s["training"]
    if training["secrets_identical"] is False:
        return ["honest employees derived different secrets or model hashes for the same "
                "stage (training is not deterministic across them)"]
    honest = [n for n in s["employees_reporting"] if n not in s["adversaries"]]
    if honest and training["secrets_identical"] is not True:
        without = training.get("employees_without_secrets") or []
        why = f"{', '.join(without)} reported no secret" if without else \
            "no stage was compared"
        return [f"the honest employees' training could not be compared: {why}"]
    return []


def _agreement(s: dict[str, Any], log_file: str | None) -> list[str]:
    if not s["finished"]:
        return []
    target = s["scenario"]["TARGET_BLOCKCHAIN_LENGTH"]
    agreement = s["agreement"]
    out = []
    if agreement["common_prefix_length"] < target:
        out.append(f"the run reports the target reached, but the honest chains share only "
                   f"{agreement['common_prefix_length']} of {target} blocks")
    short = {n: n_blocks for n, n_blocks in agreement["lengths"].items() if n_blocks < target}
    if short:
        out.append(f"the run reports the target reached, but these chains are shorter: "
                   f"{short}")
    return out


def _coins(s: dict[str, Any], log_file: str | None) -> list[str]:
    """Recomputed from the printed figures, not from the summary's own totals."""
    minted = sum(coinbase(b["height"]) for b in s["chain"]["blocks"][1:])
    rewards = sum(s["rewards"].values())
    out = []
    if rewards != minted:
        out.append(f"rewards add up to {rewards}, but the chain's coinbase is {minted}")
    if s["balances"]:
        balances = sum(s["balances"].values())
        genesis = s["coins"]["genesis"]
        if balances != genesis + minted:
            out.append(f"balances add up to {balances}, not genesis {genesis} + coinbase "
                       f"{minted}")
    return out


_CHECKS: tuple[tuple[str, Callable[[dict[str, Any], str | None], list[str]]], ...] = (
    ("processes", _processes),
    ("figures", _figures),
    ("transactions", _transactions),
    ("training", _training),
    ("agreement", _agreement),
    ("coins", _coins),
)
