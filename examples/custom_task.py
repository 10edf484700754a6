"""A training task of your own: three interleaved spirals in the plane, classified by a
small tanh network trained with mini-batches of 4. Run it with

    python main.py --task examples/custom_task.py:TASK

Every employee must build the same data: generate it from a fixed seed (or read a file).
The model must end in a softmax over num_classes; Keras is passed in, not imported here.
"""

import numpy as np

from simulation.ml.tasks import Dataset, Task

CLASSES, POINTS = 3, 400  # points per class: 1000 of the 1200 to train on, 200 to test


def spirals() -> Dataset:
    rng = np.random.default_rng(7)
    radius = np.linspace(0.1, 1.0, POINTS)
    points, labels = [], []
    for label in range(CLASSES):
        angle = 4 * radius + 2 * np.pi * label / CLASSES + rng.normal(0, 0.2, POINTS)
        points.append(np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1))
        labels.append(np.full(POINTS, label, np.uint8))
    order = rng.permutation(CLASSES * POINTS)  # a stage trains consecutive samples: mix
    x = np.concatenate(points).astype(np.float32)[order]
    y = np.concatenate(labels)[order]
    return Dataset(x[:1000], y[:1000], x[1000:], y[1000:], "three spirals (numpy)")


def network(keras):
    return keras.Sequential([
        keras.Input(shape=(2,)),
        keras.layers.Dense(32, activation="tanh"),
        keras.layers.Dense(32, activation="tanh"),
        keras.layers.Dense(CLASSES, activation="softmax"),
    ])


TASK = Task(name="spirals-mlp", load_data=spirals, build_model=network, input_shape=(2,),
            num_classes=CLASSES, train_size=1000, test_size=200, samples_per_stage=40,
            batch_size=4, optimizer="adam", learning_rate=0.01,
            description="three spirals, a 2-32-32-3 tanh network, batches of 4")
