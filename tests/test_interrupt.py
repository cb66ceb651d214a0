"""kill -9, then SIGTERM (Ctrl-C's path), in the middle of an epoch, then the same command: the run
continues exactly where it stopped, byte for byte the uninterrupted run's CSV, grids and
checkpoint. The run has the discriminator recipes on (--spectral_norm --r1 --loss=hinge), whose
power-iteration vectors are state a resume must carry; the seed's own recipe resumes exactly in
test_resume.py and test_faults.py."""
import os
import re
import signal
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from helpers import (SMALL, assert_same_checkpoints, csv_text, run_script, start_script,
                     train_in_process)

EPOCHS = ['--epochs=2', '--steps_per_epoch=6']
DISCRIMINATOR = dict(spectral_norm=True, r1=1.0, loss='hinge')


def mnist_args(mnist_npz, *extra):
    # a quarter of the seed's width (the last --filters wins): 5 steps after the first progress
    # line of epoch 2 last long enough for the signal to land mid-epoch
    return SMALL + ['--filters=256', '--ImageType=MNIST', '--mnist_path=' + mnist_npz,
                    '--seed=5'] + ['--{}={}'.format(k, v) for k, v in DISCRIMINATOR.items()] + \
        EPOCHS + list(extra)


def read_if_there(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ''


def checkpoint(cwd):
    return tf.train.load_checkpoint(os.path.join(cwd, 'models', 'MNIST-False', 'checkpoints'))


@pytest.fixture
def reference(mnist_npz, tmp_path_factory):
    """An uninterrupted 2-epoch run (in this process: main.py's runs must equal it)."""
    cwd = str(tmp_path_factory.mktemp('reference'))
    train_in_process(cwd, ImageType='MNIST', mnist_path=mnist_npz, seed=5, epochs=2,
                     steps_per_epoch=6, filters=256, **DISCRIMINATOR)
    return cwd


def interrupt_when(proc, ready, sig, timeout=300):
    """Send sig to proc once ready(what it printed so far) is true (checked every 10 ms), then
    wait for it to end; return its stdout and everything it printed on stderr."""
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(
        chunk.decode(errors='replace') for chunk in iter(lambda: proc.stderr.read1(4096), b'')),
        daemon=True)
    reader.start()
    deadline = time.time() + timeout
    try:
        while not ready(''.join(seen)):
            assert proc.poll() is None and time.time() < deadline, ''.join(seen)
            time.sleep(0.01)
        proc.send_signal(sig)
        proc.wait(timeout=timeout)
    finally:
        proc.kill()
    reader.join(timeout=10)
    return proc.stdout.read().decode(), ''.join(seen)


@pytest.mark.slow
def test_sigkill_then_sigterm_mid_epoch_then_resume_is_exact(reference, mnist_npz, tmp_path):
    cwd = str(tmp_path)
    # kill -9 as soon as epoch 1's checkpoint is complete: in epoch 2, before its end; the
    # command continues from the end of epoch 1
    proc = start_script('main.py', mnist_args(mnist_npz), cwd)
    # (the state file names a checkpoint only once the checkpoint is whole)
    state = os.path.join(cwd, 'models', 'MNIST-False', 'checkpoints', 'checkpoint')
    interrupt_when(proc, lambda _: 'ckpt-6"' in read_if_there(state), signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    noise_before = checkpoint(cwd).get_tensor('fixed_noise/.ATTRIBUTES/VARIABLE_VALUE')
    proc = start_script('main.py', mnist_args(mnist_npz), cwd)
    # then SIGTERM (as a scheduler sends; Ctrl-C's path) once a step of epoch 2 is done: the
    # first progress line after the step is traced (seconds) always shows, unlike later ones
    out, err = interrupt_when(proc, lambda text: re.search(r'epoch 2/2:[^\r\n]*\| [1-5]/6', text),
                              signal.SIGTERM)
    assert 'epoch 2 of 2, after step 0 of 6 (global step 6)' in err
    assert proc.returncode == 128 + signal.SIGTERM, err
    stopped = re.search(r'Stopped by SIGTERM at epoch 2, step (\d) of 6; saved (\S+)\. Run the '
                        r'same command again', out)
    assert stopped and 1 <= int(stopped.group(1)) < 6, out + err
    assert 'Traceback' not in err
    assert csv_text(cwd).count('\n') == 2  # header and the first epoch's row
    ckpt = checkpoint(cwd)
    assert ckpt.get_tensor('step_in_epoch/.ATTRIBUTES/VARIABLE_VALUE') == int(stopped.group(1))

    result = run_script('main.py', mnist_args(mnist_npz), cwd)
    assert result.returncode == 0, result.stderr
    assert 'Resuming from' in result.stderr and 'epoch 2 of 2, after step {} of 6 (global step {})'.format(
        stopped.group(1), 6 + int(stopped.group(1))) in result.stderr
    # nothing lost or duplicated, and the numbers are those of the uninterrupted run
    assert csv_text(cwd) == csv_text(reference)
    assert_same_checkpoints(cwd, reference)
    vectors = [n for n in checkpoint(cwd).get_variable_to_shape_map()
               if n.endswith(('/u/.ATTRIBUTES/VARIABLE_VALUE', '/v/.ATTRIBUTES/VARIABLE_VALUE'))]
    assert len(vectors) == 2 * 5  # the power iteration's u and v of every normalized layer
    assert sorted(os.listdir(os.path.join(cwd, 'plot', 'MNIST-False'))) == \
        ['001.png', '002.png', 'real.png']
    ckpt = checkpoint(cwd)
    np.testing.assert_array_equal(ckpt.get_tensor('fixed_noise/.ATTRIBUTES/VARIABLE_VALUE'),
                                  noise_before)
    # same weights and same noise give the same grid
    for name in ('001.png', '002.png'):
        assert open(os.path.join(cwd, 'plot', 'MNIST-False', name), 'rb').read() == \
            open(os.path.join(reference, 'plot', 'MNIST-False', name), 'rb').read()
    # the step counter continued: 2 epochs of 6 steps
    assert ckpt.get_tensor('G_opt/_iterations/.ATTRIBUTES/VARIABLE_VALUE') == 12
