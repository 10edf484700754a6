"""Profiling of a run's processes, loaded by the fork server (``tf_preload``) only when
POT_PROFILE_DIR is set in the environment.

Every process forked from the fork server (employees, users, network) then measures where
its CPU time goes and writes ``<process name>.<pid>.json`` to that directory when it ends
normally. By default ("timers") a few functions are wrapped with CPU-time counters
(training, tracing, the model hash, signature checks, framing, pipes, logging: PROFILED
below), which costs microseconds per call; POT_PROFILE=cprofile runs the whole process
under cProfile instead and also writes ``<name>.<pid>.prof``.
``scripts/scale_benchmark.py --profile`` reads them.
"""

from __future__ import annotations

import os
from multiprocessing import util
from typing import Any

# label -> (module, attribute path) of the functions the "timers" profile wraps. Labels
# starting with two spaces are parts of the label above them.
PROFILED = {
    "trainer: build (model, Adam state)": ("simulation.ml.keras_training",
                                           "KerasTrainer.__init__"),
    "trainer: train new stages": ("simulation.ml.keras_training", "KerasTrainer._train_next"),
    "  trace the training graph": ("tensorflow.python.eager.polymorphic_function."
                                   "polymorphic_function", "Function.get_concrete_function"),
    "  model hash (SHA-256 of the weights)": ("simulation.ml.keras_training", "weights_hash"),
    "trainer: test accuracy": ("simulation.ml.keras_training", "KerasTrainer.test_accuracy"),
    "protocol: Employee.step (training included)": ("simulation.node.employee", "Employee.step"),
    "  Ed25519 verify": ("simulation.protocol.encoding", "verify"),
    "  Ed25519 sign": ("simulation.protocol.encoding", "KeyPair.sign"),
    "  parse messages (CBOR, schema)": ("simulation.protocol.messages", "parse_message"),
    "IPC: frames pack/unpack": ("simulation.net.frames", "Frame.to_wire read"),
    "IPC: pipe send/recv (CPU only)": ("multiprocessing.connection",
                                       "Connection.send_bytes Connection.recv_bytes"),
    "logging": ("logging", "Logger.handle"),
}


def _wrap_for_timing(label: str, module_name: str, path: str,
                     totals: dict[str, list[float]]) -> None:
    """Replaces the function at ``module.path`` (and every ``simulation`` module's binding
    of the same function object) with one that adds its CPU time to ``totals[label]``."""
    import functools
    import sys
    import time

    module = sys.modules.get(module_name)
    if module is None:
        return
    *owner_path, name = path.split(".")
    owner: Any = module
    for part in owner_path:
        owner = getattr(owner, part, None)
        if owner is None:
            return
    original = getattr(owner, name, None)  # for a class: the plain function
    if original is None:
        return
    totals.setdefault(label, [0.0, 0])
    clock = time.process_time

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return original(*args, **kwargs)
        finally:
            entry = totals[label]
            entry[0] += clock() - started
            entry[1] += 1

    setattr(owner, name, timed)
    if not owner_path:  # a module function: also where it was imported by name
        for other in list(sys.modules.values()):
            if getattr(other, "__name__", "").startswith("simulation.") and \
                    getattr(other, name, None) is original:
                setattr(other, name, timed)


class _ProfileHook:
    """Registered with multiprocessing's after-fork hooks (which need a weak-referable
    object): profiles each forked child when POT_PROFILE_DIR is set."""

    def __call__(self) -> None:
        directory = os.environ.get("POT_PROFILE_DIR")
        if not directory:
            return
        import json
        import multiprocessing
        import time

        mode = os.environ.get("POT_PROFILE", "timers")
        totals: dict[str, list[float]] = {}
        profiler = None
        if mode == "cprofile":
            import cProfile

            # CPU time of the process (all its threads, TensorFlow's included), not wall
            # time: with a dozen processes on two cores, wall time is mostly waiting.
            profiler = cProfile.Profile(time.process_time)
        else:
            for label, (module_name, paths) in PROFILED.items():
                for path in paths.split():
                    _wrap_for_timing(label, module_name, path, totals)

        def dump() -> None:
            if profiler is not None:
                profiler.disable()
            base = os.path.join(directory, f"{multiprocessing.current_process().name}."
                                           f"{os.getpid()}")
            if profiler is not None:
                profiler.dump_stats(base + ".prof")
            with open(base + ".json", "w", encoding="utf-8") as f:
                json.dump({"mode": mode, "cpu_seconds": time.process_time(),
                           "parts": totals, "order": list(PROFILED)}, f)

        # Finalizers with an exit priority run when the child's target returns.
        util.Finalize(None, dump, exitpriority=100)
        if profiler is not None:
            profiler.enable()


_PROFILE_HOOK = _ProfileHook()


def install() -> None:
    """Profile every child forked from now on."""
    util.register_after_fork(_PROFILE_HOOK, _ProfileHook.__call__)
