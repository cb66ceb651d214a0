"""Writing the project's files: completely or not at all (one temporary beside the file, renamed
when whole), failures as an OutputError naming what and where, and the checks of output paths
before any work."""
import contextlib
import json
import os
import re
import tempfile

from errors import OutputError, UsageError, tensorflow_errors

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


def expand_path(path):
    """A path flag's value with ~ and $VARS expanded (the shell leaves them in --flag=~/x)."""
    return os.path.expandvars(os.path.expanduser(path)) if path else path


def check_local(path, flag):
    """Refuse at once a path on cloud storage (gs://, s3://, hdfs://, ...): every file of a run
    goes through the local file system, where such a path became a folder named 'gs:' that held
    the run's lock while the weights alone failed after an epoch."""
    scheme = re.match(r'([A-Za-z][A-Za-z0-9+.-]*)://', path or '')
    if scheme:
        raise UsageError('{}={}: paths on cloud storage ({}://) are not supported yet; copy the '
                         'files to a local folder, or mount the bucket (e.g. gcsfuse, s3fs) and '
                         'pass its local path.'.format(flag, path, scheme.group(1)))


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


def write_json(path, value, what='a JSON file'):
    """Write value as indented JSON with sorted keys, completely or not at all."""
    with saving(what, path) as tmp, open(tmp, 'w') as f:
        json.dump(value, f, indent=1, sort_keys=True)
