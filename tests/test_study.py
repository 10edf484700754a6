"""Study files (studies/*.toml): every committed study re-runs from its file, a bad file
is refused with one line per problem before anything runs, and a study runs its sweeps
(resumably) and draws its figures."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest

from simulation.experiments import study as studies
from simulation.experiments import sweep

ROOT = Path(__file__).resolve().parent.parent
STUDY_FILES = sorted((ROOT / "studies").glob("*.toml"))


def _slug(run_id: str) -> str:
    """A run id without its scenario digest: the varied values and the seed. The digest
    covers every knob, so it changes whenever a knob is added to the simulator."""
    return run_id.rpartition("__")[0]


def test_there_are_study_files():
    assert {p.name for p in STUDY_FILES} >= {"poisoning.toml", "attacks.toml"}


@pytest.mark.parametrize("path", STUDY_FILES, ids=[p.name for p in STUDY_FILES])
def test_a_study_file_plans_exactly_the_runs_its_committed_folders_hold(path):
    study = studies.load_study(path)
    assert (ROOT / study.page).exists()
    for spec in study.sweeps:
        plan, errors = sweep.build_plan(list(spec.sets), dict(spec.fixed), spec.seeds)
        assert errors == [] and plan is not None
        with open(spec.out / "runs.csv", encoding="utf-8") as handle:
            committed = sorted(_slug(row["run_id"]) for row in csv.DictReader(handle))
        assert sorted(_slug(run.run_id) for run in plan.runs) == committed, spec.out


def test_a_bad_study_file_gets_one_line_per_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(textwrap.dedent("""
        titel = "typo"
        [[sweeps]]
        out = "o1"
        set = { ADVERSARIES = "poisoned:0..2", EMPLOYES_NUM = "5" }
        [[sweeps]]
        out = "o1"
        seeds = "0"
        fixed = { TRAINER = "hsh" }
        [[figures]]
        kind = "thresold"
        [[figures]]
        kind = "threshold"
        curves = [{ sweep = "elsewhere" }]
    """))
    with pytest.raises(studies.StudyError) as refused:
        studies.load_study(bad)
    where = str(bad)
    problems = refused.value.problems
    assert problems[0].startswith(f"{where}: unknown key 'titel'")
    assert any("sweep o1: unknown knob 'EMPLOYES_NUM'" in p for p in problems)
    assert f"{where}: sweep o1: another sweep of the study writes there too" in problems
    assert any(p.startswith(f"{where}: sweep o1: --seeds") for p in problems)
    assert any("TRAINER must be one of keras, hash, got 'hsh'" in p for p in problems)
    assert any(p.startswith(f"{where}: figure thresold: unknown kind") for p in problems)
    assert f"{where}: figure threshold: needs output = \"PATH.png\"" in problems
    assert any("curve 1: elsewhere is neither a sweep" in p for p in problems)
    assert len(problems) == len(set(problems))


FAKE_MAIN = """
    import json, sys
    args = sys.argv[1:]
    value = lambda flag, default: args[args.index(flag) + 1] if flag in args else default
    poisoned = int(value("--adversaries", "poisoned:0").rpartition(":")[2])
    employees = int(value("--employees-num", "11"))
    fooled = 2 * poisoned > employees
    with open(value("--results", None), "w") as f:
        json.dump({"finished": True, "ticks": 10 + poisoned, "chain": {"length": 6},
                   "employer": {"poisoned_blocks": 3 if fooled else 0,
                                "model_source": "poisoned" if fooled else "honest"},
                   "self_check": {"passed": True, "failures": []}}, f)
