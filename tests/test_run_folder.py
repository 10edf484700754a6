"""Every run writes one folder (results.json, the log, scenario.json with the command that
re-runs it, pictures), the evaluation plan behind the accuracy picture, and the console's
progress bar."""

from __future__ import annotations

import io
import json
import logging
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import main
from simulation.config import default_scenario, scenario_from_args
from simulation.net import runner
from simulation.net.lockstep import network_result, run_lockstep
from simulation.net.logs import PROGRESS_LOGGER, ConsoleHandler, ProgressBar, wants_progress_bar
from simulation.net.relay import MAX_EVALUATED_STAGES, evaluation_plan
from simulation.node.adversaries import assign_adversaries
from simulation.node.genesis import genesis_of
from simulation.protocol.names import employee_name
from simulation.report import pictures
from simulation.report.reporting import render, summarize

ROOT = Path(__file__).resolve().parent.parent
FILES = {"results.json", "pot_sim.log", "scenario.json", "block_tree.png", "rewards.png"}
BAR_MARKS = ("\r", "█", "blocks 1/")


def small(tmp_path: Path, **changes):
    base = dict(trainer="hash", employees_num=5, target_blockchain_length=4, seed=3,
                log_file=str(tmp_path / "pot_sim.log"))
    base.update(changes)
    return default_scenario().replace(**base)


