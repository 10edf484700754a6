"""Transport and clock: how the parties are run. ``lockstep`` drives a whole network in
one process; the process backend wires one OS process per party (``runner``,
``network``, ``employee_process``, ``users_process``, with ``frames`` on the pipes,
``logs`` for the one log writer and ``shutdown`` for signals and exit codes). Both
backends share ``relay``: delivery order, the end condition and who evaluates.

Imports ``node``, ``ml``, ``protocol``, ``report`` and ``config``."""
