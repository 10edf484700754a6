"""What a run says about itself: the summary built from the parties' reports
(``reporting``), its self-check (``self_check``) and the run folder's pictures
(``pictures``).

Imports ``simulation.protocol`` and ``config``."""
