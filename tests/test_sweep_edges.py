"""The sweep's rough edges (issue 22, item 5): what the progress count says after an
interrupt or an error, whole flag names only, the columns added later at the end of the
CSV files, and the share of the employees beside a count of them."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path
from typing import Any

import pytest
import tqdm

from simulation.experiments import sweep
from simulation.experiments.sweep import Outcome


def _exit_code(argv: list[str]) -> int:
    try:
        return sweep.main(argv)
    except SystemExit as stopped:  # argparse's own way out
        return int(stopped.code or 0)


class CountingBar:
    """Stands in for tqdm's bar: counts what the bar would show."""

    bars: list[CountingBar] = []

    def __init__(self, *args: Any, total: int = 0, **kwargs: Any) -> None:
        self.total, self.n, self.postfix = total, 0, {}
        self.disable = True  # the sweep then prints a line per run, as without a terminal
        CountingBar.bars.append(self)

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, values: dict[str, int]) -> None:
        self.postfix = values

    def close(self) -> None:
        pass


def test_the_count_of_done_runs_is_the_count_of_recorded_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    """Four runs: one that could not be recorded (an error of the sweep's own), one
    recorded, one interrupted by Ctrl-C, one never started. The bar reaches 1 of 4, and
    the last line says 3 runs are not recorded."""
    def fake_run(run: sweep.Run, runs_dir: Path, launcher: sweep.Launcher,
                 keep_logs: bool) -> Outcome:
        if run.seed == 1:
            return Outcome(run, "error", message="OSError: no space left on device")
        if run.seed == 2:
            return Outcome(run, "recorded", 0)
        if run.seed == 3:
            launcher.stop(signal.SIGINT)  # as the sweep's handler does on Ctrl-C
            return Outcome(run, "interrupted", 130)
        return Outcome(run, "not started")

    monkeypatch.setattr(sweep, "run_one", fake_run)
    monkeypatch.setattr(tqdm, "tqdm", CountingBar)
    CountingBar.bars.clear()
    argv = ["--set", "TRAINER=hash", "--seeds", "4", "--jobs", "1", "--out",
            str(tmp_path / "out")]
    assert sweep.main(argv) == 130
    captured = capsys.readouterr()
    (bar,) = CountingBar.bars
    assert (bar.n, bar.total) == (1, 4)
    assert bar.postfix == {"not recorded": 1}
    # One line per run taken, in the order they ended: the recorded one is the first.
    assert "[1/4] seed-2__" in captured.out and "(interrupted, not recorded)" in captured.out
    assert "[2/4]" not in captured.out and "[3/4]" not in captured.out
    assert "1 runs recorded" in captured.out
    assert "interrupted by SIGINT: 3 runs not recorded" in captured.out
    assert "error: seed-1__" in captured.err


@pytest.mark.parametrize("flag", ["--dry", "--keep", "--qui", "--employer-conf"])
def test_abbreviated_flags_are_refused(flag: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    """A unique prefix of a flag is not that flag (argparse's default would take it)."""
    argv = ["--set", "TRAINER=hash", "--out", str(tmp_path / "out"), flag]
    if flag == "--employer-conf":
        argv.append("3")
    assert _exit_code(argv) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors and errors[0].startswith(f"error: unknown flag {flag} (did you mean")
    assert not (tmp_path / "out").exists()


def _record(run: sweep.Run, runs_dir: Path, poisoned: int, employees: int) -> None:
    results = {"finished": True, "ticks": 10 + poisoned, "chain": {"length": 6},
               "stopped_by": "target reached",
               "adversaries": {f"E{i}": "poisoned" for i in range(poisoned)},
               "scenario": {"EMPLOYEES_NUM": employees},
               "self_check": {"passed": True, "failures": []}}
    row = {"seed": run.seed, **sweep.row_from_results(results, 0), "run_id": run.run_id}
    record = {"run_id": run.run_id, "digest": run.digest, "seed": run.seed,
              "knobs": {**sweep.default_texts(), **run.knobs}, "row": row}
    (runs_dir / f"{run.run_id}.row.json").write_text(json.dumps(record))


def _header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f))


