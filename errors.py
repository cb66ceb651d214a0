"""The errors a user can act on and the boundary every entry point shares: each ends in one line
naming the file and the next step, with a non-zero status, never a traceback."""
import errno
import functools
import os
import re
import signal
import sys
import zipfile

import interrupts

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

    def __reduce__(self):  # a converter worker's error reaches the main process whole
        return OutputError, (self.what, self.path, self.cause)

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
