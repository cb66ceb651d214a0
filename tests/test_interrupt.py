"""kill -9, then Ctrl-C, in the middle of an epoch, then the same command: the run continues exactly
where it stopped, byte for byte the uninterrupted run's CSV and grids."""
import os
import re
import signal
import threading

import numpy as np
import pytest
import tensorflow as tf

from helpers import SMALL, csv_text, run_script, start_script, train_in_process

EPOCHS = ['--epochs=2', '--steps_per_epoch=6']


def mnist_args(mnist_npz, *extra):
    # half the seed's width (the last --filters wins): a step lasts long enough to stop mid-epoch
    return SMALL + ['--filters=512', '--ImageType=MNIST', '--mnist_path=' + mnist_npz,
                    '--seed=5'] + EPOCHS + list(extra)


def checkpoint(cwd):
    return tf.train.load_checkpoint(os.path.join(cwd, 'models', 'MNIST-False', 'checkpoints'))


@pytest.fixture
def reference(mnist_npz, tmp_path_factory):
    """An uninterrupted 2-epoch run (in this process: main.py's runs must equal it)."""
    cwd = str(tmp_path_factory.mktemp('reference'))
    train_in_process(cwd, ImageType='MNIST', mnist_path=mnist_npz, seed=5, epochs=2,
                     steps_per_epoch=6, filters=512)
    return cwd


def interrupt_when(proc, pattern, sig, timeout=300):
    """Send sig to proc once its stderr matches pattern; return everything it printed."""
    seen = []
    fired = threading.Event()

    def read():
        buffer = ''
        for chunk in iter(lambda: proc.stderr.read1(4096), b''):
            buffer += chunk.decode(errors='replace')
            seen.append(chunk.decode(errors='replace'))
            if not fired.is_set() and re.search(pattern, buffer):
                fired.set()
                proc.send_signal(sig)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc.wait(timeout=timeout)
    reader.join(timeout=10)
    assert fired.is_set(), ''.join(seen)
    return proc.stdout.read().decode(), ''.join(seen)


@pytest.mark.slow
def test_sigkill_then_sigint_mid_epoch_then_resume_is_exact(reference, mnist_npz, tmp_path):
    cwd = str(tmp_path)
    # kill -9 in epoch 2: the command continues from the end of epoch 1 (the progress bar may skip
    # a step's line when steps are fast, so any of the middle steps will do)
    proc = start_script('main.py', mnist_args(mnist_npz), cwd)
    interrupt_when(proc, r'epoch 2/2:[^\r\n]*\| [2-4]/6', signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    noise_before = checkpoint(cwd).get_tensor('fixed_noise/.ATTRIBUTES/VARIABLE_VALUE')
    proc = start_script('main.py', mnist_args(mnist_npz), cwd)
    # then Ctrl-C in the same epoch: saved where it stopped
    out, err = interrupt_when(proc, r'epoch 2/2:[^\r\n]*\| [1-3]/6', signal.SIGINT)
    assert 'epoch 2 of 2, after step 0 of 6 (global step 6)' in err
    assert proc.returncode == 130, err
    stopped = re.search(r'Stopped by SIGINT at epoch 2, step (\d) of 6; saved (\S+)\. Run the same '
                        r'command again', out)
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
