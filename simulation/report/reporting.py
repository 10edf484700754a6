"""The run's summary, computed from what the parties reported, never assumed.

``summarize`` takes the network's result (every live party's final report) and returns
the JSON-ready results; ``render`` turns them into the console summary.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import Counter, defaultdict
from typing import Any

from simulation.config import EXACT, Role, Scenario, computation_of, knob_text, training_of
from simulation.protocol.ledger import Genesis, coinbase
from simulation.protocol.messages import KINDS
from simulation.protocol.names import employee_name
from simulation.protocol.records import ChainEntry, EmployeeReport, RunResult
from simulation.report.fairness import fairness
from simulation.report.propagation import network_metrics, peer_graph_metrics
from simulation.report.sections import (
    AgreementSection,
    BlockRow,
    ChainSection,
    CoinsSection,
    CoinTotals,
    EmployerSection,
    FairnessSection,
    MessagesSection,
    NetworkSection,
    TrainingSection,
    or_none,
)
from simulation.report.work import useful_work


def _hex(value: bytes | None) -> str | None:
    return value.hex() if isinstance(value, bytes) else None


def _common_prefix(chains: list[list[bytes]]) -> int:
    if not chains:
        return 0
    length = 0
    for column in zip(*chains, strict=False):
        if len(set(column)) != 1:
            break
        length += 1
    return length


def summarize(
    scenario: Scenario,
    genesis: Genesis,
    result: RunResult,
    roles: dict[int, Role],
    wall_seconds: float,
    samples_per_stage: int | None = None,
) -> dict[str, Any]:
    """``roles``: employee index -> behaviour for the adversaries; the rest are honest.
    ``samples_per_stage``: the task's, for the useful-work figures (``report.work``)."""
    reports = result.reports
    # The employees' reports as records (the network checked their form on arrival).
    employees = {name: EmployeeReport.from_wire(r) for name, r in reports.items()
                 if name.startswith("E") and r}
    employer_report = EmployeeReport.from_wire(result.employer) \
        if result.employer is not None else None
    honest = [i for i in range(scenario.employees_num) if i not in roles]
    # An employee still offline (CHURN) when the run ended is left out like a dead one.
    offline = set(result.offline_at_end)
    honest_names = [name for name in map(employee_name, honest)
                    if name in employees and name not in offline]
    users_reported = bool(reports.get("users"))
    users_report = reports.get("users") or {"issued": []}
    names = {pk: employee_name(i) for i, pk in enumerate(genesis.employees)}
    names.update({pk: f"U{i}" for i, pk in enumerate(genesis.users)})

    # The reference chain: the lowest-index live honest employee's canonical chain, of
    # one on the reference hardware if there is one (HARDWARE: an "xla" employee
    # computes other secrets and may follow a chain of its own).
    computations = {employee_name(i): computation_of(scenario, i)
                    for i in range(scenario.employees_num)}
    exact_honest = [n for n in honest_names if computations[n] == EXACT]
    reference_name = next(iter(exact_honest or honest_names), None)
    reference = employees[reference_name] if reference_name else None
    chain_entries = list(reference.chain) if reference else []
    chains = [[b.hash for b in employees[n].chain] for n in honest_names]
    tips = {n: employees[n].chain[-1].hash for n in honest_names}
    prefix = _common_prefix(chains)

    chain = ChainSection(
        len(chain_entries), _hex(chain_entries[-1].hash) if chain_entries else None,
        reference_name,
        tuple(BlockRow(b.height, b.hash.hex(),
                       _party(b.trainer) if b.trainer is not None else None,
                       _party(b.roy) if b.roy is not None else None,
                       b.tick, len(b.transactions), b.declarations) for b in chain_entries))
    agreement = AgreementSection(len(set(tips.values())) == 1 and bool(tips), prefix,
                                 {n: h.hex() for n, h in tips.items()},
                                 {n: len(employees[n].chain) for n in honest_names})

    # Messages: broadcasts by kind from every party (the users' transfers and replays
    # included); receipts accepted and rejected as the honest employees saw them.
    sent: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    rejected: dict[str, Counter[str]] = defaultdict(Counter)
    for report in employees.values():
        sent.update(report.sent)
    for name in honest_names:
        accepted.update(employees[name].accepted)
        for kind, reasons in employees[name].rejected.items():
            rejected[kind].update(reasons)
    adversarial_sent = {k: n for k, n in sorted(sent.items()) if k not in KINDS}
    sent["TX"] += len(users_report["issued"]) + users_report.get("replays", 0)
    messages = MessagesSection(
        {k: sent.get(k, 0) for k in KINDS}, {k: accepted.get(k, 0) for k in KINDS},
        {k: dict(sorted(v.items())) for k, v in sorted(rejected.items())},
        adversarial_sent, users_report.get("replays", 0))

    # Forks: branch points in the union of the honest employees' block trees.
    children: dict[bytes, set[bytes]] = defaultdict(set)
    for name in honest_names:
        for entry in employees[name].tree:
            children[entry.parent].add(entry.hash)
    forks = sum(len(c) - 1 for c in children.values() if len(c) > 1)
    known_blocks = len({h for c in children.values() for h in c})

    transactions = _transactions(users_report["issued"], chain_entries, employees,
                                 honest_names, set(result.in_flight))
    rewards, balances = _coins(reference, genesis, names)
    training = _training(employees, honest_names, computations,
                         simulated=scenario.trainer == "hash")

    # The honest training is the reference hardware's (HARDWARE): an "xla" employee's
    # secrets differ from it without any poisoning.
    honest_secrets = _secrets(employees, exact_honest or honest_names)
    poisoned = [employee_name(i) for i, b in roles.items() if training_of(b) == "poisoned"]
    poisoned_names = [name for name in poisoned if name in employees]
    poisoned_secrets = _secrets(employees, poisoned_names)
    accuracies = {"honest": _accuracies(employees, honest_names),
                  "poisoned": _accuracies(employees, poisoned_names)}
    evaluated_stage = len(chain_entries) - 2 if chain_entries else None
    # The honest and the poisoned model after the evaluated stage (None: not evaluated).
    accuracy, poisoned_accuracy = (None, None) if evaluated_stage is None else (
        accuracies["honest"].get(evaluated_stage), accuracies["poisoned"].get(evaluated_stage))
    employer = _employer(employer_report, honest_secrets, poisoned_secrets, accuracies)
    delivered = list(employer_report.chain) if employer_report is not None else chain_entries
    training = dataclasses.replace(training, **useful_work(
        employees, set(poisoned_names), delivered, samples_per_stage,
        real_training=scenario.trainer == "keras" and not scenario.stage_cache),
        stage_cache=scenario.stage_cache)
    # Ticks run: the network's last tick index + 1 (0 when it stopped before tick 0).
    ticks_run = max(1, (result.ticks or 0) + 1)
    poisoned_chain = list(employees[poisoned_names[0]].chain) if poisoned_names else None
    known = _known_blocks(genesis.hash, chain_entries, employees, honest_names,
                          employer_report, honest_secrets)

    minted = sum(coinbase(b.height) for b in chain_entries[1:])
    coins = CoinsSection(rewards, balances, CoinTotals(
        genesis=sum(genesis.ledger.balances.values()), minted=minted,
        balances_total=sum(balances.values()) if reference else None,
        rewards_total=sum(rewards.values())))
    fair = FairnessSection(**fairness(rewards, chain_entries, {
        employee_name(i): factor for i, factor in enumerate(scenario.speed_factors)}))
    network = NetworkSection(
        **network_metrics(chain_entries, employees, honest_names,
                          result.relayed_bytes, scenario.employer_confidence),
        tick_milliseconds=scenario.tick_milliseconds,
        copies_dropped=dict(sorted(result.dropped.items())),
        offline_at_end=list(result.offline_at_end), regions=result.regions,
        **peer_graph_metrics(result.peer_graph, result.uploaded_bytes, honest_names))
    return {
        "finished": result.finished,
        "interrupted": result.interrupted,
        "error": result.error,
        **chain.to_json(),
        **agreement.to_json(),
        **messages.to_json(),
        "forks": forks,
        "blocks_known": known_blocks,
        **fair.to_json(),
        **network.to_json(),
        "blocks": known,
        "adversaries": {employee_name(i): b for i, b in sorted(roles.items())},
        "attack": _attack(employees, roles),
        "honest": {
            "employees": len(honest),
            "poisoned_blocks": _poisoned_blocks(chain_entries, honest_secrets),
            "blocks_per_tick": round((len(chain_entries) - 1) / ticks_run, 5),
        },
        "poisoned_branch": None if poisoned_chain is None else {
            "reference_employee": poisoned_names[0],
            "chain_length": len(poisoned_chain),
            "poisoned_blocks": _poisoned_blocks(poisoned_chain, honest_secrets),
            "blocks_per_tick": round((len(poisoned_chain) - 1) / ticks_run, 5),
            "model_test_accuracy": accuracies["poisoned"].get(len(poisoned_chain) - 2),
            "accuracy_by_stage": _by_stage(accuracies["poisoned"], len(poisoned_chain) - 2),
        },
        "employer": employer.to_json()["employer"] if employer is not None else None,
        "transactions": transactions,
        **coins.to_json(),
        **training.to_json(),
        "model": {
            "trainer": scenario.trainer,
            "test_accuracy": accuracy,
            "evaluated_stage": evaluated_stage,
            # The poisoned training's model after the same stage, when it was evaluated.
            "poisoned_test_accuracy": poisoned_accuracy,
            # The honest model after every stage the reference chain certifies (block
            # height = stage + 1), as far as it was evaluated (relay.evaluation_plan).
            "accuracy_by_stage": _by_stage(accuracies["honest"], evaluated_stage),
        },
        "ticks": result.ticks,
        "wall_seconds": round(wall_seconds, 3),
        "startup_seconds": _round(result.startup_seconds),
        "protocol_seconds": _round(result.run_seconds),
        "stopped_by": result.stopped_by,
        "cut_off": result.cut_off,
        "failures": {name: text.strip().splitlines()[-1] if text.strip() else ""
                     for name, text in result.failures.items()},
        "employees_reporting": sorted(employees, key=lambda n: int(n[1:])),
        "users_reported": users_reported,
        "scenario": scenario.knobs(),
    }


