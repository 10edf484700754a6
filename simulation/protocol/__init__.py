"""The protocol's rules, pure and TensorFlow-free: canonical encoding and signatures
(``encoding``), the five messages (``messages``), stages and training secrets
(``stages``), the ledger and genesis (``ledger``), the block tree and fork choice
(``chain``), the PoS lottery (``lottery``), the stakeholder draw (``follow_the_coin``)
and the checks every received message goes through (``validation``).

Imports only ``simulation.config`` and itself."""
