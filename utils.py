"""Small helpers the entry points share: sample-grid images, the command line of a script, the
--lr_decay_epochs list and pyplot. Errors are in errors.py, file writing in files.py, the CSV logs
in csv_log.py.

TensorFlow and Keras are imported by the functions that use them, not here: plot_logs.py, and
main.py's --help and flag errors, then run without loading them (5 s on a 2-core CPU)."""
import os
import sys

import numpy as np

from errors import UsageError
from files import saving


def command(script, *args):
    """A command line running one of this project's scripts as the user would type it here: this
    process's interpreter (.venv/bin/python in a fresh clone) and the script's path, both
    relative to the current folder when below it."""
    root = os.path.dirname(os.path.abspath(__file__))

    def typed(path):
        relative = os.path.relpath(path)
        return relative if not relative.startswith('..') else path

    python = typed(sys.executable) if os.path.abspath(sys.executable).startswith(
        os.getcwd()) else 'python'
    return ' '.join((python, typed(os.path.join(root, script))) + args)


def parse_epochs(text, flag):
    """'10,20,25' -> (10, 20, 25); '' -> (); UsageError unless a rising list of epochs."""
    try:
        epochs = tuple(int(e) for e in text.split(',') if e.strip())
    except ValueError:
        epochs = (0,)
    if any(e <= 0 for e in epochs) or list(epochs) != sorted(set(epochs)):
        raise UsageError('{}={} is not a rising list of epochs, e.g. 10,20,25 (the seed\'s), or '
                         'empty for a constant learning rate.'.format(flag, text))
    return epochs


# ----------------------------------------------------------------------------- images

def to_uint8(images):
    """Images in [-1, 1] (numpy or tensor) -> uint8 numpy array in [0, 255]."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images, rows, cols, pad=2, pad_value=255):
    """Tile [rows*cols, H, W, C] uint8 images into one [rows*H+..., cols*W+..., C] image."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    if n != rows * cols:
        raise ValueError('make_grid needs {} images, got {}'.format(rows * cols, n))
    grid = np.full((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, c),
                   pad_value, dtype=images.dtype)
    for i in range(n):
        r, col = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = images[i]
    return grid


# the long side, in pixels, that a written grid is at least (nearest-neighbour upscaling)
VIEW_SIDE = 256


def viewable(image, side=VIEW_SIDE):
    """A uint8 [H, W, C] image enlarged by the whole factor that makes its long side at least
    side pixels (each pixel a square block: nothing blurred or invented)."""
    factor = max(1, -(-side // max(image.shape[:2])))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def write_png(path, image, what='a picture'):
    """Write a uint8 [H, W, 1 or 3] array as a grayscale or RGB PNG, completely or not at all."""
    import tensorflow as tf
    with saving(what, path) as tmp:
        tf.io.write_file(tmp, tf.io.encode_png(image))


def generate_and_save_images(predictions, epoch, files, rows=4, cols=4):
    """Save the 16 fixed-noise samples of a 1-based epoch as a 4x4 grid at files.grid(epoch)
    (files: a run_files.RunFiles), enlarged to be seen (viewable); returns the exact grid. A
    conditional run's are rows x cols: a row per class, the same latents in every row."""
    grid = make_grid(to_uint8(predictions), rows, cols)
    write_png(files.grid(epoch), viewable(grid), 'the sample grid of epoch {}'.format(epoch))
    return grid


# ----------------------------------------------------------------------------- plots

def pyplot():
    """matplotlib.pyplot on the Agg backend: files only, no screen needed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt
