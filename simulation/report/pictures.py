"""The run folder's pictures, drawn from the run's summary (``reporting.summarize``) alone.

- block_tree.png: every block the honest employees know, and those only the employer's
  light client holds (a branch the honest employees rejected), by height and branch;
  the reference chain highlighted, poisoned blocks in red, the employer's chain outlined
  when it differs.
- accuracy.png: the model's test accuracy (on the task's test set) after each block's
  stage, along the reference chain and the poisoned branch (Keras trainer only).
- rewards.png: the coinbase each employee earned in the reference chain, adversaries
  coloured by behaviour.

Only the runner imports this module, at the end of a run, so matplotlib never reaches
the employee processes. Figures are drawn on matplotlib's Agg canvas without pyplot: no
display, no global state. The runner treats any failure here as a warning.
"""

from __future__ import annotations

import heapq
import logging
import os
from collections import defaultdict
from typing import Any

log = logging.getLogger("pot.pictures")

PICTURES = ("block_tree.png", "accuracy.png", "rewards.png")
DPI = 110
# Colours that keep their meaning in every picture.
HONEST = "#4c78a8"
POISONED = "#d62728"
UNKNOWN = "#b0b0b0"
REFERENCE = "#0b2a5b"
EMPLOYER = "#7b3fa0"
BEHAVIOUR_COLOURS = {
    "poisoned": POISONED, "lazy": "#ff9f1c", "forger": "#8c564b", "equivocator": "#e377c2",
    "withholder": "#9aa12b", "spammer": "#17becf", "crash": "#6f6f6f",
}
# Past this many heights the producers' names no longer fit into the blocks.
MAX_LABELLED_HEIGHTS = 70


def draw_all(summary: dict[str, Any], folder: str) -> list[str]:
    """Draws every picture that applies into ``folder``; returns the names written. A
    picture that fails is logged as a warning and the others are still drawn."""
    written = []
    for name, draw in (("block_tree.png", draw_block_tree), ("accuracy.png", draw_accuracy),
                       ("rewards.png", draw_rewards)):
        try:
            if draw(summary, os.path.join(folder, name)):
                written.append(name)
        except Exception as exc:  # noqa: BLE001 - one picture must not stop the others
            log.warning("could not draw %s: %s: %s", name, type(exc).__name__, exc)
    return written


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _scenario_line(summary: dict[str, Any]) -> str:
    knobs = summary.get("scenario") or {}
    adversaries = summary.get("adversaries") or {}
    counts: dict[str, int] = defaultdict(int)
    for behaviour in adversaries.values():
        counts[behaviour] += 1
    who = ", ".join(f"{n} {b}" for b, n in sorted(counts.items())) or "no adversaries"
    return (f"{knobs.get('EMPLOYEES_NUM', '?')} employees ({who}), seed {knobs.get('SEED')}, "
            f"{knobs.get('TRAINER')} trainer, tick {summary.get('ticks')}")


# --- block_tree.png -----------------------------------------------------------------------


