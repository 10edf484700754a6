"""The figures a study file declares (``[[figures]]`` in studies/*.toml), drawn from its
sweeps' summary.csv files.

Each kind has a checker (what settings it needs; run before any sweep starts) and a
drawer that writes its picture and returns the lines it prints. The settings name the
study's sweeps by their ``out`` folders, so no folder table is kept in code.

* ``threshold``: against the adversaries' share of the employees, the rate at which the
  employer received the poisoned model and the rate at which the honest employees
  reached the target, one curve per sweep (split by EMPLOYER_CONFIDENCE where a sweep
  varies it), with the sweeps' 95% Wilson intervals. Settings: ``output`` (a PNG path)
  and ``curves``, a list of ``{ sweep = "FOLDER", label = "TEXT" }`` with an optional
  ``employer_confidence = N`` to keep that value only.
* ``useful-work-table``: a Markdown table, per point of one sweep varying TASK and
  EMPLOYEES_NUM, of the useful share with its interval, the CPU time of training per
  certified sample (the network's, once, their ratio) and the test accuracy. Settings:
  ``sweep`` and ``output`` (a ``.md`` path).
* ``attack-table``: a Markdown table, per count of attackers, of how often the employer
  took the poisoned model under each column's sweep (k/n [95% Wilson interval]; the rows of
  EMPLOYER_CONFIDENCE 3 where a sweep varies it), how often the honest chain reached the
  target under ``finished_of``, and what the grinders' search found in each of ``grinders``
  (headers with the wanted draw per 100 ticks, hash tries per such header, from runs.csv).
  Settings: ``output`` (``.md``), ``columns`` (a list of ``{ sweep, label }``),
  ``finished_of`` (a sweep), ``grinders`` (a list of sweeps) and optionally ``walls_of``
  (sweeps whose run wall times are summed up under the table).
* ``network``: how blocks spread (stale rate and propagation against latency and block
  size); ``simulation.experiments.network_figure`` says what it draws and its settings.
* ``fairness``: block and reward shares per hardware speed factor against training time;
  ``simulation.experiments.fairness_figure`` says what it draws and its settings.
* ``peer-graph-tables``: the peer-graph study's Markdown tables. Settings: ``output``
  (``.md``); ``exposure``, sweeps varying ADVERSARIES, EMPLOYER_PEERS and
  EMPLOYER_FORK_CHOICE (runs in which the employer took the poisoned model, and the mean
  length of its chain); ``baseline``, full-mesh sweeps varying ADVERSARIES and the fork
  choice; ``propagation``, sweeps varying TOPOLOGY and STAGE_TICKS (ticks, hops, stale
  rate, bytes, duplicates), in the order of ``topology_order`` if given.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulation.experiments import fairness_figure, network_figure
from simulation.experiments.figures_io import ROOT, number_or_none, read_rows, read_summary


def _needs_output(settings: dict[str, Any], suffix: str = ".png") -> list[str]:
    output = settings.get("output")
    if not isinstance(output, str) or not output.endswith(suffix):
        return [f"needs output = \"PATH{suffix}\""]
    return []


def _sweep_problems(folder: Any, what: str, folders: set[Path]) -> list[str]:
    if not isinstance(folder, str):
        return [f"{what} needs a sweep folder"]
    path = (ROOT / folder).resolve()
    if path not in folders and not (path / "summary.csv").exists():
        return [f"{what}: {folder} is neither a sweep of this study nor a folder with a "
                "summary.csv"]
    return []


def _curve_problems(settings: dict[str, Any], folders: set[Path]) -> list[str]:
    problems = _needs_output(settings)
    curves = settings.get("curves")
    if not isinstance(curves, list) or not curves:
        return [*problems, "needs curves = [{ sweep = \"FOLDER\", label = \"TEXT\" }, ...]"]
    for number, curve in enumerate(curves, 1):
        if not isinstance(curve, dict) or not isinstance(curve.get("sweep"), str):
            problems.append(f"curve {number} needs sweep = \"FOLDER\"")
            continue
        problems += _sweep_problems(curve["sweep"], f"curve {number}", folders)
        extra = set(curve) - {"sweep", "label", "employer_confidence"}
        if extra:
            problems.append(f"curve {number}: unknown keys {', '.join(sorted(extra))}")
    return problems


def adversary_share(row: dict[str, str], fixed: dict[str, str]) -> float:
    """The adversaries' share of the employees at a summary row: its own column where the
    sweep wrote one, otherwise the ADVERSARIES counts over EMPLOYEES_NUM (the row's, the
    sweep's fixed value, or the default)."""
    if row.get("adversary_share"):
        return float(row["adversary_share"])
    from simulation import config

    text = row.get("ADVERSARIES") or fixed.get("ADVERSARIES", "")
    count = sum(int(part.rpartition(":")[2]) for part in text.split(",") if ":" in part)
    employees = row.get("EMPLOYEES_NUM") or fixed.get("EMPLOYEES_NUM")
    total = int(employees) if employees else config.default_scenario().employees_num
    return count / total


def threshold_curves(settings: dict[str, Any], fixed_of: Callable[[str], dict[str, str]]
                     ) -> list[tuple[str, list[tuple[float, dict[str, str]]]]]:
    """(label, [(adversary share, summary row)]) per curve, sorted by share."""
    out = []
    for curve in settings["curves"]:
        label = curve.get("label", curve["sweep"])
        keep = curve.get("employer_confidence")
        groups: dict[str, list[dict[str, str]]] = {}
        for row in read_summary(curve["sweep"]):
            confidence = row.get("EMPLOYER_CONFIDENCE") or ""
            if keep is not None and confidence not in ("", str(keep)):
                continue
            groups.setdefault(confidence, []).append(row)
        for confidence, rows in sorted(groups.items(), key=lambda kv: int(kv[0] or 0)):
            name = label if len(groups) == 1 else f"{label}, EMPLOYER_CONFIDENCE {confidence}"
            fixed = fixed_of(curve["sweep"])
            points = sorted(((adversary_share(r, fixed), r) for r in rows),
                            key=lambda p: p[0])
            out.append((name, points))
    return out


def draw_threshold(settings: dict[str, Any], fixed_of: Callable[[str], dict[str, str]]
                   ) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = threshold_curves(settings, fixed_of)
    if not any(points for _, points in found):
        return [f"figure threshold: no summary.csv yet for {settings['output']}; "
                "run the study's sweeps first"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharex=True)
    panels = (("employer_poisoned", "employer received the poisoned model"),
              ("finished", "honest employees reached the target"))
    for axis, (measure, title) in zip(axes, panels, strict=True):
        for name, points in found:
            xs, ys, below, above = [], [], [], []
            for share, row in points:
                rate = number_or_none(row[f"{measure}_rate"])
                if rate is None:
                    continue
                low = number_or_none(row[f"{measure}_ci95_low"])
                high = number_or_none(row[f"{measure}_ci95_high"])
                xs.append(share)
                ys.append(rate)
                below.append(rate - (rate if low is None else low))
                above.append((rate if high is None else high) - rate)
            axis.errorbar(xs, ys, yerr=[below, above], marker="o", capsize=3, label=name)
        axis.axvline(0.5, color="grey", linestyle=":", linewidth=1)
        axis.set_title(title)
        axis.set_xlabel("poisoned share of the employees")
        axis.set_ylabel("rate over seeds (95% Wilson interval)")
        axis.set_ylim(-0.05, 1.05)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    target = ROOT / settings["output"]
    fig.savefig(target, dpi=110)
    plt.close(fig)
    lines = [f"wrote {settings['output']}"]
    for name, points in found:
        lines.append(name)
        for share, row in points:
            lines.append(
                f"  share {share:.2f} n {row['n']:>3} failed {row['n_self_check_failed']} "
                f"employer poisoned {row['employer_poisoned_rate']} "
                f"[{row['employer_poisoned_ci95_low']}, {row['employer_poisoned_ci95_high']}]"
                f" finished {row['finished_rate']}")
    return lines


def _write_lines(output: str, lines: list[str]) -> list[str]:
    target = ROOT / output
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [f"wrote {output}", *lines]


def _useful_work_problems(settings: dict[str, Any], folders: set[Path]) -> list[str]:
    return [*_needs_output(settings, ".md"), *_sweep_problems(settings.get("sweep"), "sweep",
                                                              folders)]


def draw_useful_work_table(settings: dict[str, Any],
                           fixed_of: Callable[[str], dict[str, str]]) -> list[str]:
    rows = read_summary(settings["sweep"])
    if not rows:
        return [f"useful-work-table: no summary.csv yet in {settings['sweep']}"]
    lines = ["| task | employees | runs | useful share, mean [95% CI] | CPU ms of training "
             "per certified sample: network | once | network / once | test accuracy |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        share = number_or_none(row.get("useful_share_mean"))
        low = number_or_none(row.get("useful_share_ci95_low"))
        high = number_or_none(row.get("useful_share_ci95_high"))
        network = number_or_none(row.get("work_per_certified_sample_mean"))
        once = number_or_none(row.get("useful_work_per_certified_sample_mean"))
        accuracy = number_or_none(row.get("model_accuracy_mean"))
        interval = "" if low is None or high is None else f" [{100 * low:.1f}, {100 * high:.1f}]"
        lines.append(
            f"| {row['TASK']} | {row['EMPLOYEES_NUM']} | {row['n']} | "
            + ("-" if share is None else f"{100 * share:.1f}%{interval}") + " | "
            + ("-" if network is None else f"{1000 * network:.2f}") + " | "
            + ("-" if once is None else f"{1000 * once:.2f}") + " | "
            + ("-" if not (network and once) else f"{network / once:.1f}") + " | "
            + ("-" if accuracy is None else f"{accuracy:.3f}") + " |")
    return _write_lines(settings["output"], lines)


def _attack_problems(settings: dict[str, Any], folders: set[Path]) -> list[str]:
    problems = _needs_output(settings, ".md")
    columns = settings.get("columns")
    if not isinstance(columns, list) or not columns:
        problems.append("needs columns = [{ sweep = \"FOLDER\", label = \"TEXT\" }, ...]")
        columns = []
    for number, column in enumerate(columns, 1):
        folder = column.get("sweep") if isinstance(column, dict) else None
        problems += _sweep_problems(folder, f"column {number}", folders)
    problems += _sweep_problems(settings.get("finished_of"), "finished_of", folders)
    for key in ("grinders", "walls_of"):
        if not isinstance(settings.get(key, []), list):
            problems.append(f"{key} must be a list of sweep folders")
    for key in ("grinders", "walls_of"):
        for folder in settings.get(key, []) if isinstance(settings.get(key, []), list) else []:
            problems += _sweep_problems(folder, key, folders)
    return problems


def _confidence_3(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if (r.get("EMPLOYER_CONFIDENCE") or "3") == "3"]


def _attackers(row: dict[str, str]) -> int:
    return _attackers_of_text(row["ADVERSARIES"])


def _rate_cell(row: dict[str, str], measure: str) -> str:
    n = int(row["n"])
    share = float(row[f"{measure}_rate"])
    low, high = float(row[f"{measure}_ci95_low"]), float(row[f"{measure}_ci95_high"])
    return f"{round(share * n)}/{n} [{low:.2f}, {high:.2f}]"


def _grinding_cell(folder: str, count: int) -> str:
    runs = [r for r in _confidence_3(read_rows(folder, "runs.csv")) if _attackers(r) == count]
    found = sum(int(r["attack_found"] or 0) for r in runs)
    tries = sum(int(r["attack_tries"] or 0) for r in runs)
    ticks = sum(int(r["ticks"] or 0) for r in runs)
    if not found:
        return "0"
    return f"{100 * found / ticks:.2g} ({tries / found:,.0f})"


def draw_attack_table(settings: dict[str, Any],
                      fixed_of: Callable[[str], dict[str, str]]) -> list[str]:
    import statistics

    columns = [(c.get("label", c["sweep"]), c["sweep"]) for c in settings["columns"]]
    summaries = {folder: {_attackers(r): r for r in _confidence_3(read_summary(folder))}
                 for _, folder in columns + [("", settings["finished_of"])]}
    counts = sorted(set().union(*summaries.values()))
    if not counts:
        return ["attack-table: no summary.csv yet; run the study's sweeps first"]
    grinders = settings.get("grinders", [])
    employees = int(fixed_of(columns[0][1]).get("EMPLOYEES_NUM", "11"))
    head = ["attackers (share)", *(f"employer poisoned: {label}" for label, _ in columns),
            "honest chain reached the target", "wanted headers per 100 ticks (tries per "
            "header): " + " / ".join(Path(g).name for g in grinders)]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for count in counts:
        cells = [f"{count} ({count / employees:.0%})"]
        cells += [_rate_cell(summaries[folder][count], "employer_poisoned")
                  if count in summaries[folder] else "-" for _, folder in columns]
        finished = summaries[settings["finished_of"]].get(count)
        cells.append(_rate_cell(finished, "finished") if finished else "-")
        cells.append(" / ".join(_grinding_cell(g, count) if count else "-" for g in grinders))
        lines.append("| " + " | ".join(cells) + " |")
    walls = [float(r["wall_seconds"]) for folder in settings.get("walls_of", [])
             for r in read_rows(folder, "runs.csv") if r["wall_seconds"]]
    if walls:
        lines += ["", f"{len(walls)} runs: {sum(walls):.0f} s of run wall time in all, "
                      f"median {statistics.median(walls):.1f} s per run"]
    return _write_lines(settings["output"], lines)


def _peer_graph_problems(settings: dict[str, Any], folders: set[Path]) -> list[str]:
    problems = _needs_output(settings, ".md")
    for key in ("exposure", "baseline", "propagation"):
        sweeps = settings.get(key, [])
        if not isinstance(sweeps, list):
            problems.append(f"{key} must be a list of sweep folders")
            continue
        for folder in sweeps:
            problems += _sweep_problems(folder, key, folders)
    return problems


def _count_cell(row: dict[str, str], measure: str) -> str:
    """k/n of a proportion (its rate times the runs)."""
    n = int(row["n"])
    rate = row.get(f"{measure}_rate") or ""
    return "-" if rate == "" else f"{round(float(rate) * n)}/{n}"


def _mean_cell(row: dict[str, str], measure: str, digits: int = 1) -> str:
    value = row.get(f"{measure}_mean") or ""
    return "-" if value == "" else f"{float(value):.{digits}f}"


def _by_attackers(rows: list[dict[str, str]]) -> list[str]:
    return sorted({r["ADVERSARIES"] for r in rows}, key=_attackers_of_text)


def _attackers_of_text(text: str) -> int:
    return int(text.rpartition(":")[2])


def _exposure_lines(folder: str) -> list[str]:
    rows = read_summary(folder)
    peers = sorted({r["EMPLOYER_PEERS"] for r in rows}, key=lambda p: int(p) or 10**9)
    names = ["all" if p == "0" else p for p in peers]
    lines = ["", f"{Path(folder).name}: employer took the poisoned model (runs), mean "
                 "employer chain length",
             "| poisoned | fork choice | " + " | ".join(f"{n} peer(s)" for n in names) + " |",
             "| --- | --- |" + " --- |" * len(peers)]
    for adversaries in _by_attackers(rows):
        for choice in ("longest", "declarers"):
            cells = []
            for peer in peers:
                row = next((r for r in rows if r["ADVERSARIES"] == adversaries
                            and r["EMPLOYER_PEERS"] == peer
                            and r["EMPLOYER_FORK_CHOICE"] == choice), None)
                cells.append("-" if row is None else
                             f"{_count_cell(row, 'employer_poisoned')}, "
                             f"{_mean_cell(row, 'employer_chain_length')}")
            lines.append(f"| {_attackers_of_text(adversaries)} | {choice} | "
                         + " | ".join(cells) + " |")
    return lines


def _baseline_lines(folder: str) -> list[str]:
    rows = read_summary(folder)
    lines = ["", f"{Path(folder).name}: employer took the poisoned model (runs), mean "
                 "employer chain length",
             "| poisoned | longest | declarers |", "| --- | --- | --- |"]
    for adversaries in _by_attackers(rows):
        cells = [next((f"{_count_cell(r, 'employer_poisoned')}, "
                       f"{_mean_cell(r, 'employer_chain_length')}" for r in rows
                       if r["ADVERSARIES"] == adversaries
                       and r["EMPLOYER_FORK_CHOICE"] == choice), "-")
                 for choice in ("longest", "declarers")]
        lines.append(f"| {_attackers_of_text(adversaries)} | " + " | ".join(cells) + " |")
    return lines


def _propagation_lines(folder: str, order: list[str]) -> list[str]:
    rows = read_summary(folder)
    if order:  # the TOPOLOGY values in the order given, each with its STAGE_TICKS rows
        rows = sorted(rows, key=lambda r: (order.index(r["TOPOLOGY"])
                                           if r["TOPOLOGY"] in order else len(order)))
    lines = ["", f"{Path(folder).name}: means over seeds",
             "| TOPOLOGY | STAGE_TICKS | runs | ticks | p50 / p90 ticks | p50 / p90 hops | "
             "stale rate | bytes uploaded per employee | duplicates |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(
            f"| {row['TOPOLOGY']} | {row['STAGE_TICKS']} | {row['n']} | "
            f"{_mean_cell(row, 'ticks', 0)} | {_mean_cell(row, 'propagation_p50_ticks')} / "
            f"{_mean_cell(row, 'propagation_p90_ticks')} | {_mean_cell(row, 'hops_p50')} / "
            f"{_mean_cell(row, 'hops_p90')} | {_mean_cell(row, 'stale_rate', 3)} | "
            f"{float(row['uploaded_bytes_per_employee_mean']) / 1e6:.2f} MB | "
            f"{_mean_cell(row, 'duplicates', 0)} |")
    return lines


def draw_peer_graph_tables(settings: dict[str, Any],
                           fixed_of: Callable[[str], dict[str, str]]) -> list[str]:
    lines: list[str] = []
    order = [str(v) for v in settings.get("topology_order", [])]
    tables: tuple[tuple[str, Callable[[str], list[str]]], ...] = (
        ("exposure", _exposure_lines), ("baseline", _baseline_lines),
        ("propagation", lambda folder: _propagation_lines(folder, order)))
    for key, table in tables:
        for folder in settings.get(key, []):
            if read_summary(folder):
                lines += table(folder)
    if not lines:
        return ["peer-graph-tables: no summary.csv yet; run the study's sweeps first"]
    return _write_lines(settings["output"], lines[1:])


# kind -> (checker, drawer)
KINDS: dict[str, tuple[Callable[[dict[str, Any], set[Path]], list[str]],
                       Callable[[dict[str, Any], Callable[[str], dict[str, str]]],
                                list[str]]]] = {
    "threshold": (_curve_problems, draw_threshold),
    "useful-work-table": (_useful_work_problems, draw_useful_work_table),
    "attack-table": (_attack_problems, draw_attack_table),
    "peer-graph-tables": (_peer_graph_problems, draw_peer_graph_tables),
    "network": (lambda settings, folders: [
        *_needs_output(settings),
        *network_figure.problems(settings, lambda f, what: _sweep_problems(f, what, folders))],
        lambda settings, fixed_of: network_figure.draw(settings)),
    "fairness": (lambda settings, folders: [
        *_needs_output(settings),
        *fairness_figure.problems(settings, lambda f, what: _sweep_problems(f, what, folders))],
        lambda settings, fixed_of: fairness_figure.draw(settings)),
}


def problems(kind: str, settings: dict[str, Any], folders: set[Path]) -> list[str]:
    if kind not in KINDS:
        return [f"unknown kind (known: {', '.join(sorted(KINDS))})"]
    return KINDS[kind][0](settings, folders)


def draw(kind: str, settings: dict[str, Any], fixed_of: Callable[[str], dict[str, str]]
         ) -> list[str]:
    """Draws one figure; ``fixed_of(folder)`` gives a sweep's fixed knobs (KNOB -> text)."""
    return KINDS[kind][1](settings, fixed_of)
