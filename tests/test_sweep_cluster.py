"""Issue 22, item 4: ``python -m simulation.sweep --ray-address ADDRESS`` runs each run as a
Ray task declaring its CPUs and memory. Its options and refusals (no Ray needed), and on
a real two-node cluster started here: runs on both nodes, the local sweep's rows, a
resume that redoes nothing, and Ctrl-C."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest

from simulation.experiments import cluster as clustering
from simulation.experiments import study as studying
from simulation.experiments import sweep
from simulation.experiments.cluster import Request

SMALL = ["--trainer", "hash", "--employees-num", "3"]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(("argv", "line"), [
    (["--run-cpus", "2"], "--run-cpus is what a run declares on a Ray cluster: give "
                          "--ray-address too"),
    (["--run-memory", "500"], "--run-memory is what a run declares on a Ray cluster"),
    (["--ray-address", "auto", "--jobs", "4"], "--jobs is the number of runs at once on "
                                               "this machine; with --ray-address"),
    (["--ray-address", "auto", "--backend", "ray"], "runs with BACKEND ray would each start "
                                                    "a Ray instance of their own"),
    (["--ray-address", "auto", "--set", "BACKEND=process,ray"], "--set RAY_ADDRESS=ADDRESS "
                                                                 "instead"),
    (["--ray-address", "auto", "--run-cpus", "0"], "--run-cpus must be above 0, got 0"),
    (["--ray-address", "auto", "--run-memory", "0"], "--run-memory must be at least 1 (MB)"),
    (["--ray-address", " "], "--ray-address needs the cluster's address"),
])
def test_cluster_options_are_checked_before_anything_runs(
        argv: list[str], line: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert sweep.main([*SMALL, "--out", str(out), *argv]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and line in errors[0]
    assert not out.exists()


def test_without_ray_a_cluster_sweep_says_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else found(name, *a))
    argv = [*SMALL, "--out", str(tmp_path / "out"), "--ray-address", "auto"]
    assert sweep.main(argv) == 2
    assert capsys.readouterr().err == f"error: {clustering.NEEDS_RAY}\n"


def test_a_cluster_that_does_not_answer_is_one_error_line_and_nothing_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An address where no cluster listens is refused within seconds (ray.init would
    retry for minutes), before the output folder exists."""
    pytest.importorskip("ray", reason="the address is resolved by Ray")
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    out = tmp_path / "out"
    started = time.monotonic()
    assert sweep.main([*SMALL, "--out", str(out), "--ray-address", dead]) == 2
    assert time.monotonic() - started < 20
    (line,) = capsys.readouterr().err.splitlines()
    # (Ray may name the loopback address as the machine's own.)
    assert line.startswith(f"error: --ray-address {dead}: no Ray cluster to join (")
    assert f":{dead.rpartition(':')[2]} does not answer" in line
    assert not out.exists()