def tree_layout(blocks: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """(height, lane) of every block: lane 0 is the reference chain; a branch keeps the
    lane of its first block; branches whose first block an honest employee knows get
    lanes above (1, 2, ...), the others (only the employer has them) lanes below. A lane
    is used again by a later branch that does not overlap it."""
    by_hash = {b["hash"]: b for b in blocks}
    children: dict[str, list[str]] = defaultdict(list)
    for b in blocks:
        if b["parent"] in by_hash:
            children[b["parent"]].append(b["hash"])
    depth: dict[str, int] = {}  # longest path below a block
    for b in sorted(blocks, key=lambda b: -(b["height"] or 0)):
        depth[b["hash"]] = 1 + max((depth.get(c, 0) for c in children[b["hash"]]), default=0)

    def preference(h: str) -> tuple[Any, ...]:
        b = by_hash[h]
        return (not b.get("on_chain"), not b.get("on_employer_chain"), -depth[h], h)

    def follow(start: str, reference: bool = False) -> list[str]:
        """The branch from ``start`` down; lane 0 holds the reference chain alone."""
        path = [start]
        while True:
            options = [c for c in children[path[-1]]
                       if not reference or by_hash[c].get("on_chain")]
            if not options:
                return path
            path.append(min(options, key=preference))

    place: dict[str, tuple[int, int]] = {}
    used: dict[int, list[tuple[int, int]]] = defaultdict(list)  # lane -> (from, to) heights

    def lay(path: list[str], lane: int) -> None:
        first = by_hash[path[0]]["height"] or 0
        used[lane].append((first - 1, first + len(path) - 1))
        on_path = set(path)
        for offset, h in enumerate(path):
            place[h] = (first + offset, lane)
            for child in children[h]:
                if child not in on_path:
                    heapq.heappush(waiting, ((by_hash[child]["height"] or 0), child))

    def free_lane(low: int, high: int, sign: int) -> int:
        lane = sign
        while any(a <= high and low <= b for a, b in used[lane]):
            lane += sign
        return lane

    waiting: list[tuple[int, str]] = []
    roots = sorted((b for b in blocks if b["parent"] not in by_hash),
                   key=lambda b: (b["height"] or 0, preference(b["hash"])))
    for number, root in enumerate(roots):
        if root["hash"] in place:
            continue
        path = follow(root["hash"], reference=number == 0)
        height = root["height"] or 0
        lay(path, 0 if number == 0 else free_lane(height - 1, height + len(path) - 1,
                                                  1 if root["seen_by_honest"] else -1))
        while waiting:
            _, start = heapq.heappop(waiting)
            if start in place:
                continue
            path = follow(start)
            height = by_hash[start]["height"] or 0
            sign = 1 if by_hash[start].get("seen_by_honest", True) else -1
            lay(path, free_lane(height - 1, height + len(path) - 1, sign))
    return place


def _lane_name(lane: int) -> str:
    if lane == 0:
        return "reference chain"
    return f"fork {lane}" if lane > 0 else f"rejected {-lane}"


def draw_block_tree(summary: dict[str, Any], path: str) -> bool:
    from matplotlib.lines import Line2D

    blocks = summary.get("blocks") or []
    if not blocks:
        log.info("no block tree picture: the run knows no blocks")
        return False
    place = tree_layout(blocks)
    heights = [x for x, _ in place.values()]
    lanes = [y for _, y in place.values()]
    span = max(heights) + 1
    labelled = span <= MAX_LABELLED_HEIGHTS
    size = 330 if labelled else max(12, 330 * MAX_LABELLED_HEIGHTS / span)
    figure = _figure(min(34.0, max(11.0, 0.62 * span + 6.5)),
                     min(14.0, max(4.2, 0.75 * (max(lanes) - min(lanes) + 1) + 2.6)))
    ax = figure.subplots()
    employer_differs = any(b.get("on_employer_chain") != b.get("on_chain") for b in blocks
                           if b["height"])

    for b in blocks:  # edges first, under the blocks
        if b["parent"] not in place or b["hash"] not in place:
            continue
        (x0, y0), (x1, y1) = place[b["parent"]], place[b["hash"]]
        if b.get("on_chain"):
            style = {"color": REFERENCE, "lw": 3.2, "zorder": 2}
        elif employer_differs and b.get("on_employer_chain"):
            style = {"color": EMPLOYER, "lw": 1.8, "ls": "--", "zorder": 1}
        else:
            style = {"color": "#8a8a8a", "lw": 1.3, "zorder": 1}
        ax.plot([x0, x1], [y0, y1], solid_capstyle="round", **style)

    def colour(b: dict[str, Any]) -> str:
        if b["parent"] is None:
            return "#333333"
        by_flag: dict[Any, str] = {True: POISONED, False: HONEST}
        return by_flag.get(b.get("poisoned"), UNKNOWN)

    shown = [b for b in blocks if b["hash"] in place]
    xs = [place[b["hash"]][0] for b in shown]
    ys = [place[b["hash"]][1] for b in shown]
    ax.scatter(xs, ys, s=size, c=[colour(b) for b in shown],
               marker="o", zorder=3,
               edgecolors=[REFERENCE if b.get("on_chain") else "white" for b in shown],
               linewidths=[2.2 if b.get("on_chain") else 0.8 for b in shown])
    if employer_differs:
        ring = [b for b in shown if b.get("on_employer_chain")]
        ax.scatter([place[b["hash"]][0] for b in ring], [place[b["hash"]][1] for b in ring],
                   s=size * 2.1, facecolors="none", edgecolors=EMPLOYER, linestyles="--",
                   linewidths=1.6, zorder=4)
    if labelled:
        for b, x, y in zip(shown, xs, ys, strict=True):
            text = "G" if b["parent"] is None else (b.get("trainer") or "?")
            ax.text(x, y, text, ha="center", va="center", fontsize=7, color="white",
                    fontweight="bold", zorder=5)

    low, high = min(lanes), max(lanes)
    if low < 0:  # blocks that no honest employee holds
        ax.axhline(-0.5, color="#999999", lw=0.8, ls=":")
        ax.text(0.005, -0.62, "below: rejected by every honest employee, known to the "
                "employer's light client", transform=ax.get_yaxis_transform(),
                va="top", fontsize=8, color="#555555")
    ax.set_ylim(low - 0.8, high + 0.8)
    ax.set_xlim(-0.7, span - 0.3)
    ax.set_yticks(sorted(set(lanes)))
    ax.set_yticklabels([_lane_name(y) for y in sorted(set(lanes))], fontsize=8)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("block height (genesis = 0)")
    ax.set_ylabel("branch")
    ax.grid(axis="x", alpha=0.25)
    chain = summary.get("chain") or {}
    honest_known = sum(1 for b in blocks if b.get("seen_by_honest") and b["parent"])
    poisoned = sum(1 for b in blocks if b.get("poisoned"))
    figure.suptitle(f"Block tree: {_count(honest_known, 'block')} after genesis known to "
                    f"honest employees, {_count(summary.get('forks', 0), 'fork')}; "
                    f"{_count(len(blocks) - 1, 'block')} in all, {poisoned} poisoned\n"
                    f"{_scenario_line(summary)}", fontsize=10)

    def dot(face: str, label: str, edge: str = "white", width: float = 0.8) -> Any:
        return Line2D([], [], marker="o", ls="none", markersize=11, markerfacecolor=face,
                      markeredgecolor=edge, markeredgewidth=width, label=label)

    handles = [
        Line2D([], [], color=REFERENCE, lw=3.2, marker="o", markersize=11,
               markerfacecolor=HONEST, markeredgecolor=REFERENCE, markeredgewidth=2.2,
               label=f"reference chain ({chain.get('reference_employee')}): length "
                     f"{chain.get('length')}"),
        dot(HONEST, "block trained honestly (label: its producer)"),
    ]
    if poisoned:
        handles.append(dot(POISONED, "poisoned: revealed secret differs from the honest "
                                     "training's"))
    if any(b.get("poisoned") is None for b in blocks):
        handles.append(dot(UNKNOWN, "no honest secret to compare"))
    handles.append(dot("#333333", "genesis (G)"))
    if employer_differs:
        employer = summary.get("employer") or {}
        handles.append(Line2D([], [], color=EMPLOYER, lw=1.8, ls="--", marker="o",
                              markersize=14, markerfacecolor="none",
                              markeredgecolor=EMPLOYER,
                              label=f"employer's chain: {employer.get('chain_length')} "
                                    f"blocks, {employer.get('model_source')} model"))
    ax.legend(handles=handles, fontsize=8, loc="upper left", framealpha=0.9,
              bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    figure.savefig(path, dpi=DPI)
    return True


# --- accuracy.png -------------------------------------------------------------------------


def draw_accuracy(summary: dict[str, Any], path: str) -> bool:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    model = summary.get("model") or {}
    if model.get("trainer") != "keras":
        log.info("no accuracy picture: the %s trainer trains no model to evaluate "
                 "(--trainer keras does)", model.get("trainer"))
        return False
    honest = model.get("accuracy_by_stage") or []
    branch = summary.get("poisoned_branch") or {}
    poisoned = branch.get("accuracy_by_stage") or []
    if not honest and not poisoned:
        log.info("no accuracy picture: no stage was evaluated (the chain holds genesis "
                 "only)")
        return False
    last = max(p["stage"] for p in honest + poisoned) + 1
    figure = _figure(min(22.0, max(7.5, 0.22 * last + 5.5)), 4.8)
    ax = figure.subplots()
    marker = "o" if last <= 60 else None
    chain = summary.get("chain") or {}
    if honest:
        ax.plot([p["stage"] + 1 for p in honest], [p["accuracy"] for p in honest],
                marker=marker, color=REFERENCE, lw=2, zorder=4,
                label=f"reference chain ({chain.get('reference_employee')}), honest training")
    if poisoned:
        ax.plot([p["stage"] + 1 for p in poisoned], [p["accuracy"] for p in poisoned],
                marker="s" if marker else None, color=POISONED, lw=2, zorder=3,
                label=f"poisoned branch ({branch.get('reference_employee')}'s chain)")
    ax.axhline(0.1, color="#888888", lw=1, ls=":", label="chance (0.1)")
    employer = summary.get("employer") or {}
    if isinstance(employer.get("model_test_accuracy"), float):
        ax.plot([employer["model_stage"] + 1], [employer["model_test_accuracy"]],
                marker="*", markersize=22, markerfacecolor="none", markeredgewidth=1.6,
                color=EMPLOYER, ls="none", zorder=5,
                label=f"delivered to the employer: {employer.get('model_source')} model "
                      f"({employer['model_test_accuracy']:.3f})")
    ax.set_ylim(0, 1)
    ax.set_xlim(0.5, max(last, 2) + 0.5)
    if last <= 25:
        ax.set_xticks(range(1, max(last, 2) + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("block height (the block certifies training stage = height - 1)")
    ax.set_ylabel(f"test accuracy, TASK {(summary.get('scenario') or {}).get('TASK', '?')}")
    ax.grid(alpha=0.3)
    ax.set_title(f"Model accuracy after each block's stage\n{_scenario_line(summary)}",
                 fontsize=10)
    handles, _ = ax.get_legend_handles_labels()
    if not honest:
        why = ("holds no block after genesis" if (chain.get("length") or 0) <= 1
               else "was not evaluated")
        note = f"(the reference chain of {chain.get('reference_employee')} {why})"
        handles.insert(0, Line2D([], [], color="none", label=note))
    if not poisoned and branch:
        handles.append(Line2D([], [], color="none", label="(the poisoned branch was not "
                                                          "evaluated)"))
    ax.legend(handles=handles, fontsize=8, loc="best")
    figure.savefig(path, dpi=DPI)
    return True


# --- rewards.png --------------------------------------------------------------------------


def draw_rewards(summary: dict[str, Any], path: str) -> bool:
    from matplotlib.patches import Patch

    rewards = summary.get("rewards") or {}
    if not rewards:
        log.info("no rewards picture: no employee is listed")
        return False
    names = sorted(rewards, key=lambda n: int(n[1:]) if n[1:].isdigit() else 0)
    roles = summary.get("adversaries") or {}
    colours = [BEHAVIOUR_COLOURS.get(roles[n], "#555555") if n in roles else HONEST
               for n in names]
    values = [rewards[n] for n in names]
    figure = _figure(min(24.0, max(6.5, 0.42 * len(names) + 3)), 4.6)
    ax = figure.subplots()
    bars = ax.bar(range(len(names)), values, color=colours, edgecolor="white")
    if len(names) <= 40:
        ax.bar_label(bars, labels=[str(v) for v in values], fontsize=7, padding=2)
    ax.set_xticks(range(len(names)), names, rotation=0 if len(names) <= 20 else 90,
                  fontsize=8)
    for label, name, colour in zip(ax.get_xticklabels(), names, colours, strict=True):
        if name in roles:  # visible also when the bar is empty
            label.set_color(colour)
            label.set_fontweight("bold")
    ax.set_xlabel("employee")
    ax.set_ylabel("coins earned (coinbase payouts)")
    ax.margins(y=0.12)
    if max(values, default=0) <= 0:
        ax.set_ylim(0, 1)
        ax.text(0.5, 0.5, "no block after genesis in the reference chain: no rewards",
                ha="center", va="center", transform=ax.transAxes, color="#555555")
    else:
        ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    chain = summary.get("chain") or {}
    blocks = max(0, (chain.get("length") or 1) - 1)
    ax.set_title(f"Coinbase rewards in the reference chain ({chain.get('reference_employee')}"
                 f"'s, {_count(blocks, 'block')} after genesis)\n{_scenario_line(summary)}",
                 fontsize=10)
    handles = [Patch(color=HONEST, label="honest")]
    for behaviour in sorted(set(roles.values())):
        handles.append(Patch(color=BEHAVIOUR_COLOURS.get(behaviour, "#555555"),
                             label=behaviour))
    ax.legend(handles=handles, fontsize=8, title="behaviour", title_fontsize=8, loc="best")
    figure.savefig(path, dpi=DPI)
    return True
