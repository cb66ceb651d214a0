"""What several entry points share: errors and the error boundary, safe file writes, sample
grids, the CSV loss log.

TensorFlow and Keras are imported by the functions that use them, not here: plot_logs.py, and
main.py's --help and flag errors, then run without loading them (5 s on a 2-core CPU)."""
import contextlib
import errno
import functools
import json
import os
import re
import signal
import sys
import tempfile
import zipfile

import numpy as np

import interrupts

CSV_COLUMNS = ('epoch', 'Real_P', 'Fake_P', 'Gen_loss', 'Dis_loss')
CSV_HEADER = ','.join(CSV_COLUMNS) + '\n'
# the eval CSV of --eval_every (evaluate.py's metrics)
EVAL_COLUMNS = ('epoch', 'FID', 'KID', 'precision', 'recall', 'IS', 'seconds')


def csv_format(width):
    """The row format of a CSV log of width columns: a 0-based epoch, then values with 6 decimals."""
    return '{:5d}' + ',{:.6f}' * (width - 1) + '\n'


# set to 1 to see the traceback behind an error message, for a bug report
DEBUG_ENV = 'DCGAN_DEBUG'


class UsageError(Exception):
    """A mistake the user can fix; entry points print its message and exit non-zero."""


class OutputError(Exception):
    """A file that could not be written completely: what it was, where, and why; the file as it
    was before is kept. note: what else the user should know (e.g. which checkpoint is kept)."""

    def __init__(self, what, path, cause):
        super().__init__('{} {}: {}'.format(what, path, cause))
        self.what, self.path, self.cause, self.note = what, path, cause, ''

    def describe(self):
        """The one-line message: the cause in words, the path, what was kept, the next step."""
        number = getattr(self.cause, 'errno', None)
        full = short_text(self.cause, 10 ** 6)
        if number == errno.ENOSPC or 'No space left' in full or 'file write failed' in full:
            reason, fix = 'no space left on the device of', 'free space'
        elif number in (errno.EACCES, errno.EPERM, errno.EROFS) or 'ermission denied' in full \
                or 'Read-only' in full:
            reason, fix = 'no permission to write (or a read-only file system) at', \
                'make it writable or choose another folder'
        elif number == errno.EISDIR or 'Is a directory' in full:
            reason, fix = 'a folder is in the way at', 'move that folder away'
        else:
            reason, fix = 'cannot write ({}) at'.format(short_text(self.cause)), 'fix that'
        return '{} {} while saving {}{}; {} and run the same command again.'.format(
            reason, self.path, self.what, '; ' + self.note if self.note else '', fix)


def short_text(error, limit=160):
    """An exception's message without TensorFlow's {{function_node ...}} prefix, in one line."""
    text = re.sub(r'\{\{function_node [^}]*\}\}\s*', '',
                  str(getattr(error, 'message', None) or error)).strip()
    return ' '.join(text.split())[:limit] or type(error).__name__


def fail(message, status=1):
    """Print an error in one line and exit with status (for entry points)."""
    print('ERROR: {}'.format(message), file=sys.stderr, flush=True)
    sys.exit(status)


def entry_point(main=None, positional=False):
    """main(argv) inside the error boundary every entry point shares: each error the user can do
    something about ends in one line naming the file and the next step, with a non-zero status,
    never a traceback (set DCGAN_DEBUG=1 to see it). SIGTERM and SIGHUP end it as Ctrl-C does.
    Words that are not flags are refused unless positional (@entry_point(positional=True))."""
    if main is None:
        return functools.partial(entry_point, positional=positional)

    @functools.wraps(main)
    def bounded(argv):
        signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt, caught below
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, interrupts.raise_interrupted)
        try:
            if not positional:
                refuse_positional(argv)
            return main(argv)
        except Exception as e:
            if os.environ.get(DEBUG_ENV) == '1':
                raise
            fail(error_message(e))
        except (KeyboardInterrupt, interrupts.Interrupted) as e:
            signum = getattr(e, 'signum', signal.SIGINT)
            fail(interrupts.stopped_message(signum), 128 + signum)
    return bounded


def refuse_positional(argv):
    """UsageError for words after the script's name that are not flags (absl ignores them): the
    common slip `main.py epochs=5` trained with the default epochs."""
    if len(argv) > 1:
        script, word = os.path.basename(argv[0]), argv[1]
        raise UsageError('{} takes only flags, and "{}" is not one: write {} (python {} --helpshort '
                         'lists them).'.format(script, word, '--' + word.lstrip('-') if '=' in word
                                               else '--flag=value', script))


def error_message(e):
    """The one-line message of any error that reached an entry point's boundary."""
    if isinstance(e, UsageError):
        return str(e)
    hint = ' (set {}=1 to see the traceback)'.format(DEBUG_ENV)
    if isinstance(e, OutputError):
        return e.describe() + hint
    tf_errors = tensorflow_errors()
    if tf_errors and isinstance(e, tf_errors.ResourceExhaustedError) and 'No space' not in e.message:
        return 'out of memory ({}): use a smaller --BATCH_SIZE (or --batch).{}'.format(
            short_text(e, 120), hint)
    if tf_errors and isinstance(e, tf_errors.OpError):
        return '{}: {}{}'.format(type(e).__name__, short_text(e, 200), hint)
    if isinstance(e, OSError):
        return 'cannot use {} ({}).{}'.format(e.filename or 'a file', e.strerror or e, hint)
    if isinstance(e, zipfile.BadZipFile):
        return 'a damaged .keras or .npz file ({}).{}'.format(e, hint)
    return 'unexpected {}: {} - a bug; please report it with the traceback{}'.format(
        type(e).__name__, short_text(e, 200), hint)