def main_py(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


# --- the evaluation plan ----------------------------------------------------------------


def test_evaluators_evaluate_every_stage_of_their_chain_and_the_employers_stage():
    live = [(0, "lazy", 3), (1, "honest", 4), (2, "honest", 4), (3, "poisoned", 7),
            (4, "poisoned", 7)]
    assert evaluation_plan(live, 7) == {0: [], 1: [0, 1, 2, 3, 6], 2: [],
                                        3: [0, 1, 2, 3, 4, 5, 6], 4: []}
    assert evaluation_plan([(0, "honest", 0)], 1) == {0: [0]}
    # The poisoned branch a block ahead of the employer: the honest training reaches
    # its tip stage too, so the tip's secret can be judged.
    assert evaluation_plan([(0, "honest", 4), (1, "poisoned", 9)], 8) == {
        0: [0, 1, 2, 3, 7, 8], 1: list(range(9))}
    assert evaluation_plan([(0, "honest", 0)], None) == {0: []}  # genesis certifies none


def test_a_long_chain_evaluates_only_its_last_stages():
    plan = evaluation_plan([(0, "honest", 500)], 3)
    assert plan[0] == [2, *range(500 - MAX_EVALUATED_STAGES, 500)]


# --- scenario.json and the re-run command -----------------------------------------------


def test_the_rerun_command_names_only_changed_knobs_and_reads_back_the_same_scenario():
    scenario = default_scenario().replace(
        trainer="hash", td_coinstake=2**250, adversaries="poisoned:2,lazy:1",
        poison_rate=0.25, log_file="my runs/a log.txt", bh_coinstake=12345)
    command = runner.rerun_command(scenario)
    assert command.startswith("python main.py ")
    assert "--td-coinstake '2**250'" in command and "'my runs/a log.txt'" in command
    assert "--seed" not in command and "--employees-num" not in command
    words = shlex.split(command)
    args = main.build_parser().parse_args(words[2:])
    assert scenario_from_args(args) == scenario
    assert runner.rerun_command(default_scenario()) == "python main.py"
    record = runner.scenario_record(scenario)
    assert record["knobs"] == scenario.knobs()
    assert record["flags"]["--poison-rate"] == "0.25"
    assert record["changed"]["POISON_RATE"] == {"value": 0.25, "default": 0.5}
    assert set(record["changed"]) == {"TRAINER", "TD_COINSTAKE", "ADVERSARIES",
                                      "POISON_RATE", "LOG_FILE", "BH_COINSTAKE"}


def test_a_default_folder_name_that_exists_gets_a_suffix(tmp_path):
    path = str(tmp_path / "runs" / "20260101-120000-seed1")
    first, created = runner.make_run_dir(path, unique=True)
    assert first == path and created == [str(tmp_path / "runs"), path]
    second, _ = runner.make_run_dir(path, unique=True)
    third, _ = runner.make_run_dir(path, unique=True)
    assert (second, third) == (path + "-2", path + "-3")
    assert re.fullmatch(r"runs/\d{8}-\d{6}-seed7", runner.default_run_dir(7))


def test_a_folder_given_again_loses_only_the_files_of_the_earlier_run(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "accuracy.png").write_text("old")
    (tmp_path / "out" / "notes.txt").write_text("mine")
    folder, created = runner.make_run_dir(str(tmp_path / "out"))
    assert created == []
    assert sorted(p.name for p in Path(folder).iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        runner.make_run_dir(str(tmp_path / "file"))


# --- the block tree in the summary, and the pictures from it -----------------------------


@pytest.fixture(scope="module")
def poisoned_majority():
    """11 employees, 6 poisoned (hash trainer, in one process): the honest chain reaches
    3 blocks while the employer follows a longer poisoned branch."""
    scenario = default_scenario().replace(
        trainer="hash", employees_num=11, adversaries="poisoned:6", seed=1,
        target_blockchain_length=3, max_ticks=200, log_file="unused.log")
    run = run_lockstep(scenario)
    roles = assign_adversaries(scenario)
    summary = summarize(scenario, genesis_of(scenario), network_result(run), roles, 1.0)
    return run, roles, summary


def test_the_summary_lists_every_block_of_every_honest_tree_and_flags_poisoned_ones(
        poisoned_majority):
    run, roles, summary = poisoned_majority
    blocks = {b["hash"]: b for b in summary["blocks"]}
    honest = [e for e in run.employees if e.index not in roles]
    for employee in honest:
        for record in employee.tree.records.values():
            block = blocks[record.hash.hex()]
            assert block["height"] == record.height and block["seen_by_honest"]
            if record.parent is not None:
                assert block["parent"] == record.parent.hex()
                trainer = employee.names.employee_index[record.block.header.author]
                assert block["trainer"] == employee_name(trainer)
                assert block["poisoned"] is False  # an honest tree holds no poisoned block
    honest_secrets = [r.secret for r in honest[0].trained]
    poisoned = [b for b in summary["blocks"] if b["poisoned"]]
    assert poisoned and all(not b["seen_by_honest"] for b in poisoned)
    assert {b["trainer"] for b in poisoned} <= {employee_name(i) for i in roles}
    employer = summary["employer"]
    assert employer["model_source"] == "poisoned"
    on_employer = [b for b in summary["blocks"] if b["on_employer_chain"] and b["height"]]
    assert len(on_employer) == employer["chain_length"] - 1 == employer["poisoned_blocks"]
    assert all(b["poisoned"] for b in on_employer)
    assert [b["hash"] for b in summary["blocks"] if b["on_chain"]] == \
        [b["hash"] for b in summary["chain"]["blocks"]]
    for entry in run.employer.report().tree:
        stage = entry.height - 1
        assert blocks[entry.hash.hex()]["poisoned"] == (entry.secret != honest_secrets[stage])


def test_pictures_are_drawn_from_the_summary(poisoned_majority, tmp_path, caplog):
    _, _, summary = poisoned_majority
    with caplog.at_level(logging.INFO, logger="pot.pictures"):
        written = pictures.draw_all(summary, str(tmp_path))
    assert written == ["block_tree.png", "rewards.png"]
    assert "no accuracy picture: the hash trainer" in caplog.text
    for name in written:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    layout = pictures.tree_layout(summary["blocks"])
    assert set(layout) == {b["hash"] for b in summary["blocks"]}
    for block in summary["blocks"]:
        height, lane = layout[block["hash"]]
        assert height == block["height"]
        assert (lane == 0) == block["on_chain"]
        assert lane > 0 or block["on_chain"] or not block["seen_by_honest"]


def colour_pixels(path, colour: str) -> int:
    """Pixels of a PNG within 2% of ``colour`` ("#rrggbb") in every channel."""
    import matplotlib.image
    import numpy as np

    image = matplotlib.image.imread(str(path))[..., :3]
    target = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(image - target).max(axis=-1) < 0.02).sum())


def test_the_pictures_draw_what_the_summary_says(poisoned_majority, tmp_path):
    """Not only a PNG header: the poisoned blocks are drawn in the poisoned colour, and
    the same summary with every block honest draws none of it; the poisoned employees'
    reward bars likewise."""
    _, _, summary = poisoned_majority
    assert any(b.get("poisoned") for b in summary["blocks"])
    (tmp_path / "as run").mkdir()
    (tmp_path / "honest").mkdir()
    pictures.draw_all(summary, str(tmp_path / "as run"))
    cleaned = json.loads(json.dumps(summary))
    for block in cleaned["blocks"]:
        block["poisoned"] = False
    cleaned["adversaries"] = {}
    pictures.draw_all(cleaned, str(tmp_path / "honest"))
    for name in ("block_tree.png", "rewards.png"):
        assert colour_pixels(tmp_path / "as run" / name, pictures.POISONED) > 100, name
        assert colour_pixels(tmp_path / "honest" / name, pictures.POISONED) == 0, name
    # the blocks that were poisoned are drawn honest instead
    assert colour_pixels(tmp_path / "honest" / "block_tree.png", pictures.HONEST) > \
        colour_pixels(tmp_path / "as run" / "block_tree.png", pictures.HONEST)


