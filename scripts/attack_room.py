"""How much accuracy can an attacker take under tolerant verification? (issue 9, item 2)

An attacker that perturbs its model just under the bound: it trains every stage of the
default task like an honest employee, but after each stage it pushes its weights a step
of relative size EPSILON up the gradient of the loss on 1,000 training images it holds
out (w <- w + EPSILON |w| sign(grad)), then trains the next stage from there. Its
declarations reveal the secret of its own losses; an honest verifier trains every stage
from its own (honest) weights. A stage is accepted at TOLERANCE when the two tolerant
secrets are equal (every loss rounds to the same multiple of TOLERANCE).

For each TF_SEED, each EPSILON and each TOLERANCE the script records whether all STAGES
stages were accepted and the test accuracy the attacker's final model lost against the
honest one. The attacker's room at a tolerance is, per seed, the largest loss of
accuracy among the EPSILONs whose every stage was accepted (a fixed-step attacker: one
that tunes its step per stage would do at least as well); it is reported as a mean with
a 95% t-interval over the seeds, next to the share of attacked stages accepted (Wilson).
A second attacker tunes its step before each stage: the largest EPSILON after which the
stage is still accepted (it trains honestly beside, so it knows what a verifier will
compute), falling back to the honest weights when even its accumulated drift is
rejected; it is accepted in every stage by construction, and its room is the accuracy
its final model lost (docs/studies/attack_room/adaptive.csv).
Label poisoning, the other way to stay under the bound, is in scripts/tolerance_study.py:
one relabelled sample in ten is caught in every stage up to TOLERANCE 0.01.

The weights after the newest stage are not checked by anything in tolerant mode (no
model hash is compared and no later loss was computed from them yet), so this measures
the drift an attacker can build up over checked stages; a model swapped after the last
checked stage is the substitution room the README describes.

    python scripts/attack_room.py [--seeds 5] [--stages 40]
    python scripts/attack_room.py --figure-only   # redraw from the CSVs

Writes docs/studies/attack_room/attack_room.csv (one row per seed, EPSILON, TOLERANCE),
docs/studies/attack_room/room.csv (the room per TOLERANCE) and
docs/studies/attack_room.png.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics

from simulation.ml.study_task import ROOT, keras_task

TOLERANCES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
EPSILONS = (1e-7, 1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
HELD_OUT = slice(59000, 60000)  # the attacker's own images (not used by the first stages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--stages", type=int, default=40)
    parser.add_argument("--figure-only", action="store_true")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "studies"),
                        help="folder of attack_room/ and attack_room.png (default: "
                             "%(default)s)")
    args = parser.parse_args()
    out = os.path.join(args.out, "attack_room")
    figure_path = os.path.join(args.out, "attack_room.png")
    if args.figure_only:
        rows, room_rows = (read_csv(os.path.join(out, name))
                           for name in ("attack_room.csv", "room.csv"))
        args.seeds, args.stages = int(room_rows[0]["seeds"]), int(rows[0]["stages"])
        figure(rows, room_rows, figure_path, args)
        return

    task = keras_task()
    import numpy as np
    import tensorflow as tf

    from simulation.experiments.statistics import t_interval, wilson_interval
    from simulation.ml.keras_training import PIXEL_SCALE, KerasTrainer
    from simulation.protocol.stages import stage_id, tolerant_secret

    mnist, per_stage, mid = task.mnist, task.per_stage, task.model_id
    assert per_stage * args.stages <= HELD_OUT.start, "the stages would reach the held-out"
    x_attack = tf.constant(PIXEL_SCALE[mnist.x_train[HELD_OUT]])
    y_attack = tf.constant(mnist.y_train[HELD_OUT].astype(np.int32))
    cross_entropy = tf.keras.losses.SparseCategoricalCrossentropy()

    def push(trainer: KerasTrainer, epsilon: float) -> None:
        variables = trainer._model.trainable_variables
        with tf.GradientTape() as tape:
            loss = cross_entropy(y_attack, trainer._model(x_attack, training=False))
        for variable, gradient in zip(variables, tape.gradient(loss, variables), strict=True):
            variable.assign_add(epsilon * tf.abs(variable) * tf.sign(gradient))

    rows = []
    def adaptive(tf_seed: int, tol: float, honest_losses: list, honest_states: list,
                 honest_accuracy: float) -> dict:
        """Before each stage the attacker takes the largest step of EPSILONS (or none)
        after which that stage is still accepted; it knows, training honestly beside,
        what the verifier will compute. When even no step is accepted (its drift alone
        crosses a boundary) it goes back to the honest weights for that stage."""
        attacker = KerasTrainer(mid, mnist, tf_seed, per_stage)
        steps, resets = [], 0
        for stage in range(args.stages):
            sid = stage_id(mid, stage)
            wanted = tolerant_secret(sid, honest_losses[stage], tol)
            base = attacker._full_state()
            chosen = None
            for epsilon in ([] if stage == 0 else sorted(EPSILONS, reverse=True)) + [0.0]:
                attacker._load_state(base)
                if epsilon:
                    push(attacker, epsilon)
                if tolerant_secret(sid, attacker._run_stage(stage)[0], tol) == wanted:
                    chosen = epsilon
                    break
            if chosen is None:
                attacker._load_state(honest_states[stage - 1])
                attacker._run_stage(stage)
                resets += 1
                chosen = 0.0
            steps.append(chosen)
        taken = honest_accuracy - attacker.current_accuracy()
        return {"tf_seed": tf_seed, "tolerance": tol, "stages": args.stages,
                "accuracy_taken": round(taken, 4),
                "median_epsilon": statistics.median(steps[1:]) if len(steps) > 1 else 0.0,
                "largest_epsilon": max(steps), "back_to_honest": resets}

    adaptive_rows = []
    for tf_seed in range(1, args.seeds + 1):
        honest = KerasTrainer(mid, mnist, tf_seed, per_stage)
        honest_losses, honest_states = [], []
        for stage in range(args.stages):
            honest_losses.append(honest._run_stage(stage)[0])
            honest_states.append(honest._full_state())
        honest_accuracy = honest.current_accuracy()
        for tol in TOLERANCES:
            adaptive_rows.append(adaptive(tf_seed, tol, honest_losses, honest_states,
                                          honest_accuracy))
        for epsilon in EPSILONS:
            attacker = KerasTrainer(mid, mnist, tf_seed, per_stage)
            accepted = dict.fromkeys(TOLERANCES, 0)
            for stage in range(args.stages):
                losses = attacker._run_stage(stage)[0]
                sid = stage_id(mid, stage)
                for tol in TOLERANCES:
                    accepted[tol] += (tolerant_secret(sid, losses, tol)
                                      == tolerant_secret(sid, honest_losses[stage], tol))
                if stage < args.stages - 1:  # the last weights are never checked
                    push(attacker, epsilon)
            taken = honest_accuracy - attacker.current_accuracy()
            for tol in TOLERANCES:
                rows.append({"tf_seed": tf_seed, "epsilon": epsilon, "tolerance": tol,
                             "stages": args.stages, "stages_accepted": accepted[tol],
                             "all_accepted": accepted[tol] == args.stages,
                             "honest_accuracy": honest_accuracy,
                             "accuracy_taken": round(taken, 4)})
        print(f"TF_SEED {tf_seed}: honest accuracy {honest_accuracy:.4f} after "
              f"{args.stages} stages", flush=True)

    room_rows = []
    for tol in TOLERANCES:
        rooms = []
        for tf_seed in range(1, args.seeds + 1):
            ok = [r["accuracy_taken"] for r in rows if r["tolerance"] == tol
                  and r["tf_seed"] == tf_seed and r["all_accepted"]]
            rooms.append(max([0.0, *ok]))
        steps = [r["epsilon"] for r in rows if r["tolerance"] == tol and r["all_accepted"]]
        attacked = [r for r in rows if r["tolerance"] == tol]
        k = sum(r["stages_accepted"] for r in attacked)
        n = sum(r["stages"] for r in attacked)
        low, high = t_interval(rooms) or (None, None)
        tuned = [r["accuracy_taken"] for r in adaptive_rows if r["tolerance"] == tol]
        tuned_low, tuned_high = t_interval(tuned) or (None, None)
        room_rows.append({
            "tolerance": tol, "seeds": args.seeds,
            "room_mean": round(statistics.mean(rooms), 4),
            "room_ci95_low": None if low is None else round(low, 4),
            "room_ci95_high": None if high is None else round(high, 4),
            "room_max": max(rooms),
            "largest_epsilon_always_accepted": max(steps, default=0.0),
            "attacked_stages_accepted": f"{k}/{n}",
            "accepted_ci95": "[{:.3f}, {:.3f}]".format(*wilson_interval(k, n)),
            "adaptive_room_mean": round(statistics.mean(tuned), 4),
            "adaptive_ci95_low": None if tuned_low is None else round(tuned_low, 4),
            "adaptive_ci95_high": None if tuned_high is None else round(tuned_high, 4),
            "adaptive_back_to_honest": sum(r["back_to_honest"] for r in adaptive_rows
                                           if r["tolerance"] == tol),
        })
    os.makedirs(out, exist_ok=True)
    for name, table in (("attack_room.csv", rows), ("adaptive.csv", adaptive_rows),
                        ("room.csv", room_rows)):
        with open(os.path.join(out, name), "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    for r in room_rows:
        print(" ".join(f"{k}={v}" for k, v in r.items()))
    figure(rows, room_rows, figure_path, args)


def read_csv(path: str) -> list[dict]:
    """A CSV this script wrote, with its numbers and flags typed again."""
    def typed(text: str):
        if text in ("True", "False"):
            return text == "True"
        try:
            return float(text) if any(c in text for c in ".e") else int(text)
        except ValueError:
            return None if text == "" else text

    with open(path, newline="", encoding="utf-8") as f:
        return [{k: typed(v) for k, v in row.items()} for row in csv.DictReader(f)]


def figure(rows: list[dict], room_rows: list[dict], path: str,
           args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.3))
    for i, tol in enumerate(TOLERANCES):
        points = [(eps, statistics.mean(r["stages_accepted"] / r["stages"] for r in rows
                                        if r["tolerance"] == tol and r["epsilon"] == eps))
                  for eps in EPSILONS]
        left.plot(*zip(*points, strict=True), marker="o", color=f"C{i}",
                  label=f"TOLERANCE {tol:g}")
    taken = [(eps, statistics.mean(r["accuracy_taken"] for r in rows
                                   if r["epsilon"] == eps and r["tolerance"] == TOLERANCES[0]))
             for eps in EPSILONS]
    twin = left.twinx()
    twin.plot(*zip(*taken, strict=True), color="black", linestyle="--",
              label="accuracy taken (any tolerance)")
    twin.set_ylabel("test accuracy taken (mean over seeds)")
    left.set_xscale("log")
    left.set(xlabel="EPSILON (relative step up the attacker's loss, per stage)",
             ylabel="share of attacked stages accepted", title="Acceptance and harm")
    left.legend(fontsize=7, loc="center left")
    twin.legend(fontsize=7, loc="lower right")
    xs = [r["tolerance"] for r in room_rows]
    ys = [r["room_mean"] for r in room_rows]
    low = [y - (r["room_ci95_low"] if r["room_ci95_low"] is not None else y)
           for y, r in zip(ys, room_rows, strict=True)]
    high = [(r["room_ci95_high"] if r["room_ci95_high"] is not None else y) - y
            for y, r in zip(ys, room_rows, strict=True)]
    right.errorbar(xs, ys, yerr=[[max(0, v) for v in low], [max(0, v) for v in high]],
                   marker="o", capsize=3, label="fixed step, every stage accepted")
    if "adaptive_room_mean" in room_rows[0]:
        tuned = [r["adaptive_room_mean"] for r in room_rows]
        # One seed has no interval (None): no bar then, as for the fixed step above.
        below = [y - (r["adaptive_ci95_low"] if r["adaptive_ci95_low"] is not None else y)
                 for y, r in zip(tuned, room_rows, strict=True)]
        above = [(r["adaptive_ci95_high"] if r["adaptive_ci95_high"] is not None else y) - y
                 for y, r in zip(tuned, room_rows, strict=True)]
        right.errorbar(xs, tuned, yerr=[[max(0, v) for v in below], [max(0, v) for v in above]],
                       marker="^", capsize=3, color="C1",
                       label="step tuned per stage (always accepted)")
    right.legend(fontsize=7, loc="upper left")
    honest = os.path.join(ROOT, "docs", "studies", "tolerance", "tolerance.csv")
    if os.path.exists(honest):  # scripts/tolerance_study.py: the other side of the bound
        xla = [r for r in read_csv(honest) if r["training"] == "xla"]
        other = right.twinx()
        other.plot([r["tolerance"] for r in xla], [r["rate"] for r in xla], color="C3",
                   marker="s", linestyle=":", label="honest XLA declaration rejected "
                   "(tolerance_study.py)")
        other.set_ylabel("share of honest XLA stages rejected", color="C3")
        other.legend(fontsize=7, loc="center left")
    right.set_xscale("log")
    right.set(xlabel="TOLERANCE", ylabel="test accuracy taken while every stage accepted",
              title=f"Room: {args.seeds} TF seeds x {args.stages} stages (mean, 95% t)")
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
