"""How much of the network's training went into the model the employer receives.

Proof of work spends all its computation on puzzles nobody needs; PoT spends it on
training, but every employee trains every stage (to declare it and to check the others),
so only part of it ends up in the delivered model. ``useful_work`` divides the training
the employees report into:

- useful: one training of each stage the delivered chain certifies (the block's trainer's,
  else the lowest-numbered employee's that computed the same secret): what training the
  task once would cost;
- verification: the other trainings of those stages that computed the certified secret;
- beyond_chain: trainings of stages past the delivered model (the next stages under way
  when the run ended, and the deep re-checks of longer branches);
- poisoned: trainings on poisoned labels, when the delivered model is not theirs;
- discarded: other trainings of certified stages whose secret was not the certified one
  (hardware that computes otherwise), and all honest training when a poisoned chain won.

The unit is measured CPU seconds when every training employee reported them (real
training on the process backend); otherwise it is samples trained, every sample costing
the same (the hash trainer's cost model, on every backend, and Keras on Ray, which does
not time stages).
CPU seconds include each employee's first stage, which also builds its training graph:
training the task once would pay that once too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simulation.protocol.records import ChainEntry, EmployeeReport

KINDS = ("useful", "verification", "beyond_chain", "poisoned", "discarded")


def useful_work(employees: Mapping[str, EmployeeReport], poisoned: set[str],
                delivered: Sequence[ChainEntry], samples_per_stage: int | None,
                real_training: bool = True) -> dict[str, Any]:
    """The accounting above for the reporting ``employees`` (by name), those among them
    that train on poisoned labels, and the delivered chain (genesis first). Without
    ``samples_per_stage`` (a caller that does not know the task) untimed work is counted
    in stages. Without ``real_training`` (the hash trainer, whose CPU time is hashing)
    work is counted in samples on every backend."""
    certified = {entry.height - 1: entry for entry in delivered if entry.height >= 1}
    trainers = {name: report for name, report in employees.items() if report.secrets}
    names = {report.index: name for name, report in employees.items()}
    timed = real_training and bool(trainers) and all(
        report.stage_cpu_seconds is not None
        and len(report.stage_cpu_seconds) >= len(report.secrets)
        for report in trainers.values())

    def cost(report: EmployeeReport, stage: int) -> float:
        if timed:
            assert report.stage_cpu_seconds is not None  # checked for every trainer
            return report.stage_cpu_seconds[stage]
        return float(samples_per_stage or 1)

    totals = dict.fromkeys(KINDS, 0.0)
    for stage, entry in sorted(certified.items()):
        trainer = names.get(entry.trainer) if entry.trainer is not None else None
        # The useful training of a stage: the block's trainer's, if it computed the
        # certified secret, else the lowest-numbered employee's that did.
        ranked = sorted(trainers, key=lambda n: (n != trainer, trainers[n].index))
        useful_found = False
        for name in ranked:
            report = trainers[name]
            if stage >= len(report.secrets):
                continue
            if report.secrets[stage] == entry.secret:
                kind = "verification" if useful_found else "useful"
                useful_found = True
            else:
                kind = "poisoned" if name in poisoned else "discarded"
            totals[kind] += cost(report, stage)
    # Past the delivered model, a training counts as a poisoned (or a discarded honest)
    # branch when its employee trains on the side that did not deliver the model.
    delivered_poisoned = any(
        stage < len(trainers[name].secrets) and trainers[name].secrets[stage] == entry.secret
        for name in poisoned if name in trainers for stage, entry in certified.items())
    for name, report in trainers.items():
        beyond = "beyond_chain" if (name in poisoned) == delivered_poisoned else \
            "poisoned" if name in poisoned else "discarded"
        for stage in range(len(report.secrets)):
            if stage not in certified:
                totals[beyond] += cost(report, stage)
    total = sum(totals.values())
    stages = len(certified)
    certified_samples = stages * samples_per_stage if samples_per_stage else 0
    return {
        "work_unit": "cpu_seconds" if timed else "samples" if samples_per_stage else "stages",
        "work_total": round(total, 4),
        "work": {kind: round(value, 4) for kind, value in totals.items()},
        "useful_share": round(totals["useful"] / total, 5) if total else None,
        "certified_stages": stages,
        # The network's training per sample of the delivered model, and the same for
        # training it once (the useful part): their ratio is 1 / useful_share.
        "work_per_certified_sample": round(total / certified_samples, 7)
        if certified_samples else None,
        "useful_work_per_certified_sample": round(totals["useful"] / certified_samples, 7)
        if certified_samples else None,
    }