"""


@pytest.mark.processes
def test_a_study_runs_its_sweeps_resumably_and_draws_its_figure(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "fake_main.py"
    fake.write_text(textwrap.dedent(FAKE_MAIN))
    monkeypatch.setattr(sweep, "MAIN_SCRIPT", fake)
    small, large = tmp_path / "small", tmp_path / "large"
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(f"""
        title = "tiny"
        fixed = {{ TRAINER = "hash" }}
        [[sweeps]]
        out = "{small}"
        set = {{ EMPLOYEES_NUM = "5", ADVERSARIES = "poisoned:0..3" }}
        [[sweeps]]
        out = "{large}"
        seeds = "2"
        set = {{ ADVERSARIES = "poisoned:4,poisoned:6" }}
        [[figures]]
        kind = "threshold"
        output = "{tmp_path / 'threshold.png'}"
        curves = [{{ sweep = "{small}", label = "5" }}, {{ sweep = "{large}", label = "11" }}]
    """))
    assert studies.main(["--study", str(path), "--quiet", "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "threshold.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(small / "runs.csv", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 4
    # The figure's points: the adversaries' share of each sweep's employees (5 and 11).
    assert "  share 0.60 n   1 failed 0 employer poisoned 1.0" in printed
    assert "  share 0.36 n   2 failed 0 employer poisoned 0.0" in printed
    assert "  share 0.55 n   2 failed 0 employer poisoned 1.0" in printed
    # Run again: every run is recorded, nothing is redone.
    assert studies.main(["--study", str(path), "--quiet"]) == 0
    again = capsys.readouterr().out
    assert "4 runs: 4 already recorded (skipped), 0 to run" in again
    assert "4 runs: 4 already recorded (skipped), 0 to run" in again.split("sweep 2 of 2")[1]


def test_the_sweep_command_hands_a_study_to_the_study_runner(monkeypatch):
    from simulation import sweep as entry

    seen = []
    monkeypatch.setattr(studies, "main", lambda words: seen.append(words) or 7)
    assert entry.main(["--study", "x.toml", "--dry-run"]) == 7
    assert seen == [["--study", "x.toml", "--dry-run"]]


@pytest.mark.parametrize("study_file, kind", [("attacks.toml", "attack-table"),
                                              ("useful_work.toml", "useful-work-table"),
                                              ("topology.toml", "peer-graph-tables")])
def test_a_declared_table_redraws_to_the_committed_one(tmp_path, study_file, kind):
    """The tables the study pages quote come from the committed summaries: drawn again,
    they are the committed files, line for line."""
    from simulation.experiments import figures

    study = studies.load_study(ROOT / "studies" / study_file)
    (figure,) = [f for f in study.figures if f.kind == kind]
    settings = {**figure.settings, "output": str(tmp_path / "table.md")}
    lines = figures.draw(kind, settings, study.fixed_knobs)
    assert lines[0] == f"wrote {tmp_path / 'table.md'}"
    committed = (ROOT / figure.settings["output"]).read_text(encoding="utf-8")
    assert (tmp_path / "table.md").read_text(encoding="utf-8") == committed
    assert len(committed.splitlines()) >= 6


@pytest.mark.parametrize("path", STUDY_FILES, ids=[p.name for p in STUDY_FILES])
def test_every_declared_figure_draws_from_the_committed_summaries(tmp_path, path):
    """The committed data suffice to redraw every figure (into a temporary folder)."""
    from simulation.experiments import figures

    study = studies.load_study(path)
    for number, figure in enumerate(study.figures):
        moved = {key: (str(tmp_path / f"{number}-{key}{Path(value).suffix}")
                       if key in ("output", "table") else value)
                 for key, value in figure.settings.items()}
        if "table" in moved:  # the fairness figure reads the committed CSV without runs
            (tmp_path / Path(moved["table"]).name).write_bytes(
                (ROOT / figure.settings["table"]).read_bytes())
        lines = figures.draw(figure.kind, moved, study.fixed_knobs)
        assert lines[-1].startswith("wrote ") or lines[0].startswith("wrote "), lines
        written = Path(moved["output"])
        assert written.exists() and written.stat().st_size > 1000


def test_the_fairness_table_comes_from_the_runs_results(tmp_path):
    """With the runs' results at hand, the per-factor CSV is computed from them: means and
    t intervals over the seeds that passed their self-check."""
    import json

    from simulation.experiments import fairness_figure

    runs = tmp_path / "sweep" / "runs"
    runs.mkdir(parents=True)
    for seed, (fast, slow, passed) in enumerate([(0.6, 0.4, True), (0.8, 0.2, True),
                                                 (0.1, 0.9, False)], 1):
        groups = {"0.5": {"reward_share": fast, "blocks_share": fast, "compute_share": 0.67},
                  "2": {"reward_share": slow, "blocks_share": slow, "compute_share": 0.33}}
        (runs / f"r{seed}.json").write_text(json.dumps({
            "self_check": {"passed": passed}, "scenario": {"STAGE_TICKS": 5},
            "fairness": {"by_speed_factor": groups}}))
    (runs / "r1.row.json").write_text("{}")  # a row file is not a run's results
    table = fairness_figure.table_from_runs(tmp_path / "sweep")
    assert [(r["speed_factor"], r["runs"], r["reward_share_mean"]) for r in table] == [
        ("0.5", 2, 0.7), ("2", 2, 0.3)]
    from scipy import stats

    half = stats.t.ppf(0.975, 1) * stats.tstd([0.6, 0.8]) / 2 ** 0.5
    assert table[0]["reward_share_ci95_low"] == round(0.7 - half, 4)
    assert table[0]["compute_share"] == 0.67


@pytest.mark.processes
def test_steps_run_after_the_sweeps_in_order_and_stop_at_a_failure(tmp_path, monkeypatch,
                                                                   capsys):
    """A study's scripts run from the repository in order, their output tee'd into the
    file they name (one after another), and a failing step ends the study with its code;
    a dry run lists them and runs nothing."""
    monkeypatch.setattr(studies, "ROOT", tmp_path)
    (tmp_path / "scripts").mkdir()
    for name, code in (("one", 0), ("two", 0), ("three", 5), ("four", 0)):
        (tmp_path / "scripts" / f"{name}.py").write_text(
            f"import pathlib, sys\nprint('{name}', sys.argv[1:], pathlib.Path.cwd())\n"
            f"sys.exit({code})\n")
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent("""
        [[steps]]
        run = ["scripts/one.py", "--x", "1"]
        stdout = "out.txt"
        [[steps]]
        run = ["scripts/two.py"]
        stdout = "out.txt"
        [[steps]]
        run = ["scripts/three.py"]
        [[steps]]
        run = ["scripts/four.py"]
    """))
    assert studies.main(["--study", str(path), "--dry-run"]) == 0
    assert not (tmp_path / "out.txt").exists()
    assert "step 1 of 4: python scripts/one.py --x 1 > out.txt" in capsys.readouterr().out
    assert studies.main(["--study", str(path)]) == 5
    printed = capsys.readouterr()
    assert (tmp_path / "out.txt").read_text().splitlines() == [
        f"one ['--x', '1'] {tmp_path}", f"two [] {tmp_path}"]
    assert "three [] " in printed.out and "four" not in printed.out.replace("of 4", "")
    assert "error: step 3 exited with 5" in printed.err


def test_a_step_must_name_a_script_of_the_repository(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[steps]]\nrun = ["scripts/nowhere.py"]\n[[steps]]\nrun = "x"\n'
                    '[[steps]]\nrun = ["../../etc/passwd"]\n')
    with pytest.raises(studies.StudyError) as refused:
        studies.load_study(path)
    assert refused.value.problems == [
        f"{path}: step 1: no script scripts/nowhere.py in the repository",
        f"{path}: step 2 needs run = [\"SCRIPT.py\", ARGS...]",
        f"{path}: step 3: no script ../../etc/passwd in the repository"]