def test_ray_address_is_the_sweeps_option_and_the_runs_knob_is_set_with_set(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--ray-address places the runs (no run gets RAY_ADDRESS from it); a run's own
    RAY_ADDRESS is given with --set, also by a study file's fixed knobs."""
    out = str(tmp_path / "out")
    assert sweep.main([*SMALL, "--out", out, "--ray-address", "auto", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == ("on the Ray cluster at auto, each run declaring 1 CPU "
                                       "and 160 MB (before the largest node's cap)")
    assert "RAY_ADDRESS" not in printed
    plan, errors = sweep.build_plan(["RAY_ADDRESS=auto"], {"BACKEND": "ray"}, "1")
    assert errors == [] and plan is not None and plan.fixed["RAY_ADDRESS"] == "auto"
    command = sweep.command_for(plan.runs[0], sweep.RunPaths.of(tmp_path, "x"))
    assert command[command.index("--ray-address") + 1] == "auto"
    spec = studying.SweepSpec(out=tmp_path, seeds="1", sets=(),
                              fixed=(("BACKEND", "ray"), ("ray_address", "auto")))
    assert spec.argv()[4:] == ["--backend", "ray", "--set", "RAY_ADDRESS=auto"]


def test_what_a_run_declares_by_default() -> None:
    """One CPU, EMPLOYEES_NUM with Keras on the process backend; memory above the peaks
    measured (process and hash: 124, 248, 573 MB at 3, 11, 31 employees; Keras 1090 MB at
    3 and 9855 MB at 200; lockstep 58 MB at 100), cut to the largest node."""
    measured = [("process", "hash", 3, 124), ("process", "hash", 11, 248),
                ("process", "hash", 31, 573), ("process", "keras", 3, 1090),
                ("process", "keras", 200, 9855), ("lockstep", "hash", 100, 58)]
    for backend, trainer, employees, peak in measured:
        request = clustering.default_request(backend, trainer, employees)
        assert peak < request.memory_mb < 1.5 * peak + 100, (backend, trainer, employees)
    assert clustering.default_request("process", "hash", 11) == Request(1.0, 320)
    assert clustering.default_request("process", "keras", 11) == Request(11.0, 1550)
    assert clustering.default_request("lockstep", "hash", 11).cpus == 1.0
    assert clustering.fit(Request(11.0, 1550), Request(4.0, 1000)) == Request(4.0, 1000)
    assert clustering.fit(Request(1.0, 160), Request(4.0, 1000)) == Request(1.0, 160)
    assert clustering.describe([Request(1.0, 160)]) == "1 CPU and 160 MB"
    assert clustering.describe([Request(1.0, 160), Request(2.5, 320)]) == (
        "1 to 2.5 CPUs and 160 to 320 MB")


def test_a_study_passes_the_cluster_on_to_each_sweep_without_its_jobs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f'jobs = 1\n[[sweeps]]\nout = "{tmp_path / "out"}"\n'
                    'fixed = { TRAINER = "hash" }\n')
    given: list[list[str]] = []
    monkeypatch.setattr(sweep, "main", lambda argv: given.append(list(argv)) or 0)
    assert studying.main(["--study", str(path), "--dry-run", "--ray-address", "auto",
                          "--run-memory", "500"]) == 0
    assert "--jobs" not in given[0]
    assert given[0][-5:] == ["--ray-address", "auto", "--run-memory", "500", "--dry-run"]
    assert studying.main(["--study", str(path), "--dry-run"]) == 0  # locally: its jobs
    assert given[1][given[1].index("--jobs") + 1] == "1" and "--ray-address" not in given[1]


PROBE = """
    import json, os, sys
    args = sys.argv[1:]
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    facts = {"blocked": int(status["SigBlk"], 16), "cwd": os.getcwd(),
             "environment": sorted(k for k in os.environ
                                   if k.startswith("RAY_") or k in ("OMP_NUM_THREADS",
                                                                    "POT_PROBE_KEPT"))}
    with open(args[args.index("--results") + 1], "w") as f:
        json.dump(facts, f)
    with open(args[args.index("--log-file") + 1], "w") as f:
        f.write("the log")
    print("the output")
    sys.exit(int(args[args.index("--exit") + 1]))
"""


def test_a_task_runs_its_command_in_a_folder_of_its_own_as_a_local_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_on_node (the task's body, here without Ray): the command's relative files are
    in a fresh folder, main.py gets no variable Ray sets for its workers and no blocked
    SIGINT (Ray's workers block it), and the log and output come back only when kept."""
    import sys
    from types import SimpleNamespace

    fake_ray = SimpleNamespace(
        get_runtime_context=lambda: SimpleNamespace(get_node_id=lambda: "n1"),
        util=SimpleNamespace(get_node_ip_address=lambda: "10.0.0.7"))
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    for name, value in (("RAY_JOB_ID", "01"), ("OMP_NUM_THREADS", "1"),
                        ("POT_PROBE_KEPT", "yes")):
        monkeypatch.setenv(name, value)
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent(PROBE))

    def run(exit_code: int, keep_all: bool = False) -> dict:
        command = [sys.executable, str(probe), "--results", "r.json", "--log-file", "r.log",
                   "--exit", str(exit_code)]
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # as in Ray
        try:
            return clustering.run_on_node(command, "r", keep_all, (0, 1))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    failed = run(3)
    assert (failed["exit_code"], failed["node"], failed["node_ip"]) == (3, "n1", "10.0.0.7")
    facts = json.loads(failed["results"])
    assert facts["environment"] == ["POT_PROBE_KEPT"]
    assert facts["blocked"] & (1 << (signal.SIGINT - 1)) == 0
    assert Path(facts["cwd"]).name.startswith("pot-sweep-") and not Path(facts["cwd"]).exists()
    assert (failed["log"], failed["out"]) == (b"the log", b"the output\n")
    ordinary = run(0)
    assert ordinary["results"] and ordinary["log"] is None and ordinary["out"] is None
    assert run(1, keep_all=True)["log"] == b"the log"
    missing = clustering.run_on_node([str(tmp_path / "no-python")], "r", False, (0, 1))
    assert "could not start main.py" in missing["error"] and "same path" in missing["error"]


# --- On a real cluster ----------------------------------------------------------------

STOPPABLE_MAIN = """
    import json, signal, sys, time
    from pathlib import Path

    args = sys.argv[1:]
    results = args[args.index("--results") + 1]
    seed = int(args[args.index("--seed") + 1])
    marks = Path(MARKS)

    def write(data):
        with open(results, "w") as f:
            json.dump(data, f)

    if seed == 1:
        write({"finished": True, "ticks": 5, "self_check": {"passed": True, "failures": []}})
        sys.exit(0)

    def stop(signum, frame):
        (marks / f"stopped-{seed}-{signum}").touch()
        write({"finished": False, "interrupted": True})
        sys.exit(128 + signum)

    signal.signal(signal.SIGINT, stop)
    (marks / f"started-{seed}").touch()
    time.sleep(30)
    sys.exit(1)
"""


@pytest.fixture
def two_nodes(tmp_path_factory, monkeypatch):
    """A head and a worker node on this machine, one CPU each, bound to 127.0.0.1 (as in
    test_ray: one Ray test at a time in the session)."""
    ray = pytest.importorskip("ray", reason="a sweep on a cluster needs requirements-ray.txt")
    from helpers import exclusive, shared_dir
    from ray.cluster_utils import Cluster

    # Ray on Linux turns 127.0.0.1 into the machine's address unless clusters across
    # hosts are off (see test_ray's multi-node test).
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)
    with exclusive(shared_dir(tmp_path_factory) / "ray-tests.lock"):
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "include_dashboard": False, "node_ip_address": "127.0.0.1"})
        try:
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
            cluster.wait_for_nodes()
            yield cluster
        finally:
            cluster.shutdown()