def test_the_accuracy_picture_shows_both_branches(poisoned_majority, tmp_path):
    _, _, summary = poisoned_majority
    keras = json.loads(json.dumps(summary))
    keras["model"]["trainer"] = "keras"
    keras["model"]["accuracy_by_stage"] = [{"stage": 0, "accuracy": 0.2},
                                           {"stage": 1, "accuracy": 0.3}]
    keras["poisoned_branch"]["accuracy_by_stage"] = [{"stage": 0, "accuracy": 0.15}]
    keras["employer"].update(model_stage=0, model_test_accuracy=0.15)
    assert pictures.draw_accuracy(keras, str(tmp_path / "accuracy.png"))
    # the honest (reference) line and the poisoned branch's line are both drawn
    assert colour_pixels(tmp_path / "accuracy.png", pictures.REFERENCE) > 200
    assert colour_pixels(tmp_path / "accuracy.png", pictures.POISONED) > 100
    keras["poisoned_branch"]["accuracy_by_stage"] = []
    assert pictures.draw_accuracy(keras, str(tmp_path / "honest_only.png"))
    assert colour_pixels(tmp_path / "honest_only.png", pictures.POISONED) < \
        colour_pixels(tmp_path / "accuracy.png", pictures.POISONED)


def test_a_picture_that_fails_is_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(pictures, "draw_all", _fail)
    scenario = default_scenario()
    summary = {"model": {"trainer": "hash"}}
    with caplog.at_level(logging.WARNING, logger="pot.runner"):
        runner._fill_run_folder(scenario, summary, str(tmp_path))  # does not raise
    assert "could not draw the run's pictures (RuntimeError: no ink)" in caplog.text
    assert (tmp_path / "results.json").exists() and (tmp_path / "scenario.json").exists()


def _fail(*args, **kwargs):
    raise RuntimeError("no ink")


# --- real runs ----------------------------------------------------------------------------


@pytest.mark.processes
def test_a_run_writes_its_folder_and_its_rerun_command_gives_the_same_chain(tmp_path):
    results = tmp_path / "results.json"
    outcome = runner.run(small(tmp_path), quiet=True, results_path=str(results),
                         run_dir=str(tmp_path / "run"))
    assert outcome.exit_code == 0
    folder = tmp_path / "run"
    assert {p.name for p in folder.iterdir()} == FILES
    assert (folder / "results.json").read_text() == results.read_text()
    assert (folder / "pot_sim.log").read_text() == (tmp_path / "pot_sim.log").read_text()
    assert "=== PoT run summary ===" in (folder / "pot_sim.log").read_text()
    summary = json.loads(results.read_text())
    assert summary["run_dir"] == str(folder)
    record = json.loads((folder / "scenario.json").read_text())
    assert record["rerun"] == summary["rerun"]
    assert record["knobs"]["EMPLOYEES_NUM"] == 5 and record["flags"]["--seed"] == "3"
    text = render(summary)
    assert text.splitlines()[-2:] == [f"Re-run: {record['rerun']}", f"Run folder: {folder}"]

    words = shlex.split(record["rerun"])
    assert words[:2] == ["python", "main.py"]
    again = tmp_path / "again"
    again.mkdir()
    done = main_py(*words[2:], "--quiet", "--results", "r.json", "--no-run-dir", cwd=again)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (again / "runs").exists()
    assert json.loads((again / "r.json").read_text())["chain"]["tip_hash"] == \
        summary["chain"]["tip_hash"]


@pytest.mark.processes
def test_an_uncreatable_run_folder_stops_main_before_any_process_starts(tmp_path):
    (tmp_path / "a-file").write_text("")
    done = main_py("--trainer", "hash", "--run-dir", "a-file/run", cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --run-dir 'a-file/run' cannot "
                                                   "be created: ")
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no log, no folder


