"""All file access of the project: local paths through Python's own calls (exactly as before),
paths with a scheme (gs://, ram://, hdfs://, ...) through TensorFlow's file layer, tf.io.gfile.
Writes are complete or absent (a temporary beside the file, renamed when whole), failures are an
OutputError naming what and where, remote failures are OSErrors naming the path and TensorFlow's
reason, and a remote store that does not answer is given up on after REMOTE_TIMEOUT seconds."""
import contextlib
import errno
import glob as local_glob
import io
import json
import os
import re
import shutil
import tempfile
import threading

from errors import OutputError, UsageError, tensorflow_errors

# seconds a remote store has to answer a question about its files (exists, list, make a folder):
# TensorFlow's GCS client retries unreachable hosts for many minutes before it gives up
REMOTE_TIMEOUT = 60


def is_remote(path):
    """Whether path names a file system by scheme (gs://, ram://, ...), not a local path."""
    return bool(re.match(r'[A-Za-z][A-Za-z0-9+.-]*://', str(path or '')))


def _gfile():
    """tf.io.gfile (TensorFlow is imported only when a remote path is used)."""
    import tensorflow as tf
    return tf.io.gfile


def _remote(call, path, *args):
    """call(path, *args) on a remote store: its TensorFlow error as an OSError naming path and the
    reason, no answer within REMOTE_TIMEOUT seconds as one too (the call is left behind in a
    daemon thread, which does not hold up the process's exit)."""
    answer, timeout = {}, REMOTE_TIMEOUT

    def ask():
        try:
            answer['value'] = call(path, *args)
        except BaseException as e:  # handed to the waiting thread
            answer['error'] = e

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise OSError(errno.ETIMEDOUT, 'no answer in {} s (is the store reachable from this '
                      'machine, and are its credentials set?)'.format(timeout), path)
    error = answer.get('error')
    tf_errors = tensorflow_errors()
    if isinstance(error, tf_errors.OpError):  # (ENOENT makes a FileNotFoundError, as a disk's)
        raise OSError(errno.ENOENT if isinstance(error, tf_errors.NotFoundError) else errno.EIO,
                      ' '.join(error.message.split()) or type(error).__name__, path) from error
    if error is not None:
        raise error
    return answer['value']


def _read_all(path):
    with _gfile().GFile(path, 'rb') as f:
        return f.read()


# TensorFlow's ram:// (2.21) calls a folder whatever begins a stored name: with run/a.lock stored,
# run/a exists as a folder holding '.lock', and deleting the real run/a fails. Its answers are
# made exact here from what its glob finds (which checks each name) and its files' sizes.

def _ram(path):
    return path.startswith('ram://')


def _stored(path):
    """Whether ram:// holds an entry (a file, or a folder made) under exactly this name."""
    parent, name = path.rstrip('/').rsplit('/', 1)
    try:
        return name in _remote(_gfile().listdir, parent)
    except OSError:
        return False


def _ram_file(path):
    """Whether ram:// holds a file under exactly this name."""
    try:
        return not _remote(_gfile().stat, path).is_directory
    except OSError:
        return False


def exists(path):
    """Whether a file or folder (or, locally, a link, even a broken one) is at path."""
    if not is_remote(path):
        return os.path.lexists(path)
    if _ram(path):
        return _ram_file(path) or bool(glob(os.path.join(path, '*'))) or _stored(path)
    return _remote(_gfile().exists, path)


def isdir(path):
    if not is_remote(path):
        return os.path.isdir(path)
    if _ram(path):
        return exists(path) and not _ram_file(path)
    return _remote(_gfile().isdir, path)


def isfile(path):
    if is_remote(path):
        return _ram_file(path) if _ram(path) else exists(path) and not isdir(path)
    return os.path.isfile(path)


def listdir(path):
    """The names in a folder, sorted."""
    if not is_remote(path):
        return sorted(os.listdir(path))
    if _ram(path):
        return [p.rsplit('/', 1)[1] for p in glob(os.path.join(path, '*'))]
    return sorted(n.rstrip('/') for n in _remote(_gfile().listdir, path))


def glob(pattern):
    """The paths matching a glob pattern, sorted."""
    return sorted(_remote(_gfile().glob, pattern) if is_remote(pattern)
                  else local_glob.glob(pattern))


def walk(top, onerror=None):
    """os.walk's (folder, subfolders, files) from top down; locally following links."""
    if not is_remote(top):
        yield from os.walk(top, followlinks=True, onerror=onerror)
        return
    folders = [top.rstrip('/')]
    while folders:
        folder = folders.pop()
        names = listdir(folder)
        subfolders = [n for n in names if isdir(os.path.join(folder, n))]
        yield folder, subfolders, [n for n in names if n not in subfolders]
        folders.extend(os.path.join(folder, n) for n in reversed(subfolders))


def absolute(path):
    """path made absolute (a remote one as it is)."""
    return path if is_remote(path) else os.path.abspath(path)


def real(path):
    """path with links resolved (a remote one as it is, without a trailing /)."""
    return path.rstrip('/') if is_remote(path) else os.path.realpath(path)


def makedirs(path):
    """Make a folder and its parents (nothing if it exists)."""
    if is_remote(path):
        _remote(_gfile().makedirs, path)
    else:
        os.makedirs(path, exist_ok=True)


def remove(path):
    _remote(_gfile().remove, path) if is_remote(path) else os.remove(path)