def _records(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in (out / "runs").glob("*.row.json")}


@pytest.mark.ray
@pytest.mark.processes
def test_a_sweep_on_a_two_node_cluster_and_the_ray_backend_on_it(
        tmp_path: Path, two_nodes, monkeypatch, capsys: pytest.CaptureFixture) -> None:
    """A head and a worker node on this machine (ray.cluster_utils.Cluster), one CPU
    each, bound to 127.0.0.1 (one cluster start for two features). The Ray backend: a
    run's two shards land on different nodes and it ends on the lockstep's tip, and
    without RAY_ADDRESS a run starts a one-node instance of its own, also while this
    cluster runs. The sweep: its runs spread over both nodes, resume and Ctrl-C below."""
    from simulation.config import default_scenario
    from simulation.net import ray_backend
    from simulation.net.lockstep import run_lockstep

    address = two_nodes.address
    assert address.startswith("127.0.0.1:")
    scenario = default_scenario().replace(trainer="hash", employees_num=6, seed=2,
                                          backend="ray", ray_address=address, ray_shards=2)
    result = ray_backend.run(scenario, lambda: None)
    assert result.finished
    assert len(set(result.shard_nodes.values())) == 2
    assert result.employer["chain"][-1]["hash"] == run_lockstep(scenario).employer.tree.tip_hash
    alone = ray_backend.run(scenario.replace(ray_address=""), lambda: None)
    assert alone.finished and len(set(alone.shard_nodes.values())) == 1
    assert set(alone.shard_nodes.values()).isdisjoint(result.shard_nodes.values())

    monkeypatch.setattr(sweep, "PLOTTED", sweep.PLOTTED[:1])  # one panel is enough here
    on_cluster = tmp_path / "cluster"
    # Two runs of one CPU each on two nodes of one CPU: one on each node.
    argv = [*SMALL, "--seeds", "2", "--out", str(on_cluster), "--ray-address", address,
            "--quiet"]
    assert sweep.main(argv) == 0
    printed = capsys.readouterr().out
    assert (f"2 runs: 0 already recorded (skipped), 2 to run as Ray tasks on 2 nodes (2 CPUs)"
            f" at {address}, each declaring 1 CPU and 160 MB") in printed
    rows = _read_csv(on_cluster / "runs.csv")
    assert len(rows) == 2 and len({r["node"] for r in rows}) == 2  # both nodes ran one
    assert all(r["exit_code"] == "0" and r["self_check_passed"] == "True" for r in rows)

    # The same runs on this machine: the same rows but for the wall time and the node,
    # and the same files left in runs/ (results kept, logs of good runs deleted).
    local = tmp_path / "local"
    assert sweep.main([*SMALL, "--seeds", "2", "--out", str(local), "--quiet"]) == 0
    assert {r["node"] for r in _read_csv(local / "runs.csv")} == {""}
    remote_records, local_records = _records(on_cluster), _records(local)
    assert set(remote_records) == set(local_records)
    for name, entry in local_records.items():
        remote = remote_records[name]
        assert remote["knobs"] == entry["knobs"] and remote["digest"] == entry["digest"]
        assert "node" not in entry["row"]  # a local row file is as before the column
        assert {**remote["row"], "wall_seconds": None, "node": None} == {
            **entry["row"], "wall_seconds": None, "node": None}
    assert sorted(p.name for p in (on_cluster / "runs").iterdir()) == sorted(
        p.name for p in (local / "runs").iterdir())

    # The same command again redoes nothing.
    before = {p.name: p.stat().st_mtime_ns for p in (on_cluster / "runs").glob("*.row.json")}
    capsys.readouterr()
    assert sweep.main(argv) == 0
    assert "2 runs: 2 already recorded (skipped), 0 to run on the cluster" in (
        capsys.readouterr().out)
    assert {p.name: p.stat().st_mtime_ns
            for p in (on_cluster / "runs").glob("*.row.json")} == before

    # Ctrl-C: the queued run is cancelled, the running ones get SIGINT and stop, none of
    # them is recorded, and the same command resumes them.
    marks = tmp_path / "marks"
    marks.mkdir()
    fake = tmp_path / "fake_main.py"
    fake.write_text(textwrap.dedent(STOPPABLE_MAIN).replace("MARKS", repr(str(marks))))
    monkeypatch.setattr(sweep, "MAIN_SCRIPT", fake)
    stopped = tmp_path / "stopped"
    argv = ["--trainer", "hash", "--seeds", "4", "--out", str(stopped), "--ray-address",
            address]

    def interrupt_when_running() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(list(marks.glob("started-*"))) == 2:  # seed 1 is recorded by then
                os.kill(os.getpid(), signal.SIGINT)  # reaches the sweep's handler
                return
            time.sleep(0.05)

    handler = signal.getsignal(signal.SIGINT)
    killer = threading.Thread(target=interrupt_when_running)
    killer.start()
    started = time.monotonic()
    code = sweep.main(argv)
    killer.join()
    assert code == 130
    assert time.monotonic() - started < 25  # the runs were told, not waited out
    assert signal.getsignal(signal.SIGINT) is handler
    printed = capsys.readouterr().out
    assert "interrupted by SIGINT: 3 runs not recorded; resume with:" in printed
    assert printed.count("(interrupted, not recorded)") == 2  # the queued one never ran
    running = sorted(p.name.split("-")[1] for p in marks.glob("started-*"))
    assert sorted(p.name for p in marks.glob("stopped-*")) == [
        f"stopped-{seed}-{int(signal.SIGINT)}" for seed in running]
    assert [r["seed"] for r in _read_csv(stopped / "runs.csv")] == ["1"]
    fake.write_text(textwrap.dedent(STOPPABLE_MAIN).replace("MARKS", repr(str(marks)))
                    .replace("seed == 1", "True"))
    assert sweep.main(argv) == 0
    assert "4 runs: 1 already recorded (skipped), 3 to run" in capsys.readouterr().out
    assert [r["seed"] for r in _read_csv(stopped / "runs.csv")] == ["1", "2", "3", "4"]