def tensorflow_errors():
    """tf.errors where TensorFlow is loaded, else None (nothing then raises its errors)."""
    return getattr(sys.modules.get('tensorflow'), 'errors', None)


def write_errors():
    """What a failed write raises: OSError from Python, OpError from TensorFlow, RuntimeError or
    ValueError from h5py."""
    tf_errors = tensorflow_errors()
    return (OSError, RuntimeError, ValueError) + ((tf_errors.OpError,) if tf_errors else ())


@contextlib.contextmanager
def writing(what, path):
    """Turn a failed write of what into path (a file or folder written in place, such as an
    appended log) into an OutputError that names both."""
    try:
        yield
    except write_errors() as e:
        raise OutputError(what, path, e) from e


@contextlib.contextmanager
def saving(what, path):
    """Write path completely or not at all: the body writes to the temporary name it is given
    (beside path, same extension), which replaces path only when complete. On a failure the
    temporary is removed, path is as it was, and an OutputError names what and where."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, '.tmp-' + name)
    try:
        with writing(what, path):
            if folder:
                os.makedirs(folder, exist_ok=True)
            yield tmp
            os.replace(tmp, path)
    except OutputError:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


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


def expand_path(path):
    """A path flag's value with ~ and $VARS expanded (the shell leaves them in --flag=~/x)."""
    return os.path.expandvars(os.path.expanduser(path)) if path else path


def check_output_file(path, extensions=None):
    """Refuse, before any work, an output file that is a folder, has the wrong extension, or
    cannot be written in its folder."""
    if os.path.isdir(path):
        raise UsageError('{} is a folder: give a file name, e.g. {}.'.format(
            path, os.path.join(path, 'out' + (extensions[0] if extensions else '.json'))))
    if extensions and not path.lower().endswith(tuple(extensions)):
        raise UsageError('{} must end in {}.'.format(path, ', '.join(extensions)))
    check_writable(os.path.dirname(path) or '.')


def check_writable(folder):
    """Create folder if needed and make sure files can be written in it."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError('cannot write to {} ({}): choose another folder or fix its '
                         'permissions.'.format(folder, e.strerror or e))


# ----------------------------------------------------------------------------- flags

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


def generate_and_save_images(predictions, epoch, files):
    """Save the 16 fixed-noise samples of a 1-based epoch as a 4x4 grid at files.grid(epoch)
    (files: a run_files.RunFiles), enlarged to be seen (viewable); returns the exact grid."""
    grid = make_grid(to_uint8(predictions), 4, 4)
    write_png(files.grid(epoch), viewable(grid), 'the sample grid of epoch {}'.format(epoch))
    return grid


def write_json(path, value, what='a JSON file'):
    """Write value as indented JSON with sorted keys, completely or not at all."""
    with saving(what, path) as tmp, open(tmp, 'w') as f:
        json.dump(value, f, indent=1, sort_keys=True)


# ----------------------------------------------------------------------------- CSV log

def read_csv(path, columns=CSV_COLUMNS):
    """Read a CSV log (the loss CSV by default) into {column: np.ndarray}, up to its last complete row."""
    kind = 'loss' if columns == CSV_COLUMNS else 'eval'
    if not os.path.isfile(path):
        raise UsageError('{} {}: pass a {} CSV written by main.py (logs/{{SaveName}}-{}.csv).'.format(
            path, 'is a folder' if os.path.isdir(path) else 'does not exist', kind, kind))
    try:
        with open(path) as f:
            text = f.read()
    except UnicodeDecodeError:
        raise UsageError('{} is not a text file: pass a {} CSV written by main.py '
                         '(logs/{{SaveName}}-{}.csv).'.format(path, kind, kind))
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


def csv_row(epoch, values):
    """One epoch's row of a CSV log: the 0-based epoch, then values with 6 decimals."""
    return csv_format(len(values) + 1).format(epoch, *[float(v) for v in values])


def start_csv(path, keep_epochs, columns=CSV_COLUMNS, kept=None):
    """Write a CSV log's header and the rows of the epochs before keep_epochs: kept, the rows'
    text as the checkpoint holds it, or (for a checkpoint from before it held them) the rows of
    those epochs read from the file; returns the rows' text."""
    if kept is None:
        kept = ''
        if keep_epochs > 0 and os.path.isfile(path):
            table = read_csv(path, columns)
            kept = ''.join(csv_row(int(row[0]), row[1:]) for row in zip(*table.values())
                           if row[0] < keep_epochs)
    with saving('the CSV log', path) as tmp, open(tmp, 'w') as f:
        f.write(','.join(columns) + '\n' + kept)
    return kept


def append_csv(path, row):
    """Append one row to a CSV log, flushed to the disk."""
    with writing('a row of the CSV log', path), open(path, 'a') as f:
        f.write(row)
        f.flush()
        os.fsync(f.fileno())


# ----------------------------------------------------------------------------- plots

def pyplot():
    """matplotlib.pyplot on the Agg backend: files only, no screen needed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt
