"""Sweeps on a Ray cluster: ``python -m simulation.sweep --ray-address ADDRESS ...``.

Why: a study is many small runs. A local sweep runs ``--jobs`` of them at a time on one
machine; on a cluster each run becomes a Ray task that declares the CPUs and memory it
needs, so that Ray spreads the runs over every node and starts as many at once as the
nodes hold.

How: the sweep (the driver) submits each run not yet recorded as a task
(``run_on_node``, scheduling strategy SPREAD). The task runs the very main.py command
line a local sweep would, in a temporary folder of its node, and returns the exit code,
the results file's text, the log and output when the sweep keeps them (as a local run
leaves them), and its node. The driver writes them into ``OUT/runs`` and records the run
exactly as a local run is recorded; the row gains the node's id (runs.csv's ``node``).
Ctrl-C (or SIGTERM) cancels the tasks not started yet and interrupts the running ones,
whose main.py gets SIGINT, stops within seconds and is not recorded: the same command
resumes.

Every node needs this checkout at the same path and the same environment: the command
names the driver's interpreter and main.py. A run's main.py gets its node's environment
without what Ray adds for its workers (RAY_* variables, OMP_NUM_THREADS=1 and the like),
and with the signals a local run gets (Ray's workers block SIGINT, and a blocked signal
stays blocked across exec).

Imports Ray only when a sweep is placed on a cluster; the task itself imports nothing of
the simulator.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulation.config.ray_cluster import unreachable

MB = 2**20
NEEDS_RAY = "--ray-address needs Ray: pip install -r requirements-ray.txt (or make setup-ray)"
POLL_SECONDS = 0.2  # a task wakes this often while its run goes on: Ray's cancel lands then
WAIT_SECONDS = 0.5  # the driver wakes this often, so that a signal is handled at once
MIN_IN_FLIGHT = 1000  # tasks submitted ahead of the cluster's CPUs (more are queued later)

# What a run declares when --run-memory is not given: (MB, MB per employee), by BACKEND and
# TRAINER. From the peak PSS of every process of one run (scripts/benchmark.py, on the
# project's 2-core machine), with room: the process backend with the hash trainer took
# 124, 248 and 573 MB at 3, 11 and 31 employees (76 + 16 per employee); with Keras 1090 MB
# at 3 employees up to 5041 MB at 100 and 9855 MB at 200 (docs/PERFORMANCE.md, scaling);
# lockstep (one process, hash only) 37 MB at 11 employees and 58 MB at 100.
RUN_MEMORY_MB = {("process", "hash"): (100, 20), ("process", "keras"): (1000, 50),
                 ("lockstep", "hash"): (60, 1)}
# Environment variables Ray sets in its workers and a local run would not have.
RAY_WORKER_VARIABLES = ("OMP_NUM_THREADS", "PYTHONBREAKPOINT", "SPT_NOENV")


class ClusterError(Exception):
    """The cluster cannot take the sweep (unreachable, too small): one ``error:`` line."""


@dataclass(frozen=True)
class Request:
    """What one run declares to Ray."""

    cpus: float
    memory_mb: int


def default_request(backend: str, trainer: str, employees: int) -> Request:
    """A run's CPUs and memory when --run-cpus and --run-memory are not given. One CPU,
    except with Keras on the process backend: there every employee trains in a process of
    its own within each tick, so a run keeps up to EMPLOYEES_NUM cores busy. The memory is
    RUN_MEMORY_MB's (the process backend's figures for anything else)."""
    base, per_employee = RUN_MEMORY_MB.get((backend, trainer)) or RUN_MEMORY_MB.get(
        ("process", trainer), RUN_MEMORY_MB[("process", "keras")])
    cpus = float(employees) if (backend, trainer) == ("process", "keras") else 1.0
    return Request(cpus=max(1.0, cpus), memory_mb=base + per_employee * employees)


def fit(request: Request, largest: Request) -> Request:
    """A default request cut to the largest node, so that every run can start somewhere
    (Ray would wait for a node that never comes)."""
    return Request(cpus=min(request.cpus, largest.cpus),
                   memory_mb=min(request.memory_mb, largest.memory_mb))


def describe(requests: Sequence[Request]) -> str:
    """"1 CPU and 160 MB", or the ranges of several runs' requests."""
    def span(values: Sequence[float], unit: str, units: str) -> str:
        low, high = min(values), max(values)
        if low == high:
            return f"{low:g} {unit if low == 1 else units}"
        return f"{low:g} to {high:g} {units}"

    return (f"{span([r.cpus for r in requests], 'CPU', 'CPUs')} and "
            f"{span([r.memory_mb for r in requests], 'MB', 'MB')}")


# --- On the node -----------------------------------------------------------------------


