"""``python -m simulation.sweep``: value parsing, validation before any run, the per-point
summary, and (with real processes) recording and resuming."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from simulation.experiments import sweep
from simulation.experiments.statistics import t_interval, wilson_interval
from simulation.experiments.sweep import (
    SweepError,
    expand_values,
    normalize_knob,
    parse_seeds,
    row_from_results,
    summarize_rows,
)

# --- values and knobs ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("poisoned:0,poisoned:3,poisoned:5", ["poisoned:0", "poisoned:3", "poisoned:5"]),
    (" 0.5 , 1.0 ", ["0.5", "1.0"]),
    ("poisoned:4,lazy:1;poisoned:2", ["poisoned:4,lazy:1", "poisoned:2"]),
    ("poisoned:4,lazy:1;", None),  # a trailing separator is an empty value: an error
    ("poisoned:0..3", ["poisoned:0", "poisoned:1", "poisoned:2", "poisoned:3"]),
    ("5..21..8", ["5", "13", "21"]),
    ("0..7..3", ["0", "3", "6"]),
    ("2..2", ["2"]),
    ("1,4..5,9", ["1", "4", "5", "9"]),
    ("poisoned:1..2,lazy:0..1;", None),
    ("poisoned:1..2,lazy:0..1;crash:1",
     ["poisoned:1,lazy:0", "poisoned:1,lazy:1", "poisoned:2,lazy:0", "poisoned:2,lazy:1",
      "crash:1"]),
    ("2**250..252", ["2**250", "2**251", "2**252"]),
    ("", [""]),
    ("hash", ["hash"]),
])
def test_expand_values(text: str, expected: list[str] | None) -> None:
    if expected is None:
        with pytest.raises(SweepError):
            expand_values(text)
    else:
        assert expand_values(text) == expected


@pytest.mark.parametrize("text", ["5..1", "1..5..0", "1..5..-2", "0.1..0.5", "a..b", "1..",
                                  "..3", "1...3", "1,,2", "0..100000"])
def test_bad_values_are_errors(text: str) -> None:
    with pytest.raises(SweepError):
        expand_values(text)


@pytest.mark.parametrize("name", ["EMPLOYEES_NUM", "employees_num", "employees-num",
                                  "--employees-num", " Employees-Num "])
def test_knob_names_are_normalised(name: str) -> None:
    assert normalize_knob(name) == "EMPLOYEES_NUM"


def test_unknown_knob_suggests_a_close_one() -> None:
    with pytest.raises(SweepError, match="EMPLOYEES_NUM"):
        normalize_knob("employee-num")


def test_seeds() -> None:
    assert parse_seeds("3") == [1, 2, 3]
    assert parse_seeds("4..6") == [4, 5, 6]
    for bad in ("0", "-1", "x", "6..4", "1.5"):
        with pytest.raises(SweepError):
            parse_seeds(bad)


def test_plan_is_the_product_times_seeds_and_ids_are_stable() -> None:
    sets = ["ADVERSARIES=poisoned:0..2", "POISON_RATE=0.5,1.0", "employees-num=7"]
    plan, errors = sweep.build_plan(sets, {"TRAINER": "hash"}, "2")
    assert errors == [] and plan is not None
    assert plan.varied_knobs == ["ADVERSARIES", "POISON_RATE"]
    assert plan.fixed == {"EMPLOYEES_NUM": "7", "TRAINER": "hash"}
    assert len(plan.runs) == 3 * 2 * 2
    assert len({r.run_id for r in plan.runs}) == 12
    again, _ = sweep.build_plan(sets, {"TRAINER": "hash"}, "2")
    assert again is not None and [r.run_id for r in again.runs] == [
        r.run_id for r in plan.runs]
    first = plan.runs[0]
    assert first.run_id.startswith("adversaries-poisoned-0__poison-rate-0.5__seed-1__")
    # Another fixed knob is another scenario: same slug, different id.
    other, _ = sweep.build_plan(sets, {"TRAINER": "hash", "MAX_TICKS": "500"}, "2")
    assert other is not None and other.runs[0].run_id != first.run_id
    # The same value spelled differently is the same run.
    a, _ = sweep.build_plan(["TD_COINSTAKE=2**252,2**251"], {}, "1")
    b, _ = sweep.build_plan([f"TD_COINSTAKE={2**252},2**251"], {}, "1")
    assert a is not None and b is not None and a.runs[0].digest == b.runs[0].digest


@pytest.mark.parametrize(("argv", "message"), [
    (["--set", "EMPLOYEE_NUM=4,5"], "unknown knob"),
    (["--set", "EMPLOYEES_NUM=4,five"], "not a valid int"),
    (["--set", "POISON_RATE=0.5,x"], "not a valid float"),
    (["--set", "EMPLOYEES_NUM=4,5", "--set", "ADVERSARIES=poisoned:0,poisoned:5"],
     "ADVERSARIES lists 5 adversaries but EMPLOYEES_NUM is 4"),
    (["--set", "STAKEHOLDERS_NUM=2..20..9"], "exceeds EMPLOYEES_NUM"),
    (["--set", "SEED=1,2"], "--seeds"),
    (["--seed", "3"], "--seeds"),
    (["--set", "EMPLOYEES_NUM=4,5", "--employees-num", "6"], "more than once"),
    (["--set", "TRAINER=hash,hash"], "listed twice"),
    (["--set", "EMPLOYEES_NUM"], "KNOB=VALUES"),
    (["--seeds", "0"], "--seeds"),
    (["--jobs", "0"], "--jobs"),
])
def test_invalid_input_exits_2_before_any_run(tmp_path: Path, capsys: pytest.CaptureFixture,
                                              argv: list[str], message: str) -> None:
    out = tmp_path / "out"
    assert sweep.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ")
    assert not (out / "runs").exists()


def test_dry_run_lists_the_runs_and_runs_nothing(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    argv = ["--set", "ADVERSARIES=poisoned:0..2", "--seeds", "2", "--out", str(out),
            "--dry-run"]
    assert sweep.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 + 1 and lines[-1] == "6 runs: 0 recorded, 6 to run"
    assert "ADVERSARIES=poisoned:2 seed=2" in lines[-2]
    assert not out.exists()


# --- per-point summaries -------------------------------------------------------------------------


def test_plots_take_points_whose_interval_misses_the_mean_by_rounding(
        tmp_path: Path) -> None:
    """A study stopped here once: matplotlib refused an error bar of -1e-16 (a mean of
    0.1 with an interval computed apart as [0.10000000000000002, ...])."""
    rows = [_row("0.5", seed, ticks=2000, model_accuracy=0.1, finished=False)
            for seed in range(1, 13)]
    points = summarize_rows(rows, ["POISON_RATE"])
    points[0]["model_accuracy_ci95_low"] = 0.10000000000000002
    points[0]["ticks_ci95_high"] = 1999.9999999999998
    written = sweep.plot_points(points, ["POISON_RATE"], tmp_path, "rounding")
    assert written and all(path.stat().st_size > 0 for path in written)


def _row(rate: str, seed: int, **values: object) -> dict[str, object]:
    base = {"POISON_RATE": rate, "seed": seed, "exit_code": 0, "self_check_passed": True,
            "finished": True, "ticks": 10, "model_accuracy": None,
            "employer_poisoned": False, "honest_poisoned_blocks": 0}
    return {**base, **values}


def test_summarize_rows_counts_failures_and_skips_blanks() -> None:
    rows = [
        _row("1.0", 1, ticks=30, employer_poisoned=True, honest_poisoned_blocks=2,
             model_accuracy=0.5),
        _row("0.5", 2, ticks=20, model_accuracy=0.9),
        _row("0.5", 1, ticks=10, model_accuracy=None),
        _row("0.5", 3, ticks=9999, exit_code=3, self_check_passed=False, finished=False,
             employer_poisoned=True, model_accuracy=0.1),
        _row("0.5", 4, ticks=30, model_accuracy=""),
    ]
    points = summarize_rows(rows, ["POISON_RATE"])
    assert [p["POISON_RATE"] for p in points] == ["0.5", "1.0"]  # numeric order
    half, full = points
    assert half["n"] == 4 and half["n_self_check_failed"] == 1
    assert half["ticks_mean"] == pytest.approx(20.0)  # 10, 20, 30: the failure left out
    assert half["ticks_sd"] == pytest.approx(10.0)
    low, high = t_interval([10.0, 20.0, 30.0])
    assert low < 0  # the t interval of the mean of 10, 20, 30 reaches below zero ...
    assert (half["ticks_ci95_low"], half["ticks_ci95_high"]) == (0.0, high)  # ... ticks do not
    assert half["model_accuracy_mean"] == pytest.approx(0.9)  # blanks skipped
    assert half["model_accuracy_sd"] is None and half["model_accuracy_ci95_low"] is None
    assert half["finished_rate"] == 1.0 and half["employer_poisoned_rate"] == 0.0
    assert half["self_check_failed_rate"] == 0.25
    assert half["self_check_failed_ci95_low"] == pytest.approx(wilson_interval(1, 4)[0])
    assert full["n"] == 1 and full["employer_poisoned_rate"] == 1.0
    assert full["honest_chain_poisoned_rate"] == 1.0
    assert full["ticks_mean"] == 30 and full["ticks_ci95_low"] is None  # n = 1: no interval
    assert full["forks_mean"] is None  # no value at all: blank


def test_summarize_rows_when_every_run_failed() -> None:
    rows = [_row("0.5", s, self_check_passed=False, exit_code=3) for s in (1, 2)]
    (point,) = summarize_rows(rows, ["POISON_RATE"])
    assert point["n"] == 2 and point["n_self_check_failed"] == 2
    assert point["ticks_mean"] is None and point["finished_rate"] is None
    assert point["self_check_failed_rate"] == 1.0


def test_row_from_results_never_crashes_on_missing_keys() -> None:
    empty = row_from_results({}, 1)
    assert empty["self_check_passed"] is False  # not checked: not passed
    assert row_from_results({"self_check": {"passed": True}}, 0)["self_check_passed"] is True
    assert row_from_results({"self_check": {"passed": "yes"}}, 0)["self_check_passed"] is False
    assert empty["ticks"] is None and empty["employer_poisoned"] is None
    none = row_from_results(None, 3)
    assert none["self_check_passed"] is False and none["chain_length"] is None
    odd = row_from_results({"employer": None, "chain": [], "self_check": "?"}, 0)
    assert odd["employer_model_source"] is None and odd["chain_length"] is None
    full = row_from_results({
        "finished": True, "ticks": 7, "chain": {"length": 3}, "forks": 1,
        "honest": {"poisoned_blocks": 0}, "transactions": {"issued": 5, "included": 4},
        "employer": {"chain_length": 3, "poisoned_blocks": 2, "model_source": "poisoned",
                     "model_test_accuracy": 0.25},
        "model": {"test_accuracy": 0.8},
        "self_check": {"passed": False,
                       "failures": [{"check": "coins", "detail": "do not add up"}]},
    }, 3)
    assert full["self_check_passed"] is False
    assert full["self_check_failures"] == "coins: do not add up"
    assert full["employer_poisoned"] is True and full["model_accuracy"] == 0.25
    assert full["honest_model_accuracy"] == 0.8 and full["transactions_included"] == 4


@pytest.mark.parametrize(("code", "results", "interrupted"), [
    (130, None, True), (143, {"interrupted": True}, True), (-9, None, True),
    (-15, {}, True), (0, {"interrupted": True}, True), (0, {}, False),
    (1, {"interrupted": False}, False), (3, None, False), (2, None, False),
])
def test_which_runs_count_as_interrupted(code: int, results: dict | None,
                                         interrupted: bool) -> None:
    assert sweep.is_interrupted(code, results) is interrupted


def test_x_axis_of_adversary_counts_and_categories() -> None:
    xs, label, ticks = sweep.x_axis("ADVERSARIES", ["", "poisoned:2", "poisoned:10"])
    assert (xs, label, ticks) == ([0.0, 2.0, 10.0], "poisoned employees", None)
    xs, label, ticks = sweep.x_axis("ADVERSARIES", ["lazy:1", "poisoned:2"])
    assert xs == [0.0, 1.0] and ticks == ["lazy:1", "poisoned:2"]
    xs, label, ticks = sweep.x_axis("TD_COINSTAKE", ["2**4", "8"])
    assert xs == [16.0, 8.0] and ticks is None


# --- with processes -----------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _mtimes(runs: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in runs.glob("*.row.json")}


@pytest.mark.processes
def test_end_to_end_records_and_resumes(tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "tmp"
    # BACKEND lockstep: the sweep starts main.py as for any backend, and each run takes
    # about a second instead of five (main.py over the process backend is tested in
    # test_processes and test_run_folder).
    argv = ["--set", "EMPLOYEES_NUM=4", "--set", "TARGET_BLOCKCHAIN_LENGTH=3",
            "--set", "TRAINER=hash", "--set", "ADVERSARIES=poisoned:0,poisoned:1",
            "--set", "BACKEND=lockstep",
            "--seeds", "2", "--jobs", "2", "--out", str(out), "--quiet"]
    assert sweep.main(argv) == 0
    assert "4 runs: 0 already recorded (skipped), 4 to run" in capsys.readouterr().out

    runs = _read_csv(out / "runs.csv")
    assert len(runs) == 4
    assert list(runs[0]) == ["ADVERSARIES", *sweep.RUN_COLUMNS]
    assert [(r["ADVERSARIES"], r["seed"]) for r in runs] == [
        ("poisoned:0", "1"), ("poisoned:0", "2"), ("poisoned:1", "1"), ("poisoned:1", "2")]
    assert all(r["exit_code"] in ("0", "1") and r["self_check_passed"] == "True"
               for r in runs)
    assert all(r["chain_length"] and r["employer_model_source"] for r in runs)
    assert all(r["model_accuracy"] == "" for r in runs)  # the hash trainer has none
    summary = _read_csv(out / "summary.csv")
    assert [(p["ADVERSARIES"], p["n"]) for p in summary] == [("poisoned:0", "2"),
                                                            ("poisoned:1", "2")]
    assert "employer_poisoned_ci95_high" in summary[0]
    assert (out / "sweep.png").stat().st_size > 0
    # Ordinary outcomes keep their results but not their logs.
    assert len(list((out / "runs").glob("*.row.json"))) == 4
    assert not list((out / "runs").glob("*.log")) and not list((out / "runs").glob("*.out"))
    # Runs start in runs/ and are told not to make main.py's own run folders there.
    assert not (out / "runs" / "runs").exists()

    before = _mtimes(out / "runs")
    assert sweep.main(argv) == 0
    assert "4 runs: 4 already recorded (skipped), 0 to run" in capsys.readouterr().out
    assert _mtimes(out / "runs") == before
    assert len(_read_csv(out / "runs.csv")) == 4

    redo = sorted(before)[1]
    (out / "runs" / redo).unlink()
    assert sweep.main(argv) == 0
    assert "4 runs: 3 already recorded (skipped), 1 to run" in capsys.readouterr().out
    after = _mtimes(out / "runs")
    assert set(after) == set(before)
    assert [n for n in after if after[n] != before[n]] == [redo]


FAKE_MAIN = """
    import json, signal, sys, time
    from pathlib import Path

    args = sys.argv[1:]
    results = args[args.index("--results") + 1]
    seed = int(args[args.index("--seed") + 1])

    def write(data):
        with open(results, "w") as f:
            json.dump(data, f)

    if seed == 1:
        write({"finished": True, "ticks": 5, "chain": {"length": 3},
               "self_check": {"passed": True, "failures": []}})
        sys.exit(0)

    def stop(signum, frame):
        write({"finished": False, "interrupted": True})
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    Path(results + ".started").touch()
    time.sleep(20)
    sys.exit(1)
