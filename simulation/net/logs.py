"""Logging from many processes through one writer.

Each child sends its records down a pipe of its own (``QueueHandler`` over
``PipeSender``); a thread of the parent (``LogPipes``) moves them to the parent's queue,
whose ``QueueListener`` writes them to the log file (DEBUG and up) and the console (INFO
and up, or only progress and warnings with --quiet), so lines never interleave. Not one
queue shared by the children: a multiprocessing queue's writers share a lock, and a child
killed (SIGKILL) while it writes keeps it, so that every other process blocks on its next
record and at exit, and the run hangs. A pipe has one writer: a killed child ends only
its own, and the parent reads end-of-file there. On a terminal
(stdout a tty, no --quiet) the progress lines become a tqdm bar instead (``ProgressBar``);
the log file keeps them as lines.

With EVENT_LOG_MB the same listener also writes the event log (``EventLog``): every
party sends its records of a tick (``protocol.events``) as one record of the logger
``pot.events`` (``log_happenings``), which goes to events.jsonl instead of the log file
and the console.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TextIO, cast

from simulation.protocol.events import BEGIN, END, SCHEMA, Event

FILE_FORMAT = "%(asctime)s %(levelname)-7s %(processName)-10s %(message)s"
CONSOLE_FORMAT = "%(levelname)-7s %(message)s"
PROGRESS_LOGGER = "pot.progress"
EVENTS_LOGGER = "pot.events"  # the event log's records: events.jsonl, not the log file
OWN_LOGGERS = ("pot", "simulation")
_events_logger = logging.getLogger(EVENTS_LOGGER)


class _QuietConsoleFilter(logging.Filter):
    """With --quiet the console shows only progress lines, warnings and errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == PROGRESS_LOGGER or record.levelno >= logging.WARNING


# What the network process logs on PROGRESS_LOGGER when the longest honest chain grows.
_PROGRESS_LINE = re.compile(r"tick (\d+): longest honest chain has (\d+) blocks")


class ProgressBar:
    """A tqdm bar: blocks of the longest honest chain towards TARGET_BLOCKCHAIN_LENGTH
    (genesis counted), with the tick and an estimated time to go in the postfix. It is
    fed the network's progress lines (``update``); ``write`` prints a line above it."""

    def __init__(self, total: int, file: TextIO):
        from tqdm import tqdm  # only the parent, and only on a terminal, needs it

        self._tqdm = tqdm
        self.total = total
        self.file = file
        self.bar = tqdm(total=total, initial=1, file=file, desc="blocks", unit="block",
                        dynamic_ncols=True, leave=True, mininterval=0.1,
                        bar_format="{desc} {n}/{total} |{bar}| {elapsed}{postfix}")
        self.bar.set_postfix_str("starting up")
        self._first: tuple[float, int] | None = None  # (time, tick) of the first line

    @property
    def active(self) -> bool:
        return not self.bar.disable  # tqdm disables a bar when it is closed

    def update(self, message: str) -> bool:
        """Moves the bar to what a progress line says; False if it is not one."""
        match = _PROGRESS_LINE.search(message)
        if match is None:
            return False
        tick, blocks = int(match.group(1)), int(match.group(2))
        now = time.monotonic()
        if self._first is None:
            self._first = (now, tick)
        self.bar.n = min(blocks, self.total)
        self.bar.set_postfix_str(f"tick {tick}, ETA {self._eta(now, tick, blocks)}",
                                 refresh=False)
        self.bar.refresh()
        return True

    def _eta(self, now: float, tick: int, blocks: int) -> str:
        """Ticks per block so far (genesis is block 1 at tick 0) times the wall seconds
        per tick since the first progress line."""
        if blocks >= self.total:
            return str(self._tqdm.format_interval(0))
        assert self._first is not None
        first_time, first_tick = self._first
        if blocks < 2 or tick <= first_tick:
            return "?"
        seconds_per_tick = (now - first_time) / (tick - first_tick)
        ticks_to_go = (self.total - blocks) * (tick + 1) / (blocks - 1)
        return str(self._tqdm.format_interval(ticks_to_go * seconds_per_tick))

    def write(self, line: str) -> None:
        self._tqdm.write(line, file=self.file)

    def close(self) -> None:
        self.bar.close()


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The console: lines as they come, or, with a progress bar, progress lines fed to
    the bar and every other line written above it."""

    def __init__(self, stream: TextIO, bar: ProgressBar | None = None):
        super().__init__(stream)
        self.bar = bar

    def emit(self, record: logging.LogRecord) -> None:
        bar = self.bar
        if bar is None or not bar.active:
            super().emit(record)
            return
        try:
            if record.name == PROGRESS_LOGGER and bar.update(record.getMessage()):
                return
            bar.write(self.format(record))
        except Exception:  # noqa: BLE001 - as logging.StreamHandler does
            self.handleError(record)

    def close_bar(self) -> None:
        """Closes the bar (its last state stays on the screen); lines go on as lines."""
        self.acquire()  # not while the listener's thread is drawing it
        try:
            if self.bar is not None:
                self.bar.close()
        finally:
            self.release()


class _NotEvents(logging.Filter):
    """The log file and the console leave the event log's records to ``EventLog``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != EVENTS_LOGGER


