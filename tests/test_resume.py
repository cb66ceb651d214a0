"""Stopping and continuing a run: SIGINT, SIGKILL, incompatible resume, NaN, seeds, export, lock."""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf

import trainer
from conftest import (SMALL, StopAt, run_script, script_env, small_config, start_script,
                      train_in_process)
from utils import UsageError

EPOCHS = ['--epochs=3', '--steps_per_epoch=6']


def mnist_args(mnist_npz, *extra):
    return SMALL + ['--ImageType=MNIST', '--mnist_path=' + mnist_npz, '--seed=5'] + EPOCHS + \
        list(extra)


def csv_text(cwd):
    return open(os.path.join(cwd, 'logs', 'MNIST-False-loss.csv')).read()


def checkpoint(cwd):
    return tf.train.load_checkpoint(os.path.join(cwd, 'models', 'MNIST-False', 'checkpoints'))


@pytest.fixture(scope='module')
def reference(mnist_npz, tmp_path_factory):
    """An uninterrupted 3-epoch run (in this process: main.py's runs must equal it)."""
    cwd = str(tmp_path_factory.mktemp('reference'))
    train_in_process(cwd, ImageType='MNIST', mnist_path=mnist_npz, seed=5, epochs=3,
                     steps_per_epoch=6)
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
def test_sigint_mid_epoch_then_resume_is_exact(reference, mnist_npz, tmp_path):
    cwd = str(tmp_path)
    proc = start_script('main.py', mnist_args(mnist_npz), cwd)
    out, err = interrupt_when(proc, r'epoch 2/3:[^\r\n]*\| 1/6', signal.SIGINT)
    assert proc.returncode == 130, err
    stopped = re.search(r'Stopped by SIGINT at epoch 2, step (\d) of 6; saved (\S+)\. Run the same '
                        r'command again', out)
    assert stopped and 1 <= int(stopped.group(1)) < 6, out + err
    assert 'Traceback' not in err
    assert csv_text(cwd).count('\n') == 2  # header and epoch 0
    ckpt = checkpoint(cwd)
    assert ckpt.get_tensor('step_in_epoch/.ATTRIBUTES/VARIABLE_VALUE') == int(stopped.group(1))
    noise_before = ckpt.get_tensor('fixed_noise/.ATTRIBUTES/VARIABLE_VALUE')

    result = run_script('main.py', mnist_args(mnist_npz), cwd)
    assert result.returncode == 0, result.stderr
    assert 'Resuming from' in result.stderr and 'epoch 1, step {} of it, global step {}'.format(
        stopped.group(1), 6 + int(stopped.group(1))) in result.stderr
    # nothing lost or duplicated, and the numbers are those of the uninterrupted run
    assert csv_text(cwd) == csv_text(reference)
    assert sorted(os.listdir(os.path.join(cwd, 'plot', 'MNIST-False'))) == \
        ['001.png', '002.png', '003.png']
    ckpt = checkpoint(cwd)
    np.testing.assert_array_equal(ckpt.get_tensor('fixed_noise/.ATTRIBUTES/VARIABLE_VALUE'),
                                  noise_before)
    # same weights and same noise give the same grid
    for name in ('002.png', '003.png'):
        assert open(os.path.join(cwd, 'plot', 'MNIST-False', name), 'rb').read() == \
            open(os.path.join(reference, 'plot', 'MNIST-False', name), 'rb').read()
    # the step counter continued: 3 epochs of 6 steps
    assert ckpt.get_tensor('G_opt/_iterations/.ATTRIBUTES/VARIABLE_VALUE') == 18


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_exact(reference, mnist_npz, tmp_path):
    cwd = str(tmp_path)
    proc = start_script('main.py', mnist_args(mnist_npz), cwd)
    out, err = interrupt_when(proc, r'epoch 2/3:[^\r\n]*\| 2/6', signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    result = run_script('main.py', mnist_args(mnist_npz), cwd)
    assert result.returncode == 0, result.stderr
    assert 'epoch 1, step 0 of it, global step 6' in result.stderr
    assert csv_text(cwd) == csv_text(reference)
    assert len(os.listdir(os.path.join(cwd, 'plot', 'MNIST-False'))) == 3


def test_same_seed_same_csv_other_seed_differs(reference, mnist_npz, tmp_path):
    # main.py's own runs are compared with the reference in the SIGINT and SIGKILL tests
    train_in_process(tmp_path / 'a', ImageType='MNIST', mnist_path=mnist_npz, seed=5, epochs=3,
                     steps_per_epoch=6)
    train_in_process(tmp_path / 'b', ImageType='MNIST', mnist_path=mnist_npz, seed=6, epochs=1,
                     steps_per_epoch=6)
    assert csv_text(str(tmp_path / 'a')) == csv_text(reference)
    first_row = csv_text(reference).splitlines()[1]
    assert csv_text(str(tmp_path / 'b')).splitlines()[1] != first_row


@pytest.fixture(scope='module')
def one_epoch_run(mnist_npz, tmp_path_factory):
    """A finished 1-epoch run of 2 steps (trained once, in this process)."""
    folder = tmp_path_factory.mktemp('one_epoch')
    train_in_process(folder, ImageType='MNIST', mnist_path=mnist_npz, epochs=1,
                     steps_per_epoch=2, seed=3)
    return str(folder)


@pytest.fixture
def one_epoch(one_epoch_run, tmp_path):
    """A fresh copy of one_epoch_run for a test to continue or change."""
    shutil.copytree(one_epoch_run, str(tmp_path / 'run'))
    return str(tmp_path / 'run')


def rerun(folder, mnist_npz, **changes):
    """Train the one_epoch run again with changes; returns the finished Trainer."""
    settings = dict(ImageType='MNIST', mnist_path=mnist_npz, epochs=1, steps_per_epoch=2)
    settings.update(changes)
    return train_in_process(folder, **settings)


def test_rerun_of_a_finished_run_adds_nothing(one_epoch, mnist_npz, caplog):
    rerun(one_epoch, mnist_npz)
    assert 'MNIST-False has already trained 1 epochs: raise --epochs' in caplog.text
    assert csv_text(one_epoch).count('\n') == 2


def test_incompatible_resume_is_refused(one_epoch, mnist_npz):
    with pytest.raises(UsageError, match='was made with --DisInSize=32.*--noresume'):
        rerun(one_epoch, mnist_npz, epochs=2, DisInSize=64)
    assert csv_text(one_epoch).count('\n') == 2  # nothing was touched


def test_flag_changes_listed_and_noresume_moves_aside(one_epoch, mnist_npz, caplog):
    rerun(one_epoch, mnist_npz, epochs=2, lr=1e-4)
    assert 'flag changed since the checkpoint: epochs: 1 -> 2' in caplog.text
    assert 'flag changed since the checkpoint: lr: 0.0002 -> 0.0001' in caplog.text
    saved = json.load(open(os.path.join(one_epoch, 'models', 'MNIST-False', 'flags.json')))
    assert saved['epochs'] == 2 and saved['seed'] == 3  # the seed was kept from the first run
    assert csv_text(one_epoch).count('\n') == 3

    rerun(one_epoch, mnist_npz, resume=False)
    assert 'Moved the previous run aside to {}/models/MNIST-False.old-'.format(one_epoch) \
        in caplog.text
    old = glob.glob(os.path.join(one_epoch, 'models', 'MNIST-False.old-*'))
    assert len(old) == 1 and os.path.isdir(os.path.join(old[0], 'checkpoints'))
    old_csv = glob.glob(os.path.join(one_epoch, 'logs', 'MNIST-False-loss.csv.old-*'))
    assert len(old_csv) == 1 and open(old_csv[0]).read().count('\n') == 3
    assert csv_text(one_epoch).count('\n') == 2


def test_nan_loss_stops_and_keeps_checkpoint(one_epoch, mnist_npz):
    with pytest.raises(UsageError, match=r'non-finite loss at global step 3 \(epoch 2.*the last '
                       'good checkpoint'):
        rerun(one_epoch, mnist_npz, epochs=2, lr=float('nan'))
    ckpts = os.listdir(os.path.join(one_epoch, 'models', 'MNIST-False', 'checkpoints'))
    assert sorted(c for c in ckpts if c.endswith('.index')) == ['ckpt-2.index']
    assert csv_text(one_epoch).count('\n') == 2


def test_malformed_csv_row_on_resume_is_one_clear_error(one_epoch, mnist_npz):
    path = os.path.join(one_epoch, 'logs', 'MNIST-False-loss.csv')
    with open(path, 'a') as f:
        f.write('oops,1,2,3,4\n')
    with pytest.raises(UsageError, match='MNIST-False-loss.csv line 3 is not a row of 5 numbers'):
        rerun(one_epoch, mnist_npz, epochs=2)


def test_stop_request_and_steps_per_loop_change_nothing(mnist_npz, tmp_path):
    # in this process, a stop as Ctrl-C asks for it, and loops of 2 and 1 step (3 an epoch):
    # stopped after the first loop of epoch 2 and resumed, it equals a plain K=1 run
    settings = dict(ImageType='MNIST', mnist_path=mnist_npz, epochs=2, steps_per_epoch=3, seed=8,
                    BATCH_SIZE=4)
    one = train_in_process(tmp_path / 'k1', **settings)
    with pytest.raises(trainer.Stopped, match='SIGINT at epoch 2, step 2 of 3'):
        train_in_process(tmp_path / 'k4', [StopAt(4)], steps_per_loop=2, **settings)
    four = train_in_process(tmp_path / 'k4', steps_per_loop=2, **settings)
    assert int(four.step) == int(one.step) == 6
    assert csv_text(str(tmp_path / 'k4')) == csv_text(str(tmp_path / 'k1'))
    a, b = [tf.train.load_checkpoint(str(tmp_path / k / 'models' / 'MNIST-False' / 'checkpoints'))
            for k in ('k1', 'k4')]
    names = [n for n in a.get_variable_to_shape_map() if n.startswith(('generator/', 'G_opt/'))]
    assert len(names) > 20
    for name in names:
        np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name), err_msg=name)
    assert four.train_loop.experimental_get_tracing_count() == 1
    for name in ('001.png', '002.png'):
        assert (tmp_path / 'k4' / 'plot' / 'MNIST-False' / name).read_bytes() == \
            (tmp_path / 'k1' / 'plot' / 'MNIST-False' / name).read_bytes()


