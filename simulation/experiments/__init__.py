"""Studies over many runs: ``sweep`` (``python -m simulation.sweep``) runs main.py over
knob values and seeds and aggregates the results with intervals.

Imports only ``config``: every run is a separate main.py process."""
