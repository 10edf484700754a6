"""Wires a run: the log listener, the shared dataset, the pipes and the processes.

The parent starts one process per employee, one users process and one network process
(all from a fork server that has TensorFlow imported already), then waits for the
network's result, joins everything and builds the summary.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import time
from dataclasses import dataclass
from typing import Any

from . import frames
from .adversaries import assign_adversaries, behaviour_of
from .config import Scenario, validated
from .employee_process import employee_main
from .lockstep import genesis_of
from .logs import log_to_queue, start_listener
from .network import network_main
from .reporting import render, summarize
from .users import users_main

log = logging.getLogger("pot.runner")


@dataclass
class RunOutcome:
    summary: dict[str, Any]
    exit_code: int


def run(scenario: Scenario, *, results_path: str | None = None,
        quiet: bool = False) -> RunOutcome:
    """Run one scenario end to end. Raises ScenarioError before any process starts."""
    validated(scenario)
    wall_started = time.monotonic()
    ctx = multiprocessing.get_context("forkserver")
    dataset_spec = None
    shared = None
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
    processes: list[Any] = []
    try:
        if scenario.trainer == "keras":
            from .dataset import load_shared_mnist

            # Loaded by a short-lived child process straight into shared memory, so that
            # this process never imports TensorFlow (docs/PERFORMANCE.md, memory).
            dataset_spec, shared = load_shared_mnist()
            log.info("MNIST loaded from %s into shared memory (%d bytes)",
                     dataset_spec.source, dataset_spec.size)
        result, processes = _start_and_wait(ctx, scenario, log_queue, dataset_spec,
                                            roles, wall_started)
    finally:
        for p in processes:
            p.join(timeout=10)
            if p.is_alive():
                log.warning("%s did not exit; terminating it", p.name)
                p.terminate()
                p.join(timeout=5)
        if shared is not None:
            shared.close()
            shared.unlink()
    wall = time.monotonic() - wall_started
    summary = summarize(scenario, genesis_of(scenario), result, roles, wall)
    summary["exit_codes"] = {p.name: p.exitcode for p in processes}
    if results_path:
        with open(results_path, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2, default=_json_default)
    text = render(summary)
    log.info("%s", text)
    if quiet:
        print(text)
    ok = summary["finished"] and summary["agreement"]["all_honest_agree"]
    if not summary["finished"]:
        log.error("the network did not converge: no agreement on %d blocks by tick %s",
                  scenario.target_blockchain_length, summary["ticks"])
    listener.stop()
    return RunOutcome(summary, 0 if ok else 1)


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
                    roles: dict[int, str], launched: float
                    ) -> tuple[dict[str, Any], list[Any]]:
    n = scenario.employees_num
    pipes = [ctx.Pipe(duplex=True) for _ in range(n + 1)]
    result_recv, result_send = ctx.Pipe(duplex=False)
    genesis = genesis_of(scenario)
    processes = [
        ctx.Process(target=employee_main, name=f"E{i}",
                    args=(i, scenario, pipes[i][1], log_queue, dataset_spec,
                          behaviour_of(roles, i)))
        for i in range(n)
    ]
    processes.append(ctx.Process(target=users_main, name="users",
                                 args=(scenario, genesis, pipes[n][1], log_queue)))
    processes.append(ctx.Process(target=network_main, name="network",
                                 args=(scenario, [p[0] for p in pipes], result_send,
                                       log_queue, roles, launched)))
    for p in processes:
        p.start()
    # Only the children may hold their pipe ends: then a dead child means EOF at once.
    for a, b in pipes:
        a.close()
        b.close()
    result_send.close()
    log.info("started %d employees, the users and the network", n)
    network = processes[-1]
    # The network itself bounds the run by MAX_TICKS and PARTY_TIMEOUT_SECONDS per tick;
    # this guard only catches a network process that died or hung.
    while True:
        if result_recv.poll(1.0):
            try:
                return frames.unpack(result_recv.recv_bytes(frames.MAX_CONTROL_FRAME_BYTES),
                                     "result"), processes
            except (EOFError, OSError):
                break
        if not network.is_alive():
            break
    log.error("the network process ended without a result (exit code %s)", network.exitcode)
    for p in processes:
        if p.is_alive():
            p.terminate()
    return {"finished": False, "error": "network process ended without a result",
            "reports": {}}, processes