OUTSIDER = "outsider"  # a key no employee holds (rule members open: a Sybil's)


def _party(index: int) -> str:
    """An employee's name from its index in a report; -1 is a key no employee holds."""
    return employee_name(index) if index >= 0 else OUTSIDER


def _attack(employees: dict[str, EmployeeReport], roles: dict[int, Role]
            ) -> dict[str, dict[str, int]]:
    """The adversaries' own counts (hash tries of their searches, what they found ...),
    added up per behaviour."""
    out: dict[str, Counter[str]] = {}
    for index, behaviour in sorted(roles.items()):
        report = employees.get(employee_name(index))
        counts = report.attack if report is not None else {}
        if counts:
            out.setdefault(behaviour, Counter()).update(counts)
    return {b: dict(sorted(c.items())) for b, c in sorted(out.items())}


def _secrets(employees: dict[str, EmployeeReport], names: list[str]) -> list[bytes]:
    """Secrets by stage from the one of ``names`` that trained the most stages (they all
    train the same data; ``training.secrets_identical`` checks that they agree)."""
    if not names:
        return []
    longest = max(names, key=lambda n: len(employees[n].secrets))
    return list(employees[longest].secrets)


def _accuracies(employees: dict[str, EmployeeReport], names: list[str]) -> dict[int, float]:
    """Test accuracy by stage, from every one of ``names`` that evaluated a stage."""
    out: dict[int, float] = {}
    for name in names:
        for stage, accuracy in employees[name].accuracies or ():
            out.setdefault(int(stage), float(accuracy))
    return out