class EventLog(logging.Handler):
    """events.jsonl: the event log's records as they reach the listener, up to
    ``limit_bytes``. A record holds one party's events of one tick, as JSON lines. The
    first record that does not fit cuts the log: nothing is written after it (records
    of different processes arrive in roughly, not exactly, tick order, so the log is
    complete only through the tick before the earliest one left out), a warning says so
    at once, and ``close`` writes the last line with the count and that tick."""

    def __init__(self, path: str, limit_bytes: int):
        super().__init__(logging.DEBUG)
        self.addFilter(lambda record: record.name == EVENTS_LOGGER)
        self.path = path
        self.limit_bytes = limit_bytes
        self._file: TextIO | None = open(path, "w", encoding="utf-8")  # noqa: SIM115
        self.written_bytes = self._write({"kind": BEGIN, "schema": SCHEMA,
                                          "limit_bytes": limit_bytes})
        self.events = 0
        self.dropped = 0
        self.first_dropped_tick: int | None = None

    def _write(self, line: dict[str, Any]) -> int:
        text = json.dumps(line, separators=(",", ":")) + "\n"
        assert self._file is not None
        self._file.write(text)
        return len(text)

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage() + "\n"  # JSON of ASCII only: characters are bytes
        count = getattr(record, "pot_events", 1)
        tick = getattr(record, "pot_tick", 0)
        if self._file is None:
            return
        if self.first_dropped_tick is None and \
                self.written_bytes + len(text) <= self.limit_bytes:
            self._file.write(text)
            self.written_bytes += len(text)
            self.events += count
            return
        if self.first_dropped_tick is None:
            logging.getLogger("pot.runner").warning(
                "the event log reached EVENT_LOG_MB (%d bytes) at tick %d: later events "
                "are left out of %s (its last line says so)", self.limit_bytes, tick,
                self.path)
        self.dropped += count
        self.first_dropped_tick = min(tick, self.first_dropped_tick
                                      if self.first_dropped_tick is not None else tick)

    def close(self) -> None:
        """Writes the last line (once) and closes the file."""
        self.acquire()
        try:
            if self._file is not None:
                end: dict[str, Any] = {"kind": END, "events": self.events}
                if self.first_dropped_tick is not None:
                    end.update(cut=True, complete_through_tick=self.first_dropped_tick - 1,
                               dropped=self.dropped)
                self._write(end)
                self._file.close()
                self._file = None
        finally:
            self.release()
        super().close()


def log_happenings(happenings: Sequence[Event]) -> None:
    """One party's event log records of one tick, to the listener as one record."""
    if happenings:
        _events_logger.info("\n".join(e.to_line() for e in happenings),
                            extra={"pot_tick": happenings[0].tick,
                                   "pot_events": len(happenings)})


def finish_event_log(listener: logging.handlers.QueueListener) -> str | None:
    """Once every party's records are written (``drain``): the event log's last line;
    returns its path (None: the run keeps none)."""
    for handler in listener.handlers:
        if isinstance(handler, EventLog):
            handler.close()
            return handler.path
    return None


def wants_progress_bar(quiet: bool, stream: Any) -> bool:
    """A bar only on a terminal, and not with --quiet."""
    isatty = getattr(stream, "isatty", None)
    try:
        return not quiet and callable(isatty) and bool(isatty())
    except (OSError, ValueError):
        return False


