"""Fixtures: generated MNIST and CelebA data, and TensorFlow set up as the entry points set it up.

TensorFlow is imported by the fixtures, not here: pytest-xdist's controller process loads this file
too, and importing TensorFlow there would cost every run 5 s before the first test.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # before any test module imports TensorFlow
# one thread per TensorFlow op pool in every test process and the entry points they start:
# pytest-xdist already runs a process per core, and more threads than cores only add switching
for _pool in ('TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS'):
    os.environ.setdefault(_pool, '1')


@pytest.fixture(autouse=True, scope='session')
def tensorflow_settings():
    """The entry points' process-wide TensorFlow settings, once per test process."""
    import devices
    devices.configure_tensorflow()


@pytest.fixture(autouse=True)
def float32_policy(tensorflow_settings):
    """Every test starts and ends with Keras' default float32 policy."""
    import keras
    keras.mixed_precision.set_global_policy('float32')
    yield
    keras.mixed_precision.set_global_policy('float32')


@pytest.fixture(scope='session')
def mnist_npz(tmp_path_factory):
    """A tiny Keras-layout mnist.npz of 64 training digits."""
    from tools import synthetic
    return synthetic.write_mnist(str(tmp_path_factory.mktemp('mnist') / 'mnist.npz'))


@pytest.fixture(scope='session')
def digits_run(tmp_path_factory):
    """(folder, Trainer) of the README's quick start cut to one loop of 4 steps (its --ema on),
    --bbox asked (it is ignored): trained once per test process for the tests that read one."""
    from helpers import quick_start_settings, train_in_process
    folder = str(tmp_path_factory.mktemp('digits_run'))
    settings = quick_start_settings(epochs=1, steps_per_epoch=4, bbox=True)
    assert settings['filters'] == 256 and settings['ema'] == 0.999 \
        and settings['lr'] == 4e-4 and settings['lr_D'] == 2e-4 and settings['r1'] == 0.01
    return folder, train_in_process(folder, **settings)


@pytest.fixture(scope='session')
def celeba_root(tmp_path_factory):
    """An official-layout CelebA folder of 36 images (22 train, 7 val, 7 test) and its bboxes."""
    from tools import synthetic
    root = str(tmp_path_factory.mktemp('celeba'))
    return root, synthetic.write_celeba(root, n=36)


@pytest.fixture(scope='session')
def records(celeba_root, tmp_path_factory):
    """celeba_root converted to sharded TFRecords (all partitions, all three image types)."""
    import convert_tfrecord
    out = str(tmp_path_factory.mktemp('records'))
    convert_tfrecord.convert(celeba_root[0], out, 'all', shard_mb=0.01, progress=False)
    return out


def pytest_collection_modifyitems(items):
    """The tests marked slow first, so that the last minute on each core is short tests and not
    one process training alone (pytest.ini hands them out in this order)."""
    items.sort(key=lambda item: item.get_closest_marker('slow') is None)