def _by_stage(accuracies: dict[int, float], last: int | None) -> list[dict[str, Any]]:
    """[{"stage", "accuracy"}] for the evaluated stages 0..last, in stage order."""
    if last is None:
        return []
    return [{"stage": s, "accuracy": a} for s, a in sorted(accuracies.items())
            if 0 <= s <= last]


def _known_blocks(genesis_hash: bytes, chain: list[ChainEntry],
                  employees: dict[str, EmployeeReport], honest_names: list[str],
                  employer: EmployeeReport | None,
                  honest_secrets: list[bytes]) -> list[dict[str, Any]]:
    """Every block an honest employee knows (the union of their block trees), and those
    of the employer's light client, which also holds a branch the honest employees
    rejected (the poisoned one): height, parent, trainer, whether its revealed secret
    is not the honest training's (``poisoned``; None when the honest secret for its
    stage is unknown), who saw it and which chains it is on. Genesis first."""
    found: dict[bytes, dict[str, Any]] = {}
    trees = [(employees[name].tree, True) for name in honest_names]
    if employer is not None:
        trees.append((employer.tree, False))
    for tree, honest in trees:
        for entry in tree:
            if entry.hash in found:
                found[entry.hash]["seen_by_honest"] |= honest
                continue
            poisoned = None
            if 0 < entry.height <= len(honest_secrets):
                poisoned = entry.secret != honest_secrets[entry.height - 1]
            found[entry.hash] = {
                "hash": entry.hash.hex(), "parent": entry.parent.hex(), "height": entry.height,
                "trainer": employee_name(entry.trainer) if entry.trainer >= 0 else None,
                "poisoned": poisoned, "seen_by_honest": honest,
            }
    on_chain = {b.hash for b in chain}
    on_employer = {b.hash for b in employer.chain} if employer is not None else set()
    out = [{"hash": genesis_hash.hex(), "parent": None, "height": 0, "trainer": None,
            "poisoned": False, "seen_by_honest": True}]
    out += sorted(found.values(), key=lambda b: (b["height"] or 0, b["hash"]))
    for block in out:
        h = bytes.fromhex(str(block["hash"]))
        block["on_chain"] = h in on_chain
        block["on_employer_chain"] = h in on_employer
    return out