def start_listener(queue: Any, log_file: str, quiet: bool,
                   progress_total: int | None = None,
                   event_log: tuple[str, int] | None = None) -> logging.handlers.QueueListener:
    """``progress_total``: the target chain length, for a progress bar on a terminal;
    ``event_log``: the path and the byte limit of the event log (None: none)."""
    file_handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
    bar = None
    if progress_total and wants_progress_bar(quiet, sys.stdout):
        bar = ProgressBar(progress_total, sys.stdout)
    console = ConsoleHandler(sys.stdout, bar)
    console.setLevel(logging.INFO)
    console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    if quiet:
        console.addFilter(_QuietConsoleFilter())
    handlers: list[logging.Handler] = [file_handler, console]
    if event_log is not None:
        for handler in handlers:
            handler.addFilter(_NotEvents())
        handlers.append(EventLog(*event_log))
    listener = logging.handlers.QueueListener(
        queue, *handlers, respect_handler_level=True
    )
    listener.start()
    return listener


def drain(listener: logging.handlers.QueueListener) -> None:
    """Wait until every record queued so far is written: the listener's thread handles
    all records queued before its stop sentinel; a new thread then goes on. (BACKEND
    lockstep logs from this process up to the run's last tick, and the summary must
    come after those lines.)"""
    listener.stop()
    listener.start()


def close_progress_bar(listener: logging.handlers.QueueListener) -> None:
    """Closes the listener's progress bar, if it has one (before the summary)."""
    for handler in listener.handlers:
        if isinstance(handler, ConsoleHandler):
            handler.close_bar()


class PipeSender:
    """What a ``QueueHandler`` needs of a queue, over the send end of a child's log pipe."""

    def __init__(self, conn: Connection):
        self._conn = conn

    def put_nowait(self, record: logging.LogRecord) -> None:
        try:
            self._conn.send(record)
        except OSError:  # the parent is gone: nobody is left to read the record
            pass


class LogPipes:
    """The parent's end of the children's log pipes: one thread waits on all of them and
    puts each record on the parent's queue, until every child has closed its pipe."""

    def __init__(self, ctx: Any, queue: Any):
        self._ctx = ctx
        self._queue = queue
        self._readers: list[Connection] = []
        self._thread: threading.Thread | None = None

    def new_pipe(self) -> Connection:
        """A send end for one child (the parent closes its copy once the child started)."""
        receiver, sender = self._ctx.Pipe(duplex=False)
        self._readers.append(receiver)
        return sender  # type: ignore[no-any-return]  # the context's Pipe is untyped

    def start(self) -> None:
        self._thread = threading.Thread(target=self._pump, args=(list(self._readers),),
                                        name="log-pipes", daemon=True)
        self._thread.start()

    def _pump(self, readers: list[Connection]) -> None:
        while readers:
            for ready in wait(readers):
                conn = cast(Connection, ready)  # wait() returns what it was given
                try:
                    record = conn.recv()
                except (EOFError, OSError):  # the child ended, perhaps mid-record
                    readers.remove(conn)
                    conn.close()
                    continue
                self._queue.put_nowait(record)

    def close(self, timeout: float) -> None:
        """After the children ended: their last records reach the queue first."""
        if self._thread is not None:
            self._thread.join(timeout)


def log_to_queue(target: Any) -> None:
    """In a child process (or the parent): send every record to the listener, through
    the child's log pipe (a ``Connection``) or straight onto the parent's queue."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    sink = PipeSender(target) if isinstance(target, Connection) else target
    # A QueueHandler only calls put_nowait, which PipeSender has (typeshed asks for get too).
    root.addHandler(logging.handlers.QueueHandler(sink))  # type: ignore[arg-type]
    # Our loggers at DEBUG; third-party libraries (TensorFlow, absl ...) only from WARNING.
    root.setLevel(logging.WARNING)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)


def stop_logging_to_queue() -> None:
    """In the parent, after the listener stopped: records logged later would pile up in
    a queue nobody reads, and the queue's feeder thread would then block the process's
    exit (a second run in one process, such as a test, showed it)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.handlers.QueueHandler):
            root.removeHandler(handler)
