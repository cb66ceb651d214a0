"""The files of the array datasets, read as plain data into uint8 numpy arrays: MNIST's npz,
scikit-learn's digits and CIFAR-10's official tarballs (python or binary version) or npz.
Nothing in a user's file is run: CIFAR-10's pickled batches go through an unpickler that admits
only numpy's array classes."""
import io
import pickle
import re
import tarfile

import numpy as np

import files
from errors import UsageError

CIFAR_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'


def keras_download(module, name, fix):
    """The training images and labels of keras.datasets.{module}, or one error saying how to do
    without."""
    import keras
    try:
        (train_x, train_y), _ = getattr(keras.datasets, module).load_data()
    except Exception as e:  # any network or cache failure
        raise UsageError('could not download {} ({}): {}, or try --ImageType=digits, which needs '
                         'no download.'.format(name, type(e).__name__, fix))
    return train_x, train_y.reshape(-1)


def checked_labels(path, labels, count):
    """A dataset's class labels as int64 [count]; UsageError when they are not one whole
    number from 0 per image."""
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != count or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise UsageError('{}: y_train holds {} values of {}, not a class 0, 1, ... for each of '
                         'its {} images: --conditional needs them.'.format(
                             path, len(labels), labels.dtype, count))
    return labels.astype(np.int64)


def read_mnist_npz(path, labels=False):
    """Return the uint8 training digits [N, 28, 28] of an mnist.npz in Keras' layout (with labels:
    and their classes [N])."""
    if path is None:
        x, y = keras_download('mnist', 'MNIST', 'download mnist.npz elsewhere and pass '
                              '--mnist_path=/path/to/mnist.npz')
        return (x, y) if labels else x
    if not files.isfile(path):
        raise UsageError('--mnist_path {} does not exist: give the path of a Keras-layout '
                         'mnist.npz, or leave it empty to download MNIST.'.format(path))
    try:
        with files.open_file(path, 'rb') as f, np.load(f) as data:
            missing = {'x_train', 'y_train', 'x_test', 'y_test'} - set(data.files)
            if missing:
                raise UsageError('{} is not in the mnist.npz layout: it lacks {}; it needs the '
                                 'arrays x_train, y_train, x_test and y_test.'.format(
                                     path, ', '.join(sorted(missing))))
            train_x, train_y = data['x_train'], data['y_train']
    except UsageError:
        raise
    except Exception as e:
        raise UsageError('{} is not a readable .npz file ({}): give a Keras-layout '
                         'mnist.npz.'.format(path, e))
    if train_x.ndim != 3 or train_x.shape[0] == 0:
        raise UsageError('{}: x_train has shape {}, expected [N, 28, 28] digits.'.format(
            path, train_x.shape))
    return (train_x, checked_labels(path, train_y, len(train_x))) if labels else train_x


def read_digits(labels=False):
    """scikit-learn's 1,797 real handwritten digits (UCI, 8x8) as uint8 [N, 28, 28] MNIST-like
    fields (with labels: and their classes [N])."""
    from sklearn.datasets import load_digits
    data = load_digits()
    digits = data.images.astype(np.float32)[..., None] * (255.0 / 16.0)
    # up-sampled to 20x20 and centred with the 4-pixel margin of MNIST's 28x28 fields
    import tensorflow as tf
    digits = tf.image.resize(digits, [20, 20], method='bicubic')
    digits = tf.pad(digits, [[0, 0], [4, 4], [4, 4], [0, 0]])
    digits = np.clip(np.round(digits.numpy()[..., 0]), 0, 255).astype(np.uint8)
    return (digits, data.target.astype(np.int64)) if labels else digits