@pytest.mark.processes
def test_failing_pictures_leave_the_exit_code_and_the_other_files(tmp_path, monkeypatch):
    monkeypatch.setattr(pictures, "draw_block_tree", _fail)
    outcome = runner.run(small(tmp_path), quiet=True, run_dir=str(tmp_path / "run"))
    assert outcome.exit_code == 0
    assert {p.name for p in (tmp_path / "run").iterdir()} == FILES - {"block_tree.png"}
    log = (tmp_path / "run" / "pot_sim.log").read_text()
    assert "could not draw block_tree.png: RuntimeError: no ink" in log


@pytest.mark.processes
def test_an_interrupted_run_writes_its_folder_too(tmp_path):
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--trainer", "hash", "--employees-num", "4",
         "--target-blockchain-length", "1000", "--max-ticks", "100000", "--tick-seconds",
         "0.01", "--quiet", "--log-file", "run.log", "--run-dir", "run"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        log = tmp_path / "run.log"
        while not (log.exists() and "longest honest chain has 2 blocks" in log.read_text()):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err[-2000:]
    folder = tmp_path / "run"
    assert {p.name for p in folder.iterdir()} == FILES
    results = json.loads((folder / "results.json").read_text())
    assert results["interrupted"] is True and results["exit_code"] == 130
    assert "INTERRUPTED" in (folder / "pot_sim.log").read_text()
    assert "\nRun folder: run\n" in out


# --- the progress bar ----------------------------------------------------------------------


def progress(tick: int, blocks: int) -> logging.LogRecord:
    return logging.LogRecord(PROGRESS_LOGGER, logging.INFO, __file__, 0,
                             f"tick {tick}: longest honest chain has {blocks} blocks "
                             f"(live 6/6)", None, None)


def test_the_bar_follows_the_progress_lines_and_other_lines_go_above_it():
    stream = io.StringIO()
    console = ConsoleHandler(stream, ProgressBar(6, stream))
    console.setFormatter(logging.Formatter("%(levelname)-7s %(message)s"))
    console.handle(progress(10, 2))
    console.handle(logging.LogRecord("pot.network", logging.WARNING, __file__, 0,
                                     "network cut off E3", None, None))
    console.handle(progress(30, 4))
    console.close_bar()
    console.handle(progress(40, 5))  # after the bar: a line again
    text = stream.getvalue()
    assert "blocks 2/6" in text and "tick 10" in text
    assert "blocks 4/6" in text and "tick 30, ETA " in text
    assert "WARNING network cut off E3\n" in text
    assert "tick 10: longest honest chain" not in text  # the bar replaced the line
    assert text.endswith("INFO    tick 40: longest honest chain has 5 blocks (live 6/6)\n")


def test_no_bar_with_quiet_or_without_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert wants_progress_bar(False, Terminal())
    assert not wants_progress_bar(True, Terminal())
    assert not wants_progress_bar(False, io.StringIO())


@pytest.mark.processes
def test_a_captured_console_gets_progress_lines_and_no_bar(tmp_path):
    done = main_py("--trainer", "hash", "--employees-num", "4", "--target-blockchain-length",
                   "3", "--seed", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "longest honest chain has 3 blocks" in done.stdout
    for mark in BAR_MARKS:
        assert mark not in done.stdout + done.stderr
    (folder,) = (tmp_path / "runs").iterdir()  # the default run folder
    assert re.fullmatch(r"\d{8}-\d{6}-seed2", folder.name)
    assert f"Run folder: runs/{folder.name}" in done.stdout
    assert FILES <= {p.name for p in folder.iterdir()}


@pytest.mark.parametrize(("words", "lines"), [
    (["--employer-confidance", "5"],
     ["error: unknown flag --employer-confidance (did you mean --employer-confidence, "
      "--employer-fork-choice, --employer-peers?)"]),
    # No abbreviations: a prefix of a flag is not that flag.
    (["--employees", "5", "--seed=3", "--sed=4"],
     ["error: unknown flag --employees (did you mean --employees-num, "
      "--employer-peers, --employer-confidence?)",
      "error: unknown flag --sed (did you mean --seed, --tf-seed?)"]),
    (["--trainer", "hash", "stray"],
     ["error: unexpected argument 'stray': every option is a --flag VALUE"]),
    (["--employees-num", "x"],
     ["error: argument --employees-num: not an integer: 'x'"]),
])
def test_a_mistyped_command_line_gets_one_line_per_problem(words, lines, capsys):
    with pytest.raises(SystemExit) as stopped:
        main.build_parser().parse_args(words)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines() == lines
