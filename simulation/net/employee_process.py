"""The thin process wrapper around the Employee state machine: pipe in, pipe out, logs."""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from simulation.config import (
    EXACT,
    Role,
    Scenario,
    computation_of,
)
from simulation.ml.hardware import INTRA_OP_THREADS_OF_COMPUTATION, TF_ENVIRONMENT_OF_COMPUTATION
from simulation.ml.tasks import learning_rate_of, model_id_of, stage_samples, task_of
from simulation.net import frames
from simulation.net.logs import log_happenings, log_to_queue
from simulation.net.shutdown import ignore_interrupts, send_failure
from simulation.node.adversaries import Crashed, hash_trainer_for, label_map_for, make_employee
from simulation.node.genesis import genesis_of
from simulation.protocol.encoding import derive_keypair
from simulation.protocol.stages import (
    StageResult,
    Trainer,
)


class TimedTrainer:
    """Measures the wall time and this process's CPU time of each newly trained stage (the
    state machine has no clock). The CPU time counts every thread of the process, and
    training is all the process does meanwhile."""

    def __init__(self, inner: Trainer):
        self.inner = inner
        self.model_id = inner.model_id
        self.stage_seconds: list[float] = []
        self.stage_cpu_seconds: list[float] = []
        self.samples: list[int] = []

    def result(self, stage: int) -> StageResult:
        while len(self.stage_seconds) < stage:
            self.result(len(self.stage_seconds))
        if len(self.stage_seconds) == stage:
            started, cpu_started = time.perf_counter(), time.process_time()
            outcome = self.inner.result(stage)
            self.stage_cpu_seconds.append(time.process_time() - cpu_started)
            self.stage_seconds.append(time.perf_counter() - started)
            self.samples.append(len(outcome.losses))
            return outcome
        return self.inner.result(stage)

    def test_accuracy(self, stage: int) -> float:
        return self.inner.test_accuracy(stage)

    def timed(self, report: Any) -> Any:
        """``report`` (an EmployeeReport) with this trainer's timings."""
        return replace(report, stage_seconds=tuple(self.stage_seconds),
                       stage_cpu_seconds=tuple(self.stage_cpu_seconds),
                       stage_samples=tuple(self.samples))


def make_trainer(scenario: Scenario, dataset_spec: Any, behaviour: str, index: int
                 ) -> tuple[Trainer, Any]:
    """The trainer for employee ``index``, and whatever must stay alive with it."""
    if scenario.trainer == "hash":
        return hash_trainer_for(scenario)(index, behaviour), None
    from simulation.ml.tf_env import import_tensorflow_quietly, use_profile_environment

    use_profile_environment(TF_ENVIRONMENT_OF_COMPUTATION.get(
        computation_of(scenario, index), {}))  # before TensorFlow is imported
    noise = import_tensorflow_quietly()
    if noise:
        logging.getLogger("pot.tensorflow").debug("TensorFlow start-up output: %s",
                                                  noise.strip())
    from simulation.ml.dataset import attach_dataset

    data, shared = attach_dataset(dataset_spec)
    return keras_trainer(scenario, data, behaviour, index), shared


def keras_trainer(scenario: Scenario, data: Any, behaviour: str, index: int) -> Trainer:
    """Employee ``index``'s Keras trainer of the scenario's task on ``data`` (its Dataset;
    TensorFlow already configured)."""
    from simulation.ml.keras_training import KerasTrainer

    task = task_of(scenario)
    return KerasTrainer(model_id_of(scenario), data, scenario.tf_seed,
                        stage_samples(task, scenario),
                        label_map=label_map_for(scenario, behaviour),
                        learning_rate=learning_rate_of(task, scenario), task=task,
                        stage_cache=stage_cache_for(scenario, behaviour, index),
                        jit_compile=computation_of(scenario, index) == "xla",
                        intra_op_threads=INTRA_OP_THREADS_OF_COMPUTATION.get(
                            computation_of(scenario, index), 1))


