"""The parties, as pure state machines (a tick and messages in, messages out): the
employee (``employee``), its adversarial variants (``adversaries``), the employer's
light client (``employer``), the users (``users``) and the genesis they share
(``genesis``). No pipes, clocks or logging handlers.

Imports ``simulation.protocol``, ``simulation.ml`` (the trainers) and ``config``."""
