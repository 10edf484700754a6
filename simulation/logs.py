"""Logging from many processes through one writer.

Each child puts its records on a multiprocessing queue (``QueueHandler``); the parent's
``QueueListener`` writes them to the log file (DEBUG and up) and the console (INFO and
up, or only progress and warnings with --quiet), so lines never interleave.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from typing import Any

FILE_FORMAT = "%(asctime)s %(levelname)-7s %(processName)-10s %(message)s"
CONSOLE_FORMAT = "%(levelname)-7s %(message)s"
PROGRESS_LOGGER = "pot.progress"
OWN_LOGGERS = ("pot", "simulation")


class _QuietConsoleFilter(logging.Filter):
    """With --quiet the console shows only progress lines, warnings and errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == PROGRESS_LOGGER or record.levelno >= logging.WARNING


def start_listener(queue: Any, log_file: str, quiet: bool) -> logging.handlers.QueueListener:
    file_handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(logging.INFO)
    console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    if quiet:
        console.addFilter(_QuietConsoleFilter())
    listener = logging.handlers.QueueListener(
        queue, file_handler, console, respect_handler_level=True
    )
    listener.start()
    return listener


def log_to_queue(queue: Any) -> None:
    """In a child process (or the parent): send every record to the listener's queue."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.handlers.QueueHandler(queue))
    # Our loggers at DEBUG; third-party libraries (TensorFlow, absl ...) only from WARNING.
    root.setLevel(logging.WARNING)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