class CifarBatchUnpickler(pickle.Unpickler):
    """Reads a batch of CIFAR-10's python version, whose dict of arrays names only the classes
    below; any other class is refused before it is looked up, so a crafted file cannot run code."""
    ALLOWED = {('numpy', 'ndarray'), ('numpy', 'dtype'), ('_codecs', 'encode'),
               ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct')}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError('it names {}.{}, which no CIFAR-10 batch holds (a crafted '
                                         'file? it was not run)'.format(module, name))
        return super().find_class(module, name)


def cifar_batch_rows(tar, member):
    """The [N, 3072] uint8 rows and [N] labels of one batch file of either official tarball, read
    as plain data: the binary version's records of a label byte and 3,072 pixel bytes, or the
    python version's dict through CifarBatchUnpickler."""
    data = tar.extractfile(member).read()
    if member.endswith('.bin'):
        if len(data) % 3073:
            raise ValueError('{} is {} bytes, not whole records of 3,073'.format(member, len(data)))
        records = np.frombuffer(data, np.uint8).reshape(-1, 3073)
        return records[:, 1:], records[:, 0].astype(np.int64)
    batch = CifarBatchUnpickler(io.BytesIO(data), encoding='bytes').load()
    rows = batch.get(b'data') if isinstance(batch, dict) else None
    if not isinstance(rows, np.ndarray) or rows.dtype != np.uint8 or rows.ndim != 2 \
            or rows.shape[1] != 3072:
        raise ValueError('{} holds no [N, 3072] uint8 data array'.format(member))
    labels = np.asarray(batch.get(b'labels', []), np.int64)
    if len(labels) != len(rows):
        raise ValueError('{} holds {} labels for {} images'.format(member, len(labels), len(rows)))
    return rows, labels


def read_cifar10(path, labels=False):
    """CIFAR-10's 50,000 uint8 training images [N, 32, 32, 3] (with labels: and their classes
    [N]): from the official cifar-10-python.tar.gz or cifar-10-binary.tar.gz, an npz in Keras'
    layout (no pickled objects), or (path None) Keras' download. Nothing in the file is run."""
    if path is None:
        x, y = keras_download('cifar10', 'CIFAR-10', 'download {} elsewhere and pass '
                              '--cifar_path=/path/to/cifar-10-python.tar.gz'.format(CIFAR_URL))
        return (x, y) if labels else x
    if not files.isfile(path):
        raise UsageError('--cifar_path {} does not exist: give the official '
                         'cifar-10-python.tar.gz or an npz with x_train, or leave it empty to '
                         'download CIFAR-10.'.format(path))
    try:
        if path.endswith('.npz'):
            with files.open_file(path, 'rb') as f, np.load(f) as data:
                if 'x_train' not in data.files:
                    raise UsageError('{} has no x_train array: it needs Keras\' layout '
                                     '(x_train, y_train, x_test, y_test).'.format(path))
                train_x = data['x_train']
                train_y = data['y_train'] if 'y_train' in data.files else None
        else:
            with files.open_file(path, 'rb') as f, tarfile.open(fileobj=f) as tar:  # (read by files)
                batches = sorted(m for m in tar.getnames()
                                 if re.search(r'/data_batch_\d+(\.bin)?$', m))
                if not batches:
                    raise UsageError('{} holds no cifar-10-batches-py/data_batch_* (or '
                                     'cifar-10-batches-bin/data_batch_*.bin) files: is it the '
                                     'python or binary version of CIFAR-10 ({})?'.format(
                                         path, CIFAR_URL))
                rows, classes = zip(*[cifar_batch_rows(tar, m) for m in batches])
            train_x = np.concatenate(rows).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            train_y = np.concatenate(classes)
    except UsageError:
        raise
    except Exception as e:
        raise UsageError('{} could not be read as CIFAR-10 ({}): give the official '
                         'cifar-10-python.tar.gz or a Keras-layout npz.'.format(path, e))
    if train_x.ndim != 4 or train_x.shape[1:] != (32, 32, 3) or not len(train_x):
        raise UsageError('{}: the training images have shape {}, expected [N, 32, 32, 3].'.format(
            path, train_x.shape))
    if not labels:
        return train_x
    return train_x, checked_labels(path, [] if train_y is None else train_y, len(train_x))
