"""How a run ends when something goes wrong: signals, and children that fail.

The parent (``runner``) alone decides how a run stops. Its children ignore SIGINT and
SIGTERM: a Ctrl-C in a terminal reaches the whole process group, and children that died
on it would print tracebacks and leave no report. The parent instead asks the network to
stop at the next tick (``StopRequest``); the network collects every party's report as at
a normal end, and the run's results are written, marked as interrupted. If the network
does not answer within a grace period, or a second signal comes, the parent kills the
children. A child that fails with an exception tells the network why in a ``failed``
frame before it exits, so the summary can say which party died of what.
"""

from __future__ import annotations

import os
import signal
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from simulation.net import frames

# Exit codes of ``python main.py`` (documented in the README).
EXIT_OK = 0
EXIT_NOT_CONVERGED = 1
EXIT_BAD_INPUT = 2
EXIT_SELF_CHECK_FAILED = 3
# The simulator itself failed: a bug (main.py prints the traceback), or the results file
# could not be written at the end of the run. Never 1, which means "did not converge".
EXIT_INTERNAL_ERROR = 4
INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM)
FAILURE_TEXT_BYTES = 4000  # the tail of a traceback that travels in a failed frame


# For the tests of what a signal at each moment of a run leaves (tests/test_faults.py):
# with POT_TEST_SIGNAL_AT=PHASE or PHASE:group in its environment, main.py sends SIGINT to
# itself (or to its whole process group, as a terminal's Ctrl-C does) when it reaches
# PHASE, so that the signal lands exactly there, whatever the machine's speed.
SIGNAL_AT = "POT_TEST_SIGNAL_AT"
PHASES = ("parsed", "validated", "fork-server", "logging", "mnist", "children", "network",
          "result")


def signal_point(phase: str) -> None:
    """A named moment of main.py's run (PHASES); see SIGNAL_AT."""
    wanted = os.environ.get(SIGNAL_AT)
    if not wanted:
        return
    name, _, how = wanted.partition(":")
    if name == phase:
        if how == "group":
            os.killpg(0, signal.SIGINT)
        else:
            os.kill(os.getpid(), signal.SIGINT)


def exit_code_for_signal(signum: int) -> int:
    """The shell's convention: 128 + the signal's number (130 SIGINT, 143 SIGTERM)."""
    return 128 + signum


@contextmanager
def interrupts_ignored_by_new_processes() -> Iterator[None]:
    """While the parent starts the fork server (in its only thread): SIGINT and SIGTERM
    are set to SIG_IGN, which a new process inherits through fork and exec (Python keeps
    an inherited SIG_IGN for SIGINT). The fork server and every child it forks then never
    die of a Ctrl-C meant for the parent (a terminal signals the whole process group).
    They are also blocked meanwhile: Linux never discards a blocked signal, so one that
    comes now stays pending and reaches the parent's handler once it is restored."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # signal.signal works in the main thread only; tests run there anyway
        return
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPT_SIGNALS)
    old = {signum: signal.signal(signum, signal.SIG_IGN) for signum in INTERRUPT_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def ignore_interrupts() -> None:
    """In a child process: leave SIGINT and SIGTERM to the parent (see the module doc)."""
    for signum in INTERRUPT_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def send_failure(conn: Any) -> None:
    """In a child's ``except Exception``: the traceback to the network, if the pipe works."""
    text = traceback.format_exc()[-FAILURE_TEXT_BYTES:]
    try:
        conn.send_bytes(frames.Failed(text).to_wire())
    except (OSError, ValueError):
        pass


def failure_line(text: str) -> str:
    """The last line of a traceback: the exception and its message."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown error"


class StopRequest:
    """The parent's side of a one-way pipe to the network: ``request()`` asks it to stop
    after the current tick. The network also stops when the pipe reaches EOF, that is,
    when the parent is gone (killed), so that no child outlives it."""

    def __init__(self, ctx: Any):
        self.receiver, self._sender = ctx.Pipe(duplex=False)
        # The signal handler only records (``signalled``, ``kill_now``); the parent's
        # start-up and wait loop act on it at safe points (see runner).
        self.signalled: int | None = None  # the first SIGINT / SIGTERM received
        self.requested: int | None = None  # the signal that asked for the stop
        self.network_started = False  # before: a signal unwinds the start-up instead
        self.kill_now = False  # a second signal: no more waiting for reports

    def request(self, signum: int) -> None:
        if self.requested is None:
            self.requested = signum
            try:
                self._sender.send_bytes(frames.Interrupt(signum).to_wire())
            except (OSError, ValueError):
                pass

    def close_receiver(self) -> None:
        """After the network started: only it may hold the receiving end."""
        self.receiver.close()


def stop_requested(receiver: Any) -> str | None:
    """In the network, once per tick: why to stop now, or None to go on."""
    if receiver is None or not receiver.poll():
        return None
    try:
        signum = frames.read_one(receiver.recv_bytes(1024), frames.Interrupt).signal
    except (EOFError, OSError):
        return "the parent process is gone"
    except Exception:  # noqa: BLE001 - any bad frame still means: stop
        return "interrupted"
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum!r}"
    return f"interrupted by {name}"
