"""Tolerant verification against its tolerance, with real Keras training (issue 9, item 2).

For each TF_SEED (the "seeds" of this study: they change the initial weights, hence every
loss) it trains STAGES stages of the default task three ways: on the reference kernels,
with XLA (an honest employee on other hardware), and with poisoned labels (POISON_RATE of
each stage's samples relabelled y -> y + 1 mod 10, as the `poisoned` adversary does).
Then, for every TOLERANCE, it counts the stages whose tolerant secrets differ from the
reference's: for XLA that is the chance an honest declaration is rejected, for the
poisoned training the chance a poisoned one is caught (one minus the attacker's room).
Rates are pooled over seeds and stages, with Wilson 95% intervals. Writes
docs/studies/tolerance/tolerance.csv and docs/studies/tolerance.png; with another --task
(issue 21), docs/studies/tolerance_<task>/tolerance.csv and tolerance_<task>.png.

    python scripts/tolerance_study.py [--seeds 5] [--stages 40] [--task mnist-dnn-batch32]
"""

from __future__ import annotations

import argparse
import csv
import os

from simulation.ml.study_task import ROOT, keras_task

TOLERANCES = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
POISON_RATES = (0.1, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--stages", type=int, default=40)
    parser.add_argument("--task", default="mnist-dnn", help="a built-in TASK")
    args = parser.parse_args()

    task = keras_task(task=args.task)
    from simulation.experiments.statistics import wilson_interval
    from simulation.ml.keras_training import KerasTrainer
    from simulation.node.adversaries import poison_labels
    from simulation.protocol.stages import stage_id, tolerant_secret

    scenario, mnist, per_stage, mid = task.scenario, task.mnist, task.per_stage, task.model_id
    same = {"task": task.task, "learning_rate": task.learning_rate}  # every trainer's
    kinds = {"xla": {"jit_compile": True, **same}}
    kinds.update({f"poisoned {rate:g}": {"label_map": poison_labels(
        scenario.seed, rate, task.task.num_classes), **same} for rate in POISON_RATES})
    differ = {(kind, tol): 0 for kind in kinds for tol in TOLERANCES}
    total = 0
    for tf_seed in range(1, args.seeds + 1):
        reference = KerasTrainer(mid, mnist, tf_seed, per_stage, **same)
        others = {kind: KerasTrainer(mid, mnist, tf_seed, per_stage, **options)
                  for kind, options in kinds.items()}
        for stage in range(args.stages):
            sid = stage_id(mid, stage)
            ours = reference.result(stage).losses
            total += 1
            for kind, trainer in others.items():
                theirs = trainer.result(stage).losses
                for tol in TOLERANCES:
                    differ[(kind, tol)] += (tolerant_secret(sid, ours, tol)
                                            != tolerant_secret(sid, theirs, tol))
        print(f"TF_SEED {tf_seed}: {args.stages} stages trained", flush=True)
    rows = []
    for kind in kinds:
        for tol in TOLERANCES:
            k = differ[(kind, tol)]
            low, high = wilson_interval(k, total)  # type: ignore[misc]
            rows.append({"training": kind, "tolerance": tol, "stages": total,
                         "secrets_differ": k, "rate": round(k / total, 4),
                         "ci95_low": round(low, 4), "ci95_high": round(high, 4)})
    suffix = "" if args.task == "mnist-dnn" else f"_{args.task}"
    out = os.path.join(ROOT, "docs", "studies", f"tolerance{suffix}")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tolerance.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{'training':<14} {'tolerance':>9} {'secrets differ':>15} {'95% CI':>18}")
    for r in rows:
        print(f"{r['training']:<14} {r['tolerance']:>9g} {r['secrets_differ']:>6} of "
              f"{r['stages']:<6} [{r['ci95_low']:.4f}, {r['ci95_high']:.4f}]")
    figure(rows, os.path.join(ROOT, "docs", "studies", f"tolerance{suffix}.png"), args)


def figure(rows: list[dict[str, object]], path: str, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, kind in enumerate(dict.fromkeys(str(r["training"]) for r in rows)):
        points = [r for r in rows if r["training"] == kind]
        xs = [float(r["tolerance"]) for r in points]  # type: ignore[arg-type]
        ys = [float(r["rate"]) for r in points]  # type: ignore[arg-type]
        low = [y - float(r["ci95_low"]) for y, r in zip(ys, points, strict=True)]  # type: ignore[arg-type]
        high = [float(r["ci95_high"]) - y for y, r in zip(ys, points, strict=True)]  # type: ignore[arg-type]
        label = ("honest on XLA: declaration rejected" if kind == "xla"
                 else f"{kind} (labels): caught")
        ax.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, color=f"C{i}",
                    label=label)
    ax.set_xscale("log")
    ax.set(xlabel="TOLERANCE (quantum of the losses)",
           ylabel="share of stages whose secret differs from the reference",
           title=f"Tolerant verification, real Keras training, TASK {args.task} "
                 f"({args.seeds} TF seeds x {args.stages} stages, 95% Wilson)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
