"""How a signal ends an entry point during start-up, while TensorFlow is still being imported:
one line and status 128 + signal, no traceback. Imports nothing heavy, so that entry points can
call it first; utils.entry_point takes over once main() runs."""
import os
import signal
import sys

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_during_start_up(signum, _frame):
    """Say which signal stopped the process before it started work, and end it."""
    print('ERROR: stopped by {} during start-up, before anything was written; run the command '
          'again.'.format(signal.Signals(signum).name), file=sys.stderr, flush=True)
    os._exit(128 + signum)


def guard_start_up():
    """Install stop_during_start_up for SIGINT, SIGTERM and SIGHUP."""
    for sig in SIGNALS:
        signal.signal(sig, stop_during_start_up)