def _wait_interruptibly(process: subprocess.Popen[bytes]) -> int:
    """The run's exit code. Ray's cancel raises KeyboardInterrupt in the task: main.py
    then gets SIGINT, as a local run gets the sweep's signal, and is waited for."""
    while True:
        try:
            return process.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def run_on_node(command: list[str], run_id: str, keep_all: bool,
                logs_dropped_for: tuple[int, ...]) -> dict[str, Any]:
    """A Ray task: runs ``command`` (whose --results and --log-file name files relative to
    the folder it runs in) in a temporary folder, and returns what the driver records:
    exit_code, results (the results file's bytes), log and out (when kept), node and
    node_ip; or error, when main.py could not be started."""
    import ray

    node = {"node": ray.get_runtime_context().get_node_id(),
            "node_ip": ray.util.get_node_ip_address()}
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith("RAY_") and k not in RAY_WORKER_VARIABLES}
    with tempfile.TemporaryDirectory(prefix="pot-sweep-") as folder:
        where = Path(folder)
        with open(where / f"{run_id}.out", "wb") as output:
            # The child inherits this thread's signal mask: none blocked, as a local run.
            mask = signal.pthread_sigmask(signal.SIG_SETMASK, [])
            try:
                process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                           stderr=subprocess.STDOUT, cwd=folder,
                                           env=environment, process_group=0)
            except OSError as exc:
                return {**node, "error": f"could not start main.py: {exc} (every node needs "
                                         f"this checkout and its environment at the same "
                                         f"path)"}
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            exit_code = _wait_interruptibly(process)
        kept = keep_all or exit_code not in logs_dropped_for
        return {**node, "exit_code": exit_code, "results": _read(where / f"{run_id}.json"),
                "log": _read(where / f"{run_id}.log") if kept else None,
                "out": _read(where / f"{run_id}.out") if kept else None}


# --- In the driver ---------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One run as a task: its id, its command line and what it declares."""

    run_id: str
    command: list[str]
    request: Request


@dataclass(frozen=True)
class Answer:
    """What became of a job: the task's value, or why there is none ("not started" for
    a job cancelled or never submitted, else the error)."""

    job: Job
    value: dict[str, Any] | None = None
    problem: str = ""


class Cluster:
    """The Ray cluster a sweep runs on (``connect``), and its tasks (``run``)."""

    def __init__(self, ray: Any, address: str) -> None:
        self.ray = ray
        self.address = address
        self.signum: int | None = None
        self.signals = 0  # how many arrived: each one is passed on to the running runs
        alive = [n for n in ray.nodes() if n.get("Alive")]
        resources = [n.get("Resources", {}) for n in alive]
        self.nodes = len(alive)
        self.cpus = sum(r.get("CPU", 0.0) for r in resources)
        self.largest = Request(cpus=max((r.get("CPU", 0.0) for r in resources), default=0.0),
                               memory_mb=int(max((r.get("memory", 0.0) for r in resources),
                                                 default=0.0) // MB))

    @classmethod
    def connect(cls, address: str) -> Cluster:
        """Joins the cluster at ``address``; ClusterError if none answers there. Keeps the
        caller's signal handlers (ray.init installs its own)."""
        import ray

        why = unreachable(address)
        if why is not None:
            raise ClusterError(f"--ray-address {address}: no Ray cluster to join ({why}); "
                               f"start one with `ray start --head`")
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(f"--ray-address {address}: cannot join the cluster "
                               f"({str(exc)[:200]})") from None
        finally:
            if threading.current_thread() is threading.main_thread():
                for number, handler in handlers.items():
                    if handler is not None:
                        signal.signal(number, handler)
        return cls(ray, address)

    def close(self) -> None:
        self.ray.shutdown()  # the driver leaves; the cluster keeps running

    def stop(self, signum: int) -> None:
        """From a signal handler: only noted; ``run`` cancels the tasks when it wakes."""
        if self.signum is None:
            self.signum = signum
        self.signals += 1

    def run(self, jobs: Sequence[Job], keep_all: bool, logs_dropped_for: tuple[int, ...]
            ) -> Iterator[Answer]:
        """Submits the jobs in order (at most max(MIN_IN_FLIGHT, twice the cluster's
        CPUs) queued at a time) and yields an Answer for each as it ends, every job once.
        After ``stop``, cancels what is queued or running and submits no more; a second
        signal interrupts the running runs again (main.py then ends its processes at once,
        as with a local sweep)."""
        from ray.exceptions import TaskCancelledError

        task = self.ray.remote(run_on_node)
        window = max(MIN_IN_FLIGHT, int(2 * self.cpus))
        waiting = list(reversed(jobs))  # popped from the end: in the given order
        flying: dict[Any, Job] = {}
        passed_on = 0  # signals passed on to the running runs so far
        while waiting or flying:
            if self.signals > passed_on:
                passed_on = self.signals
                while waiting:
                    yield Answer(waiting.pop(), problem="not started")
                for ref in flying:
                    self.ray.cancel(ref)
            while waiting and len(flying) < window:
                job = waiting.pop()
                ref = task.options(num_cpus=job.request.cpus,
                                   memory=job.request.memory_mb * MB,
                                   scheduling_strategy="SPREAD",
                                   name=f"pot-sweep {job.run_id}").remote(
                    job.command, job.run_id, keep_all, logs_dropped_for)
                flying[ref] = job
            if not flying:
                continue
            ready, _ = self.ray.wait(list(flying), num_returns=1, timeout=WAIT_SECONDS,
                                     fetch_local=False)
            for ref in ready:
                job = flying.pop(ref)
                try:
                    answer = Answer(job, value=self.ray.get(ref))
                except TaskCancelledError:  # cancelled before it started
                    answer = Answer(job, problem="not started")
                except Exception as exc:  # noqa: BLE001 - a lost node, a dead worker
                    answer = Answer(job, problem=f"{type(exc).__name__}: {str(exc)[:300]}")
                yield answer