def test_columns_added_later_come_last_and_counts_show_their_share(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(sweep, "PLOTTED", sweep.PLOTTED[:1])  # one panel is enough here
    plan, errors = sweep.build_plan(["ADVERSARIES=poisoned:0,poisoned:3"],
                                    {"TRAINER": "hash"}, "2")
    assert errors == [] and plan is not None
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    for run in plan.runs:
        _record(run, runs_dir, int(run.varied["ADVERSARIES"].rpartition(":")[2]), 11)
    sweep.write_outputs(tmp_path, plan)
    runs = _header(tmp_path / "runs.csv")
    # The columns as they were, then the share of the employees, why a run ended and its
    # Ray node (empty: these runs are local) at the end.
    assert runs[:4] == ["ADVERSARIES", "seed", "exit_code", "self_check_passed"]
    assert runs[-4:] == ["run_id", "adversary_share", "stopped_by", "node"]
    with open(tmp_path / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["stopped_by"] for r in rows} == {"target reached"}
    assert {r["node"] for r in rows} == {""}
    summary = _header(tmp_path / "summary.csv")
    assert summary[:4] == ["ADVERSARIES", "n", "n_self_check_failed", "ticks_mean"]
    assert summary[-1] == "adversary_share"
    with open(tmp_path / "summary.csv", newline="") as f:
        shares = [(p["ADVERSARIES"], p["adversary_share"]) for p in csv.DictReader(f)]
    assert shares == [("poisoned:0", "0.0"), ("poisoned:3", "0.27273")]
    table = capsys.readouterr().out
    assert "poisoned:3 (0.27)" in table
    assert (tmp_path / "sweep.png").stat().st_size > 0


def test_the_share_beside_a_count_of_employees() -> None:
    point = {"ADVERSARIES": "poisoned:14", "adversary_share": 0.45161}
    assert sweep.share_of_employees("ADVERSARIES", "poisoned:14", point, None) == 0.45161
    assert sweep.with_share("poisoned:14", 0.45161) == "poisoned:14 (0.45)"
    assert sweep.share_of_employees("EMPLOYER_CONFIDENCE", "5", {}, 31) == 5 / 31
    assert sweep.share_of_employees("EMPLOYER_CONFIDENCE", "5", {}, None) is None
    assert sweep.share_of_employees("TD_COINSTAKE", "16", {}, 31) is None
    assert sweep.with_share("16", None) == "16"
    xs = [1.0, 3.0, 5.0]
    points = [{"EMPLOYER_CONFIDENCE": str(int(x))} for x in xs]
    # A numeric axis of employee counts gets the share axis; categories and other knobs
    # do not (their labels carry the share instead).
    assert sweep.share_axis_employees("EMPLOYER_CONFIDENCE", None, xs, points, 31) == 31
    assert sweep.share_axis_employees("EMPLOYER_CONFIDENCE", None, xs, points, None) is None
    assert sweep.share_axis_employees("TD_COINSTAKE", None, xs, points, 31) is None
    assert sweep.share_axis_employees("ADVERSARIES", ["a", "b"], xs, points, 31) is None
    counts = [{"ADVERSARIES": f"poisoned:{k}", "adversary_share": round(k / 11, 5)}
              for k in (0, 3, 6)]
    assert sweep.share_axis_employees("ADVERSARIES", None, [0.0, 3.0, 6.0], counts,
                                      None) == 11
    # EMPLOYEES_NUM from the row files: one value, or none.
    records = [{"knobs": {"EMPLOYEES_NUM": "31"}}, {"knobs": {"EMPLOYEES_NUM": "31"}}]
    assert sweep.employees_of(records) == 31
    assert sweep.employees_of([*records, {"knobs": {"EMPLOYEES_NUM": "7"}}]) is None
    assert sweep.employees_of([{"knobs": {}}]) == int(sweep.default_texts()["EMPLOYEES_NUM"])


def test_a_sweep_refuses_the_event_log_and_its_runs_never_write_one(tmp_path, monkeypatch):
    """The event log and its page go into a run folder, which a sweep's runs do not write:
    --set EVENT_LOG_MB is refused with the reason, and every run is told 0 whatever
    constants.py holds."""
    from simulation import config
    from simulation.experiments import sweep

    plan, errors = sweep.build_plan(["EVENT_LOG_MB=5"], {}, "1")
    assert plan is None
    assert errors[0].startswith("EVENT_LOG_MB cannot be set in a sweep (--set): a sweep's "
                                "runs write no run folder")
    monkeypatch.setattr(config, "default_scenario",
                        lambda real=config.default_scenario: real().replace(event_log_mb=3))
    plan, errors = sweep.build_plan(["ADVERSARIES=poisoned:0,poisoned:1"], {}, "1")
    assert errors == [] and plan is not None
    command = sweep.command_for(plan.runs[0], sweep.RunPaths.of(tmp_path, plan.runs[0].run_id))
    assert command[command.index("--event-log-mb") + 1] == "0"