def _poisoned_blocks(chain: list[ChainEntry], honest_secrets: list[bytes]) -> int | None:
    """Blocks whose revealed secret is not the honest training's secret for their stage
    (poisoned or lazy training). None when an honest secret is missing to compare."""
    count = 0
    for block in chain[1:]:
        stage = block.height - 1
        if stage >= len(honest_secrets):
            return None
        count += block.secret != honest_secrets[stage]
    return count


def _employer(report: EmployeeReport | None, honest_secrets: list[bytes],
              poisoned_secrets: list[bytes], accuracies: dict[str, dict[int, float]]
              ) -> EmployerSection | None:
    """The employer's chain, how much of it is poisoned, and the model it receives: the
    honest or the poisoned model after the stage its tip certifies, whichever the tip's
    revealed secret matches."""
    if report is None:
        return None
    chain = list(report.chain)
    tip = chain[-1]
    stage = tip.height - 1
    source = "genesis" if stage < 0 else "unknown"
    if stage >= 0:
        secret = tip.secret
        if stage < len(honest_secrets) and secret == honest_secrets[stage]:
            source = "honest"
        elif stage < len(poisoned_secrets) and secret == poisoned_secrets[stage]:
            source = "poisoned"
    return EmployerSection(
        chain_length=len(chain),
        tip_hash=tip.hash.hex(),
        poisoned_blocks=_poisoned_blocks(chain, honest_secrets),
        model_source=source,
        model_stage=stage if stage >= 0 else None,
        model_test_accuracy=accuracies.get(source, {}).get(stage),
        rejected={k: dict(sorted(v.items())) for k, v in report.rejected.items()},
    )


def _round(value: Any) -> float | None:
    return round(value, 3) if isinstance(value, (int, float)) else None