def test_second_run_of_a_save_name_is_refused(tmp_path):
    config = small_config(tmp_path, ImageType='digits')
    lock_path = os.path.join(config.MODEL_PATH, 'digits-False.lock')
    os.makedirs(config.MODEL_PATH)
    with trainer.RunLock(lock_path):
        with pytest.raises(UsageError, match=r'another run is training this SaveName \(pid {} on '
                           r'host {}'.format(os.getpid(), re.escape(socket.gethostname()))):
            trainer.train(config)
    assert not os.path.exists(os.path.join(config.LOG_PATH, 'digits-False-loss.csv'))


def test_stale_lock_is_taken_over(tmp_path, caplog):
    lock_path = str(tmp_path / 'digits-False.lock')
    with open(lock_path, 'w') as f:  # what a killed run leaves: its line, but no lock held
        f.write('pid 999999 on host elsewhere, since 2026-01-01 00:00:00\n')
    with trainer.RunLock(lock_path):
        assert open(lock_path).read().startswith('pid {} on host {}'.format(
            os.getpid(), socket.gethostname()))
    assert 'Took over the lock' in caplog.text and 'pid 999999 on host elsewhere' in caplog.text
    assert open(lock_path).read() == ''  # released at the end
    with trainer.RunLock(lock_path):  # and free for the next run
        pass


@pytest.mark.slow
def test_generator_keras_loads_in_fresh_process(one_epoch, mnist_npz, capsys):
    path = os.path.join(one_epoch, 'models', 'MNIST-False', 'generator.keras')
    os.remove(path)
    rerun(one_epoch, mnist_npz, export_only=True)
    assert 'Exported the generator of' in capsys.readouterr().out and os.path.isfile(path)
    code = ('import keras, numpy as np; g = keras.models.load_model({!r}); '
            'x = np.asarray(g(np.random.normal(size=(3, 100)).astype("float32"))); '
            'print(x.shape, float(x.min()) >= -1, float(x.max()) <= 1)').format(path)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         env=script_env(), cwd='/', timeout=300)
    assert out.stdout.strip() == '(3, 32, 32, 1) True True', out.stderr


def test_export_only_without_checkpoint(mnist_npz, tmp_path):
    with pytest.raises(UsageError, match='no checkpoint in .*models/MNIST-False/checkpoints to '
                       'export'):
        train_in_process(tmp_path, ImageType='MNIST', mnist_path=mnist_npz, export_only=True)