"""


@pytest.mark.processes
def test_sigterm_stops_the_sweep_and_interrupted_runs_are_redone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    fake = tmp_path / "fake_main.py"
    fake.write_text(textwrap.dedent(FAKE_MAIN))
    monkeypatch.setattr(sweep, "MAIN_SCRIPT", fake)
    out = tmp_path / "out"
    runs = out / "runs"

    def terminate_when_started() -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            # Seed 1 recorded first: a signal forwarded to it would make it interrupted too.
            if list(runs.glob("*.started")) and list(runs.glob("*seed-1__*.row.json")):
                os.kill(os.getpid(), signal.SIGTERM)  # reaches the sweep's handler
                return
            time.sleep(0.05)

    # Not --quiet: without a terminal the sweep prints a line per run instead of a bar.
    argv = ["--set", "TRAINER=hash", "--seeds", "2", "--jobs", "2", "--out", str(out)]
    handler_before = signal.getsignal(signal.SIGTERM)
    killer = threading.Thread(target=terminate_when_started)
    killer.start()
    started = time.monotonic()
    code = sweep.main(argv)
    killer.join()
    assert code == 143
    assert time.monotonic() - started < 10  # the child was told, not waited out
    printed = capsys.readouterr().out
    assert "interrupted by SIGTERM" in printed and "python -m simulation.sweep" in printed
    # The count of done runs (the bar's, or these lines') leaves out the interrupted one.
    assert "[1/2]" in printed and "interrupted, not recorded" in printed
    assert "[2/2]" not in printed
    assert len(list(runs.glob("*.row.json"))) == 1  # the interrupted run is not recorded
    rows = _read_csv(out / "runs.csv")
    assert [r["seed"] for r in rows] == ["1"]
    assert signal.getsignal(signal.SIGTERM) is handler_before  # handlers restored

    # Resume: only the interrupted run is redone; this time it fails its self-check.
    failing = (textwrap.dedent(FAKE_MAIN).replace("seed == 1", "True")
               .replace('"passed": True, "failures": []',
                        '"passed": False, "failures": [{"check": "coins", "detail": "off"}]')
               .replace("sys.exit(0)", "sys.exit(3)"))
    fake.write_text(failing)
    assert sweep.main(argv) == 0
    captured = capsys.readouterr()
    assert "2 runs: 1 already recorded (skipped), 1 to run" in captured.out
    assert "exited 3 (self-check failed)" in captured.err
    rows = _read_csv(out / "runs.csv")
    assert [(r["seed"], r["exit_code"], r["self_check_passed"]) for r in rows] == [
        ("1", "0", "True"), ("2", "3", "False")]
    assert rows[1]["self_check_failures"] == "coins: off"
    assert len(list(runs.glob("*seed-2*.out"))) == 1  # kept: it is what explains the failure
    (point,) = _read_csv(out / "summary.csv")
    assert (point["n"], point["n_self_check_failed"], point["ticks_mean"]) == ("2", "1", "5.0")


def test_a_dry_run_read_in_part_ends_without_a_traceback(tmp_path: Path) -> None:
    """``--dry-run | head``: the listing (3,000 runs, more than a pipe holds) stops when
    the reader closes the pipe, with exit 0 and nothing on stderr."""
    command = [sys.executable, "-m", "simulation.sweep", "--set", "TF_SEED=1..2", "--seeds",
               "1500", "--out", str(tmp_path / "out"), "--dry-run"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             cwd=sweep.ROOT)
    assert child.stdout is not None and child.stderr is not None
    first = child.stdout.readline()
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 0, err
    assert first.strip() and "Traceback" not in err and err == ""


def test_a_sweep_reports_every_problem_at_once(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    """A value of the wrong type no longer hides what the scenario says of the others,
    and a mistyped flag gets the closest ones, not the usage."""
    argv = ["--set", "POISON_RATE=half", "--trainer", "hsh", "--out", str(tmp_path / "o"),
            "--dry-run"]
    assert sweep.main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: POISON_RATE: 'half' is not a valid float",
        "error: TRAINER must be one of keras, hash, got 'hsh' (did you mean hash?)"]
    assert sweep.main(["--employer-confidance", "3", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: unknown flag --employer-confidance (did you mean --employer-confidence, "
        "--employer-fork-choice, --employer-peers?)"]


def test_intervals_are_clipped_to_what_a_measure_can_take_and_shares_beside_counts(
) -> None:
    """Counts are at least 0 and an accuracy at most 1, whatever the t interval says; the
    adversaries' share of the employees stands beside ADVERSARIES' counts."""
    rows = [{"ADVERSARIES": "poisoned:3", "seed": s, "self_check_passed": True,
             "forks": f, "model_accuracy": a, "adversary_share": 0.27273}
            for s, f, a in [(1, 0, 1.0), (2, 0, 1.0), (3, 3, 0.9)]]
    (point,) = summarize_rows(rows, ["ADVERSARIES"])
    assert t_interval([0.0, 0.0, 3.0])[0] < 0 and t_interval([1.0, 1.0, 0.9])[1] > 1
    assert point["forks_ci95_low"] == 0.0 and point["forks_ci95_high"] > 3
    assert point["model_accuracy_ci95_high"] == 1.0 and point["model_accuracy_ci95_low"] < 1
    assert point["adversary_share"] == 0.27273
    row = sweep.row_from_results({"adversaries": {"E1": "poisoned", "E4": "poisoned"},
                                  "scenario": {"EMPLOYEES_NUM": 8}}, 0)
    assert row["adversary_share"] == 0.25


def test_an_axis_of_adversary_counts_knows_the_employees_behind_it(tmp_path: Path) -> None:
    """Counts 0, 3, 6 of 11 (shares from the runs): the plots show the share beside the
    count; points that disagree on the employees (a varied EMPLOYEES_NUM) show none."""
    points = [{"ADVERSARIES": f"poisoned:{k}", "adversary_share": round(k / 11, 5),
               "n": 1, "n_self_check_failed": 0, "forks_mean": k}
              for k in (0, 3, 6)]
    xs, _, ticks = sweep.x_axis("ADVERSARIES", [p["ADVERSARIES"] for p in points])
    assert ticks is None and sweep.employees_behind_counts(xs, points) == 11
    mixed = [*points, {**points[1], "adversary_share": 0.5}]
    assert sweep.employees_behind_counts([*xs, 3.0], mixed) is None
    assert (tmp_path / "sweep.png") in sweep.plot_points(points, ["ADVERSARIES"], tmp_path,
                                                         "shares")