def _transactions(issued: list[dict[str, Any]], chain: list[ChainEntry],
                  employees: dict[str, EmployeeReport], honest: list[str],
                  in_flight: set[bytes]) -> dict[str, Any]:
    """Every issued transaction lands in exactly one of included / rejected / pending
    (in an honest mempool, or still in flight when the run ended); ``lost`` counts those
    in none and must be 0."""
    in_chain: Counter[bytes] = Counter(h for b in chain for h in b.transactions)
    reasons: dict[bytes, str] = {}
    pooled: set[bytes] = set()
    for name in honest:
        for tx_hash, reason in employees[name].rejected_transactions:
            reasons.setdefault(tx_hash, reason)
        pooled.update(employees[name].mempool)
    included = rejected = pending = lost = flying = 0
    twice = 0
    by_reason: Counter[str] = Counter()
    for entry in issued:
        h = entry["hash"]
        if in_chain[h] >= 1:
            included += 1
            twice += in_chain[h] > 1
        elif h in reasons:
            rejected += 1
            by_reason[reasons[h]] += 1
        elif h in pooled:
            pending += 1
        elif h in in_flight:
            pending += 1
            flying += 1
        else:
            lost += 1
    issued_hashes = {e["hash"] for e in issued}
    unknown = sum(n for h, n in in_chain.items() if h not in issued_hashes)
    return {
        "issued": len(issued),
        "included": included,
        "rejected": rejected,
        "pending": pending,
        "pending_in_flight": flying,
        "lost": lost,
        "included_more_than_once": twice,
        "in_chain_not_issued": unknown,
        "rejected_by_reason": dict(sorted(by_reason.items())),
    }


def _coins(reference: EmployeeReport | None, genesis: Genesis,
           names: dict[bytes, str]) -> tuple[dict[str, int], dict[str, int]]:
    rewards: Counter[str] = Counter({employee_name(i): 0 for i in range(len(genesis.employees))})
    balances: dict[str, int] = {}
    if reference is None:
        return dict(rewards), balances
    for block in reference.chain:
        for account, amount in block.payouts:
            rewards[names.get(account, f"{OUTSIDER}:{account.hex()[:8]}")] += amount
    for account, amount in reference.balances:
        balances[names.get(account, f"{OUTSIDER}:{account.hex()[:8]}")] = amount
    order = sorted(balances, key=lambda n: (n[0], int(n[1:]) if n[1:].isdigit() else 0, n))
    return dict(rewards), {n: balances[n] for n in order}


def _training(employees: dict[str, EmployeeReport], honest: list[str],
              computations: dict[str, str],
              simulated: bool) -> TrainingSection:
    """Whether every honest employee derived the same secret and model hash per stage as
    the others that compute the same way (HARDWARE: "xla" employees compute otherwise),
    how often different computations disagreed, and how long training took (stage 0
    includes building the training function)."""
    stages = min((len(employees[n].secrets) for n in honest), default=0)
    # Every reporting honest employee trained stage 0 at its first tick: one with no
    # secret at all means its report lost them, and nothing could be compared.
    without = [n for n in honest if not employees[n].secrets]
    groups: dict[str, list[str]] = {}
    for name in honest:
        groups.setdefault(computations.get(name, EXACT), []).append(name)
    identical = all(
        len({employees[n].secrets[s] for n in group}) == 1
        and len({employees[n].model_hashes[s] for n in group}) == 1
        for group in groups.values() for s in range(stages)
    )
    disagreement = {}
    ordered = sorted(groups)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            first, second = employees[groups[a][0]], employees[groups[b][0]]
            differ = sum(first.secrets[s] != second.secrets[s]
                         for s in range(stages))
            disagreement[f"{a}/{b}"] = round(differ / stages, 5) if stages else None
    later_ms = [
        1000 * seconds / samples
        for n in honest
        for seconds, samples in zip((employees[n].stage_seconds or ())[1:],
                                    (employees[n].stage_samples or ())[1:], strict=False)
        if samples
    ]
    first_stage = [seconds[0] for n in honest if (seconds := employees[n].stage_seconds)]
    return TrainingSection(
        stages_compared=stages,
        secrets_identical=identical if stages else None,
        employees_without_secrets=without,
        computations={c: len(g) for c, g in sorted(groups.items())},
        # Share of the compared stages whose secrets differ between two computations;
        # with the hash trainer the "xla" difference is a noise model, not measured.
        secrets_disagree=disagreement,
        disagreement_simulated=simulated and len(groups) > 1,
        median_ms_per_sample=round(statistics.median(later_ms), 4) if later_ms else None,
        median_first_stage_seconds=round(statistics.median(first_stage), 3)
        if first_stage else None,
    )