def stage_cache_for(scenario: Scenario, behaviour: str, index: int) -> Any:
    """STAGE_CACHE's entries for employee ``index``'s line of training (None: off): the
    model id, the computation, the labels and the TensorFlow and Keras versions."""
    if not scenario.stage_cache:
        return None
    import keras
    import tensorflow as tf

    from simulation.ml.stage_cache import StageCache

    labels = "honest" if label_map_for(scenario, behaviour) is None else \
        f"poisoned-seed{scenario.seed}-rate{scenario.poison_rate!r}"
    line = (f"{model_id_of(scenario)}|{computation_of(scenario, index)}|{labels}|"
            f"tensorflow{tf.__version__}|keras{keras.__version__}")
    return StageCache(scenario.stage_cache, line)


def employee_main(index: int, scenario: Scenario, conn: Connection, log_queue: Any,
                  dataset_spec: Any, behaviour: str = "honest") -> None:
    ignore_interrupts()
    log_to_queue(log_queue)
    log = logging.getLogger(f"pot.E{index}")
    if scenario.trainer == "keras" and "tensorflow" not in sys.modules \
            and computation_of(scenario, index) not in TF_ENVIRONMENT_OF_COMPUTATION:
        log.warning("E%d: the fork server did not preload TensorFlow; start-up will be "
                    "slow", index)
    try:
        inner, _keep = make_trainer(scenario, dataset_spec, behaviour, index)
        trainer = TimedTrainer(inner)
        employee = make_employee(Role(behaviour), index, scenario, genesis_of(scenario), trainer,
                                 derive_keypair(scenario.seed, "employee", index))
        if behaviour != Role.HONEST:
            log.info("E%d is an adversary: %s", index, behaviour)
        computation = computation_of(scenario, index)
        if computation != EXACT and scenario.trainer == "keras":
            log.info("E%d trains as hardware profile %s (pid %d, TF_ENABLE_ONEDNN_OPTS=%s, "
                     "%d intra-op thread(s), XLA %s)", index, computation, os.getpid(),
                     os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
                     INTRA_OP_THREADS_OF_COMPUTATION.get(computation, 1),
                     "on" if computation == "xla" else "off")
        log.debug("E%d ready (pid %d)", index, os.getpid())
        conn.send_bytes(frames.Hello(index).to_wire())
        while True:
            frame = frames.read(conn.recv_bytes(frames.MAX_CONTROL_FRAME_BYTES),
                                frames.Tick, frames.StopAndReport)
            if isinstance(frame, frames.Tick):
                try:
                    ready = employee.step(frame.t, frame.msgs)
                except Crashed as exc:
                    log.warning("%s: the process exits now", exc)
                    logging.shutdown()
                    os._exit(3)  # a hard crash: no report, the pipe just closes
                for event in ready.events:
                    log.log(event.level, event.text)
                if ready.happenings:
                    log_happenings(ready.happenings)
                junk = employee.behaviour.oversized_frame(ready.tick,
                                                          frames.MAX_CONTROL_FRAME_BYTES)
                if junk is not None:
                    log.info("E%d writes an oversized frame of %d bytes", index, len(junk))
                    conn.send_bytes(junk)
                    continue
                conn.send_bytes(frames.Done(ready.tick, ready.outgoing, ready.direct,
                                            employee.status()).to_wire())
            elif isinstance(frame, frames.StopAndReport):
                report = trainer.timed(employee.final_report(list(frame.evaluate)))
                cache = getattr(inner, "stage_cache", None)
                if cache is not None:
                    log.info("E%d read %d stages from the stage cache and trained %d",
                             index, cache.hits, cache.stores)
                conn.send_bytes(frames.PartyReport(report.to_wire()).to_wire())
                return
    except (EOFError, BrokenPipeError, ConnectionResetError):
        log.warning("E%d lost its pipe to the network; exiting", index)
    except Exception:
        log.exception("E%d crashed", index)
        send_failure(conn)
        raise SystemExit(1) from None
