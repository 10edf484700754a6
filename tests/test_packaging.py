"""``pip install .``: the package and its commands (``pot-sim``, ``pot-sweep``) beside
``python main.py`` and ``python -m simulation.sweep``, which a checkout keeps."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from simulation import cli
from simulation.experiments import sweep

ROOT = Path(__file__).resolve().parent.parent
# What a build reads: pyproject.toml, the requirement files it takes its dependencies
# from, and the package.
BUILD_INPUTS = ("pyproject.toml", "requirements.txt", "requirements-ray.txt")


def _without_pythonpath() -> dict[str, str]:
    # A run in this process may have put the checkout on PYTHONPATH (for the fork server).
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _run(*words: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(w) for w in words], cwd=cwd, env=_without_pythonpath(),
                          capture_output=True, text=True, timeout=120)


@pytest.mark.processes
def test_an_installed_copy_runs_its_commands_without_the_checkout(tmp_path: Path) -> None:
    """Built and installed offline into a throwaway environment that sees this one's
    packages (pip, setuptools, the dependencies) but not the checkout: both commands
    answer --help under their own names, pot-sim runs a small network, and pot-sweep
    runs one, which it starts as ``python -m simulation`` (there is no main.py)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "simulation", source / "simulation",
                    ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                     cwd=tmp_path).stdout.strip())
    # Appended after the copy's own site-packages: its installed package comes first.
    (site / "_this_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = _run(python, "-m", "pip", "install", "--disable-pip-version-check", "-q",
                     "--no-index", "--no-deps", "--no-build-isolation", source, cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    work = tmp_path / "work"  # not the checkout: `simulation` is only the installed one
    work.mkdir()
    where = _run(python, "-c", "import simulation; print(simulation.__file__)", cwd=work)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr
    for command in ("pot-sim", "pot-sweep"):
        helped = _run(bin_dir / command, "--help", cwd=work)
        assert helped.returncode == 0, helped.stderr
        assert helped.stdout.startswith(f"usage: {command} "), helped.stdout[:200]
    refused = _run(bin_dir / "pot-sim", "--poison-rate", "half", "--trainer", cwd=work)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "error: argument --poison-rate: invalid float value: 'half'",
        "error: argument --trainer: expected one argument (see pot-sim --help)"]

    small = ["--trainer", "hash", "--employees-num", "3", "--target-blockchain-length", "3"]
    ran = _run(bin_dir / "pot-sim", *small, "--no-run-dir", cwd=work)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "longest honest chain has 3 blocks (live employees 3/3)" in ran.stdout
    swept = _run(bin_dir / "pot-sweep", *small, "--out", "study", "--quiet", cwd=work)
    assert swept.returncode == 0, swept.stdout[-2000:] + swept.stderr[-2000:]
    rows = (work / "study" / "runs.csv").read_text().splitlines()
    header, row = rows[0].split(","), rows[1].split(",")
    assert len(rows) == 2 and row[header.index("exit_code")] == "0", rows


def test_the_sweep_starts_main_py_in_a_checkout_and_the_package_elsewhere(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert sweep.main_command() == [sys.executable, str(ROOT / "main.py")]
    monkeypatch.setattr(sweep, "MAIN_SCRIPT", ROOT / "no-such-main.py")
    assert sweep.main_command() == [sys.executable, "-m", "simulation"]


def test_usage_lines_name_the_command_they_were_started_by(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.build_parser().format_usage().startswith("usage: python main.py ")
    assert cli.build_parser("pot-sim").format_usage().startswith("usage: pot-sim ")
    assert sweep.build_parser().format_usage().startswith(
        "usage: python -m simulation.sweep ")
    monkeypatch.setattr(sweep, "PROG", "pot-sweep")
    assert sweep.build_parser().format_usage().startswith("usage: pot-sweep ")


@pytest.mark.processes
def test_the_commands_start_light_and_python_m_simulation_is_main_py() -> None:
    """An entry point loads nothing of the simulator before it has made a signal end
    the command quietly (the simulator's imports take a while); ``python -m
    simulation`` is main.py's command under its own name."""
    loaded = _run(sys.executable, "-c", "import sys, simulation.commands; print(sorted("
                  "m for m in sys.modules if m.startswith('simulation')))", cwd=ROOT)
    assert loaded.stdout.split() == ["['simulation',", "'simulation.commands']"], loaded
    for words, prog in (([ROOT / "main.py"], "python main.py"),
                        (["-m", "simulation"], "python -m simulation")):
        helped = _run(sys.executable, *words, "--help", cwd=ROOT)
        assert helped.returncode == 0 and helped.stdout.startswith(f"usage: {prog} "), helped