def render(summary: dict[str, Any]) -> str:
    """The console summary."""
    lines = ["", "=== PoT run summary ==="]
    status = "reached the target" if summary["finished"] else "DID NOT CONVERGE"
    if summary.get("interrupted"):
        status = f"INTERRUPTED ({summary.get('stopped_by')}); partial results"
    lines.append(f"Run: {status} at tick {summary['ticks']} in {summary['wall_seconds']:.1f} s "
                 f"wall (start-up {summary['startup_seconds']} s)")
    if summary.get("error"):
        lines.append(f"Error: {summary['error']}")
    lines += ChainSection.from_summary(summary).lines()
    lines += AgreementSection.from_summary(summary).lines()
    lines.append(f"Forks seen: {summary['forks']} ({summary['blocks_known']} blocks known)")
    for optional in (NetworkSection, FairnessSection):
        section = optional.from_summary(summary)
        lines += section.lines() if section is not None else []
    lines += MessagesSection.from_summary(summary).lines()
    t = summary["transactions"]
    lines.append(f"Transactions: issued {t['issued']} = included {t['included']} + rejected "
                 f"{t['rejected']} + pending {t['pending']} (lost {t['lost']}, included twice "
                 f"{t['included_more_than_once']})")
    lines += CoinsSection.from_summary(summary).lines()
    lines += TrainingSection.from_summary(summary).lines()
    model = summary["model"]
    if model["test_accuracy"] is not None:
        lines.append(f"Model: test accuracy {model['test_accuracy']:.4f} after stage "
                     f"{model['evaluated_stage']}")
    else:
        lines.append(f"Model: no test accuracy ({model['trainer']} trainer)")
    if summary["adversaries"]:
        roles = ", ".join(f"{n} {b}" for n, b in summary["adversaries"].items())
        lines.append(f"Adversaries: {roles}")
        for behaviour, counts in (summary.get("attack") or {}).items():
            lines.append(f"Attack of the {behaviour}: " + ", ".join(
                f"{what} {n}" for what, n in counts.items()))
        lines.append(f"Honest chain: {summary['honest']['poisoned_blocks']} poisoned blocks, "
                     f"{summary['honest']['blocks_per_tick']} blocks per tick")
        branch = summary["poisoned_branch"]
        if branch:
            lines.append(f"Poisoned branch ({branch['reference_employee']}): "
                         f"{branch['chain_length']} blocks, {branch['blocks_per_tick']} "
                         f"blocks per tick, model accuracy "
                         f"{or_none(branch['model_test_accuracy'], model['trainer'])}")
    employer = EmployerSection.from_summary(summary)
    if employer is not None:
        lines += employer.lines(model["trainer"])
    if summary["cut_off"]:
        lines.append(f"Cut off: {summary['cut_off']}")
    if summary.get("failures"):
        for name, line in summary["failures"].items():
            lines.append(f"Failed: {name}: {line}")
    if not summary["finished"] and not summary.get("interrupted"):
        lines.append(f"The network did not converge (stopped by {summary['stopped_by']}).")
    check = summary.get("self_check")
    if check is not None:
        if check["passed"]:
            lines.append("Self-check: passed (processes, figures, transactions, training, "
                         "agreement, coins)")
        else:
            lines.append(f"SELF-CHECK FAILED: {len(check['failures'])} problem(s); do not "
                         f"trust the figures above")
            for failure in check["failures"]:
                lines.append(f"  [{failure['check']}] {failure['detail']}")
    for problem in summary.get("output_errors", []):
        lines.append(f"OUTPUT LOST: {problem}")
    if "exit_code" in summary:
        lines.append(f"Exit code: {summary['exit_code']}")
    edited = summary.get("constants_edited") or {}
    if edited:
        changes = ", ".join(f"{name} {knob_text(v['shipped'])} -> {knob_text(v['here'])}"
                            for name, v in edited.items())
        lines.append(f"Note: simulation/constants.py differs from the shipped defaults "
                     f"({changes}); a re-run command without --scenario depends on it")
    if summary.get("rerun"):
        lines.append(f"Re-run: {summary['rerun']}")
    if summary.get("run_dir"):
        lines.append(f"Run folder: {summary['run_dir']}")
    return "\n".join(lines)
