"""What several entry points share: errors, losses, the LR schedule, sample grids, the CSV loss log."""
import json
import os
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

CSV_COLUMNS = ('epoch', 'Real_P', 'Fake_P', 'Gen_loss', 'Dis_loss')
CSV_HEADER = ','.join(CSV_COLUMNS) + '\n'
# the eval CSV of --eval_every (evaluate.py's metrics)
EVAL_COLUMNS = ('epoch', 'FID', 'KID', 'precision', 'recall', 'IS', 'seconds')


def csv_format(width):
    """The row format of a CSV log of width columns: a 0-based epoch, then values with 6 decimals."""
    return '{:5d}' + ',{:.6f}' * (width - 1) + '\n'


class UsageError(Exception):
    """A mistake the user can fix; entry points print its message and exit non-zero."""


def fail(message):
    """Print a user error in one line and exit with status 1 (for entry points)."""
    print('ERROR: {}'.format(message), file=sys.stderr)
    sys.exit(1)


def check_writable(folder):
    """Create folder if needed and make sure files can be written in it."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError('cannot write to {} ({}): choose another folder or fix its '
                         'permissions.'.format(folder, e.strerror or e))


# ----------------------------------------------------------------------------- losses

# per-example BCE on probabilities, as the seed's BinaryCrossentropy; averaged below
cross_entropy = keras.losses.BinaryCrossentropy(reduction=None)


def discriminator_loss(real_output, fake_output, global_batch_size):
    """The seed's D loss, BCE(1, D(x)) + BCE(0, D(G(z))), averaged over the global batch."""
    per_example = (cross_entropy(tf.ones_like(real_output), real_output)
                   + cross_entropy(tf.zeros_like(fake_output), fake_output))
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def generator_loss(fake_output, global_batch_size):
    """The seed's G loss, BCE(1, D(G(z))), averaged over the global batch."""
    per_example = cross_entropy(tf.ones_like(fake_output), fake_output)
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def lr_schedule(lr, steps_per_epoch, decay_epochs=(10, 20, 25)):
    """The seed's piecewise-constant decay: lr, then /10 after each of decay_epochs (none: lr).

    The optimizer evaluates the schedule at its update count before incrementing it, and
    PiecewiseConstantDecay keeps a value up to and including its boundary, hence the -1.
    """
    if not decay_epochs:  # a decay rate of 1: the same rate at every step
        return keras.optimizers.schedules.ExponentialDecay(lr, 1, 1.0)
    boundaries = [steps_per_epoch * e - 1 for e in decay_epochs]
    values = [lr / 10 ** i for i in range(len(decay_epochs) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


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


def write_png(path, image):
    """Write a uint8 [H, W, 1 or 3] array as a grayscale or RGB PNG."""
    tf.io.write_file(path, tf.io.encode_png(image))


def generate_and_save_images(predictions, epoch, files):
    """Save the 16 fixed-noise samples of a 1-based epoch as a 4x4 grid at files.grid(epoch)
    (files: a run_files.RunFiles); returns the grid."""
    path = files.grid(epoch)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    grid = make_grid(to_uint8(predictions), 4, 4)
    write_png(path, grid)
    return grid


def write_json(path, value):
    """Write value as indented JSON with sorted keys."""
    with open(path, 'w') as f:
        json.dump(value, f, indent=1, sort_keys=True)


# ----------------------------------------------------------------------------- CSV log

def read_csv(path, columns=CSV_COLUMNS):
    """Read a CSV log (the loss CSV by default) into {column: np.ndarray}, up to its last complete row."""
    kind = 'loss' if columns == CSV_COLUMNS else 'eval'
    if not os.path.isfile(path):
        raise UsageError('{} does not exist: pass a {} CSV written by main.py '
                         '(logs/{{SaveName}}-{}.csv).'.format(path, kind, kind))
    with open(path) as f:
        text = f.read()
    lines = text.split('\n')
    header = ','.join(columns)
    if not lines[0].strip():
        raise UsageError('{} is empty: it has no header; was the run started?'.format(path))
    if lines[0].strip() != header:
        raise UsageError('{} has header "{}", expected "{}": is it a {} CSV from '
                         'main.py?'.format(path, lines[0].strip(), header, kind))
    # the last piece has no newline: a row still being written, or '' after a complete file
    rows = []
    for number, line in enumerate(lines[1:-1], start=2):
        fields = line.split(',')
        try:
            if len(fields) != len(columns):
                raise ValueError
            rows.append([int(fields[0])] + [float(v) for v in fields[1:]])
        except ValueError:
            raise UsageError('{} line {} is not a row of {} numbers: "{}"; fix or delete that '
                             'line.'.format(path, number, len(columns), line))
    table = np.array(rows, dtype=np.float64).reshape(-1, len(columns))
    out = {name: table[:, i] for i, name in enumerate(columns)}
    out['epoch'] = out['epoch'].astype(np.int64)
    return out


def read_loss_csv(path):
    """Read a loss CSV into {column: np.ndarray}, up to its last complete row."""
    return read_csv(path, CSV_COLUMNS)


def start_csv(path, keep_epochs, columns=CSV_COLUMNS):
    """Open a CSV log for a run that starts at epoch keep_epochs (0 = fresh), dropping later rows."""
    kept = []
    if keep_epochs > 0 and os.path.isfile(path):
        table = read_csv(path, columns)
        kept = [csv_format(len(columns)).format(int(row[0]), *row[1:])
                for row in zip(*table.values()) if row[0] < keep_epochs]
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(','.join(columns) + '\n')
        f.writelines(kept)
    os.replace(tmp, path)
    return len(kept)


def append_csv(path, epoch, values):
    """Append one epoch's row of values (all columns after epoch) to a CSV log."""
    with open(path, 'a') as f:
        f.write(csv_format(len(values) + 1).format(epoch, *[float(v) for v in values]))
        f.flush()
        os.fsync(f.fileno())


# ----------------------------------------------------------------------------- plots

def pyplot():
    """matplotlib.pyplot on the Agg backend: files only, no screen needed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt
