"""Machine learning: MNIST loading and sharing between processes (``dataset``), the
TensorFlow set-up (``tf_env``), the staged training loop and the hash trainer
(``training``), and the real Keras trainer (``keras_training``).

Imports ``simulation.protocol`` (what a stage and its secret are) and ``config``."""
