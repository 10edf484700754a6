"""What a driver watches while the conductor runs the ticks (``conduct``'s
``after_tick``): the console's progress lines, the wall-clock guard, and the pacing of a
run watched live. None of it changes an outcome; the lockstep backend runs without it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from simulation.config import Scenario
from simulation.net.logs import PROGRESS_LOGGER
from simulation.protocol.records import Status

log = logging.getLogger("pot.network")
progress = logging.getLogger(PROGRESS_LOGGER)


class Watch:
    """An ``after_tick`` for a driver: logs the longest honest chain each time it grows
    (the console's progress lines), stops the run once MAX_WALL_SECONDS have passed
    since ``started`` (time.monotonic()), and with TICK_SECONDS > 0 keeps the ticks that
    far apart (pass ``max_window`` to ``conduct``: a paced run takes one tick per
    exchange). ``live``: (live employees, all employees); the users' process is not one
    of them, and ``users_down`` (if the driver's users can fail) says when it is gone."""

    def __init__(self, scenario: Scenario, started: float,
                 live: Callable[[], tuple[int, int]],
                 users_down: Callable[[], bool] | None = None):
        self.scenario = scenario
        self.started = started
        self.live = live
        self.users_down = users_down
        self.best_height = 0
        self.last_tick_at: float | None = None  # when the previous tick ended
        # One tick per exchange when paced; else whatever the conductor chooses.
        self.max_window = 1 if scenario.tick_seconds > 0 else None

    def __call__(self, tick: int, statuses: list[Status]) -> str | None:
        height = max((st.height for st in statuses), default=0)
        if height > self.best_height:
            self.best_height = height
            live, employees = self.live()
            users = ("; the users' process is down"
                     if self.users_down is not None and self.users_down() else "")
            progress.info("tick %d: longest honest chain has %d blocks (live employees "
                          "%d/%d%s)", tick, height + 1, live, employees, users)
        self._pace()
        if time.monotonic() - self.started > self.scenario.max_wall_seconds:
            log.error("wall-clock guard: %.0f s passed (MAX_WALL_SECONDS)",
                      self.scenario.max_wall_seconds)
            return "MAX_WALL_SECONDS"
        return None

    def _pace(self) -> None:
        if self.scenario.tick_seconds > 0:
            if self.last_tick_at is not None:
                time.sleep(max(0.0, self.scenario.tick_seconds
                               - (time.monotonic() - self.last_tick_at)))
            self.last_tick_at = time.monotonic()