def rmtree(path):
    """Delete a folder and everything in it; a missing one is no error."""
    if _ram(path):  # deepest first, as its own rmtree fails beside run/a.lock
        for folder, _, names in reversed(list(walk(path))):
            for name in names:
                remove(os.path.join(folder, name))
            with contextlib.suppress(OSError):  # a folder it has no entry for
                remove(folder)
    elif is_remote(path):
        if exists(path):
            _remote(_gfile().rmtree, path)
    else:
        shutil.rmtree(path, ignore_errors=True)


def rename(source, target):
    """Move a file or folder to target (replacing a file there). Locally one atomic rename; on a
    remote store a file is copied then deleted (a store such as GCS has no rename) and a folder
    file by file, so a failure part way leaves both and loses nothing."""
    if not is_remote(source):
        os.replace(source, target)
    elif not isdir(source):
        _remote(_gfile().rename, source, target, True)
    else:
        source = source.rstrip('/')
        for folder, _, names in walk(source):
            copy_to = target + folder[len(source):]
            makedirs(copy_to)
            for name in names:
                _remote(_gfile().copy, os.path.join(folder, name),
                        os.path.join(copy_to, name), True)
        rmtree(source)


def getsize(path):
    return _remote(_gfile().stat, path).length if is_remote(path) else os.path.getsize(path)


def getmtime(path):
    """When path was last written, in seconds (0 on a store that does not keep it, as ram://)."""
    if is_remote(path):
        return _remote(_gfile().stat, path).mtime_nsec / 1e9
    return os.path.getmtime(path)


def open_file(path, mode='r', errors=None):
    """A file object for path (errors: as io.open's, for text). A remote file is read whole when
    opened and written whole when closed (an object store writes whole objects; ram:// cannot
    tell a position, which zip files need), its errors raised as OSErrors."""
    if not is_remote(path):
        return io.open(path, mode, errors=errors)
    if 'r' in mode:
        data = _remote(_read_all, path)
        return io.BytesIO(data) if 'b' in mode else io.StringIO(data.decode('utf-8', errors
                                                                            or 'strict'))
    start = open_file(path, mode.replace('a', 'r')).read() if 'a' in mode and exists(path) \
        else None
    return _Upload(path, 'b' in mode, start)


class _Upload:
    """A file being written to a remote store: kept in memory, stored whole when closed."""

    def __init__(self, path, binary, start=None):
        self.path = path
        self.buffer = (io.BytesIO if binary else io.StringIO)()
        if start:
            self.buffer.write(start)

    def __getattr__(self, name):  # write, tell, seek, ... of the buffer
        return getattr(self.buffer, name)

    def close(self):
        if self.buffer.closed:
            return
        data = self.buffer.getvalue()
        self.buffer.close()
        _remote(_write_all, self.path, data.encode() if isinstance(data, str) else data)

    def __enter__(self):
        return self

    def __exit__(self, failed, *exc):
        if failed:  # nothing stored of a file cut short
            self.buffer.close()
        self.close()


def _write_all(path, data):
    if _ram(path) and _ram_file(path):
        _gfile().remove(path)  # its 'w' writes after what is there
    with _gfile().GFile(path, 'wb') as f:
        f.write(data)


def append(path, text):
    """Add text at the end of a file, flushed to the disk (a remote store has it when closed)."""
    with open_file(path, 'a') as f:
        f.write(text)
        if not is_remote(path):
            f.flush()
            os.fsync(f.fileno())


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
def saving(what, path, folder=False):
    """Write path completely or not at all: the body writes the file (open it with open_file), or
    with folder the folder, at the temporary name it is given (beside path, same extension), which
    replaces path only when complete. On any failure the temporary is removed (a folder there that
    the body was not to write is left alone) and path is as it was; a failed write is an
    OutputError naming what and where."""
    parent, name = os.path.split(path.rstrip('/'))
    tmp = os.path.join(parent, '.tmp-' + name)
    try:
        with writing(what, path):
            if parent:
                makedirs(parent)
            yield tmp
            if folder:  # the old one goes first: a rename does not replace a folder
                rmtree(path)
            rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            rmtree(tmp) if folder else remove(tmp)
        raise


def expand_path(path):
    """A path flag's value with ~ and $VARS expanded (the shell leaves them in --flag=~/x)."""
    return os.path.expandvars(os.path.expanduser(path)) if path else path


def check_output_file(path, extensions=None):
    """Refuse, before any work, an output file that is a folder, has the wrong extension, or
    cannot be written in its folder."""
    if isdir(path):
        raise UsageError('{} is a folder: give a file name, e.g. {}.'.format(
            path, os.path.join(path, 'out' + (extensions[0] if extensions else '.json'))))
    if extensions and not path.lower().endswith(tuple(extensions)):
        raise UsageError('{} must end in {}.'.format(path, ', '.join(extensions)))
    check_writable(os.path.dirname(path) or '.')


def check_writable(folder):
    """Create folder if needed and make sure files can be written in it (on a remote store: a
    small file written and deleted, each step within REMOTE_TIMEOUT)."""
    try:
        makedirs(folder)
        if is_remote(folder):
            probe = os.path.join(folder, '.write-test-{}'.format(os.getpid()))
            _remote(_write_all, probe, b'ok')
            remove(probe)
        else:
            with tempfile.TemporaryFile(dir=folder):
                pass
    except OSError as e:
        raise UsageError('cannot write to {} ({}): choose another folder or fix its '
                         'permissions{}.'.format(
                             folder, e.strerror or e,
                             ' or credentials' if is_remote(folder) else ''))


def write_json(path, value, what='a JSON file'):
    """Write value as indented JSON with sorted keys, completely or not at all."""
    with saving(what, path) as tmp, open_file(tmp, 'w') as f:
        json.dump(value, f, indent=1, sort_keys=True)
