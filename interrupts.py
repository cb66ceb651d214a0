"""How signals stop a process: during start-up, while TensorFlow is still being imported (one line
and status 128 + signal, no traceback; errors.entry_point takes over once main() runs), and during
training (the first one saves and stops after the current step). Imports nothing heavy, so that
entry points can call guard_start_up() first."""
import os
import signal
import sys

from absl import logging

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """SIGTERM or SIGHUP (or a second SIGINT) that ends the process before a checkpoint."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_interrupted(signum, _frame):
    """A signal handler that ends the run at once through the error boundary."""
    raise Interrupted(signum)


# what a signal from now on leaves behind, in words, set by the work that writes (a training run,
# a conversion); None: nothing written yet
kept = None


def stopped_message(signum):
    """The one line of a process stopped by signum: what it kept, and the next step."""
    name = signal.Signals(signum).name
    if kept is None:
        return 'stopped by {} during start-up, before anything was written; run the command ' \
            'again.'.format(name)
    return 'stopped by {}: {}; run the same command again to continue from there.'.format(
        name, kept)


def stop_during_start_up(signum, _frame):
    """Say which signal stopped the process before it started work, and end it."""
    print('ERROR: ' + stopped_message(signum), file=sys.stderr, flush=True)
    os._exit(128 + signum)


def guard_start_up():
    """Install stop_during_start_up for SIGINT, SIGTERM and SIGHUP."""
    for sig in SIGNALS:
        signal.signal(sig, stop_during_start_up)


class Stopped(Exception):
    """A run stopped by SIGINT/SIGTERM after saving a checkpoint; main.py exits with 128 + signum."""

    def __init__(self, signum, message):
        super().__init__('{} {}'.format(signal.Signals(signum).name, message))
        self.signum = signum


class StopRequest:
    """Turns the first SIGINT, SIGTERM or SIGHUP into a request to save and stop after the
    current step; a second one stops at once, except while a checkpoint is being saved."""

    def __init__(self):
        self.signal = None
        self.saving = False
        self.previous = {}

    def __enter__(self):
        for sig in SIGNALS:
            self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def handle(self, signum, _frame):
        if self.signal is None:
            self.signal = signum
        elif self.saving:
            logging.warning('%s while saving a checkpoint: stopping as soon as it is complete',
                            signal.Signals(signum).name)
        else:
            raise Interrupted(signum)

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
