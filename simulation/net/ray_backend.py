"""The Ray backend (BACKEND="ray"): the employees live in a pool of Ray actors.

Why: a network of hundreds of employees, or one with real training on many machines,
does not fit one small machine's processes; Ray runs the same code from one laptop to a
cluster. One actor per employee with one call per tick would be slow (each call costs
about a millisecond of Ray's bookkeeping, and each actor tens of MB), so, as Flower runs
many virtual clients per worker, each actor (a *shard*) hosts many employee state
machines, by default one shard per CPU of the cluster. The driver runs the conductor the
in-process lockstep uses (``conductor.conduct``): one call per shard per window of ticks
(one tick, or L when every message takes at least L ticks), carrying the shard's
deliveries as one canonical CBOR frame (``frames``) and returning its employees'
messages, statuses and log events the same way. The first shard also hosts the users;
the employer's light client runs in the driver. The state machines do not know Ray exists.

Ray is optional (requirements-ray.txt): nothing imports it unless BACKEND is "ray".
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

from simulation.config import Scenario
from simulation.config.ray_cluster import unreachable
from simulation.net import frames
from simulation.net.conductor import (
    Answer,
    UsersParty,
    Window,
    conduct,
    final_plan,
    result_of,
    step_window,
)
from simulation.net.lockstep import build_employees
from simulation.net.logs import log_happenings
from simulation.net.watch import Watch
from simulation.node.adversaries import assign_adversaries, hash_trainer_for
from simulation.node.employee import Employee, LogEvent
from simulation.node.genesis import genesis_of
from simulation.node.users import Users
from simulation.protocol.names import employee_name
from simulation.protocol.records import RunResult
from simulation.protocol.stages import Trainer

log = logging.getLogger("pot.ray")
NEEDS_RAY = "BACKEND ray needs Ray: pip install -r requirements-ray.txt (or make setup-ray)"
# Memory Ray reserves per shard, so it places shards where they fit: a worker process,
# then per hosted employee (a Keras shard also imports TensorFlow and loads MNIST).
SHARD_MB = {"hash": 150, "keras": 900}
EMPLOYEE_MB = {"hash": 2, "keras": 60}


class ClusterUnreachable(Exception):
    """RAY_ADDRESS names no running cluster: nothing ran."""


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _trainer_factory(scenario: Scenario) -> Callable[[int, str], Trainer]:
    if scenario.trainer == "hash":
        return hash_trainer_for(scenario)
    from simulation.ml.tf_env import configure_tf_environment, import_tensorflow_quietly

    configure_tf_environment()  # a fresh Ray worker: before TensorFlow is imported
    import_tensorflow_quietly()
    from simulation.ml.tasks import task_of
    from simulation.net.employee_process import TimedTrainer, keras_trainer

    data = task_of(scenario).load_data()  # each Ray worker loads its own copy
    # Timed as in an employee's process: an actor steps its employees one at a time, so
    # the actor's CPU time while one trains is that training's.
    return lambda index, behaviour: TimedTrainer(keras_trainer(scenario, data, behaviour,
                                                               index))


def _timed(employee: Employee, stages: list[int]) -> Any:
    """The employee's final report, with its stages' timings when it trains with Keras."""
    report = employee.final_report(stages)
    timed = getattr(employee.trainer, "timed", None)
    return timed(report) if timed is not None else report


class Shard:
    """One Ray actor's employees (wrapped with ``ray.remote`` when the run starts)."""

    def __init__(self, scenario: Scenario, indices: list[int], users: bool = False):
        genesis = genesis_of(scenario)
        self.employees: dict[int, Employee | UsersParty] = {e.index: e for e in build_employees(
            scenario, genesis, _trainer_factory(scenario), indices)}
        if users:  # the users party, index EMPLOYEES_NUM
            self.employees[scenario.employees_num] = UsersParty(Users(scenario, genesis))
        self.target = scenario.target_blockchain_length
        self.crashed: set[int] = set()

    def node_id(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def step(self, frame: bytes) -> bytes:
        """A ``conductor.Window`` in, the answers of each tick stepped out."""
        window = frames.read_one(frame, frames.ShardWindow).window
        steps = step_window(self.employees, window, self.target, self.crashed)
        return frames.Stepped(tuple(steps)).to_wire()

    def reports(self, frame: bytes) -> bytes:
        plan = frames.read_one(frame, frames.ShardStop).evaluate
        reports = [(employee_name(index),  # the plan names employees only
                    _timed(cast(Employee, self.employees[index]), list(stages)).to_wire())
                   for index, stages in plan]
        reports += [("users", party.users.report()) for party in self.employees.values()
                    if isinstance(party, UsersParty)]
        return frames.ShardReports(tuple(reports)).to_wire()


class ShardHost:
    """``conductor.Host`` over Ray actors. A shard that fails or does not answer within
    PARTY_TIMEOUT_SECONDS takes its employees down with it, as a crashed process does."""

    def __init__(self, ray: Any, actors: list[Any], indices: list[list[int]],
                 timeout: float, users: int | None = None):
        self.ray = ray
        self.actors = actors
        self.indices = indices
        # Shard 0 also hosts the users (index ``users``, EMPLOYEES_NUM).
        self.shard_of = {i: k for k, shard in enumerate(indices) for i in shard}
        self.names = [[employee_name(i) for i in shard] for shard in indices]
        if users is not None:
            self.shard_of[users] = 0
            self.names[0].append("users")
        self.timeout = timeout
        self.dead: dict[int, str] = {}  # shard -> why
        self.failed: dict[str, str] = {}  # employee name -> the shard's error

    def _call(self, method: str, frames_by_shard: dict[int, bytes]) -> dict[int, bytes]:
        refs = {k: getattr(self.actors[k], method).remote(frame)
                for k, frame in frames_by_shard.items()}
        out: dict[int, bytes] = {}
        for k, ref in refs.items():
            try:
                out[k] = self.ray.get(ref, timeout=self.timeout)
            except Exception as exc:  # RayActorError, GetTimeoutError, a task's error
                why = f"shard {k} failed: {type(exc).__name__}: {str(exc)[:200]}"
                self.dead[k] = why
                log.error("ray: %s; its parties %s are cut off", why, self.names[k])
                for name in self.names[k]:
                    self.failed[name] = why
        return out

    def unit_of(self, index: int) -> int:
        return self.shard_of[index]

    def advance(self, windows: dict[int, Window]) -> dict[int, list[dict[int, Answer | None]]]:
        asked = {k: frames.ShardWindow(w).to_wire() for k, w in windows.items()
                 if k not in self.dead}
        out: dict[int, list[dict[int, Answer | None]]] = {}
        for k, data in self._call("step", asked).items():
            out[k] = list(frames.read_one(data, frames.Stepped).steps)
        for k, window in windows.items():
            if k in self.dead:  # failed now or before: its employees are gone
                gone = {i for tick in window.deliveries for i in tick}
                cut: dict[int, Answer | None] = {i: None for i in sorted(gone)}
                out[k] = [cut] + [{} for _ in window.deliveries[1:]]
        return out

    def reports(self, plan: dict[int, list[int]]) -> dict[str, Any]:
        asked = {k: frames.ShardStop(tuple((i, tuple(plan[i])) for i in shard if i in plan))
                 .to_wire() for k, shard in enumerate(self.indices) if k not in self.dead}
        out: dict[str, Any] = {}
        for data in self._call("reports", asked).values():
            for name, report in frames.read_one(data, frames.ShardReports).reports:
                out[name] = report
        return out


def run(scenario: Scenario, stop_reason: Callable[[], str | None]) -> RunResult:
    """One run on Ray: joins RAY_ADDRESS, or starts a local instance bound to 127.0.0.1
    that ends with the run. Returns the result in the network process's shape."""
    import time

    import ray

    started = time.monotonic()
    # ray.init installs signal handlers of its own; the run keeps the caller's, so that
    # Ctrl-C stops it after the current tick as with the process backend.
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    local = not scenario.ray_address
    if local:
        # address="local": a new instance even when another one runs on this machine (a
        # `ray start` cluster, another run's): without it ray.init joins the latest one,
        # and a run once hung in a cluster that another run then shut down.
        ray.init(address="local", include_dashboard=False, log_to_driver=False,
                 configure_logging=False, _node_ip_address="127.0.0.1")
    else:
        why = unreachable(scenario.ray_address)
        try:
            if why is not None:
                raise ConnectionError(why)
            ray.init(address=scenario.ray_address, log_to_driver=False,
                     configure_logging=False)
        except ConnectionError as exc:
            raise ClusterUnreachable(f"RAY_ADDRESS {scenario.ray_address!r}: no Ray cluster "
                                     f"to join ({exc}); start one with `ray start --head`"
                                     ) from None
    if threading.current_thread() is threading.main_thread():
        for signum, handler in handlers.items():
            if handler is not None:
                signal.signal(signum, handler)
    actors: list[Any] = []
    try:
        n = scenario.employees_num
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = max(1, min(n, scenario.ray_shards or cpus))
        indices = [list(range(k, n, count)) for k in range(count)]
        kind = scenario.trainer
        for shard in indices:
            memory = (SHARD_MB[kind] + EMPLOYEE_MB[kind] * len(shard)) * 2**20
            # A fraction of a CPU each, so that more shards than CPUs still start.
            actor_class = ray.remote(num_cpus=min(1.0, cpus / count), memory=memory)(Shard)
            actors.append(actor_class.remote(scenario, shard, users=not actors))
        nodes = ray.get([a.node_id.remote() for a in actors],
                        timeout=scenario.party_timeout_seconds)
        startup = time.monotonic() - started
        log.info("ray: %d employees in %d shards on %d node(s), ready after %.1f s", n,
                 count, len(set(nodes)), startup)
        host = ShardHost(ray, actors, indices, scenario.party_timeout_seconds, users=n)
        roles = assign_adversaries(scenario)

        def log_events(events: tuple[LogEvent, ...]) -> None:
            for event in events:
                log.log(event.level, event.text)

        watch = Watch(scenario, started, lambda: (
            n - sum(1 for name in host.failed if name != "users"), n),
            users_down=lambda: "users" in host.failed)
        done = conduct(scenario, host, [i for i in range(n) if i not in roles],
                       log_events, stop_reason, after_tick=watch,
                       max_window=watch.max_window, on_happenings=log_happenings)
        live = {i: status.height for i, status in done.statuses.items()
                if i not in done.crashed}
        reports = host.reports(final_plan(scenario, roles, live, done.employer))
        result = result_of(scenario, done.finished, done.ticks, done.stopped_by, reports,
                           done.employer, done.crashed, done.relayed_bytes,
                           done.dropped, done.facts, done.in_flight, done.router)
        return replace(result, cut_off={**result.cut_off, **host.failed},
                       failures=dict(host.failed),
                       shard_nodes={f"shard{k}": node for k, node in enumerate(nodes)},
                       interrupted=done.stopped_by.startswith("interrupted"),
                       startup_seconds=startup)
    finally:
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # already dead
                pass
        ray.shutdown()  # a local instance stops with it; a cluster keeps running
