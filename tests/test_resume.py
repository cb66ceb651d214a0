"""Stopping and continuing a run in this process: stop requests, incompatible resume, NaN, seeds,
export, lock (Ctrl-C and kill -9 of main.py: test_interrupt.py)."""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from errors import UsageError
from helpers import (StopAt, assert_same_checkpoints, csv_text, script_env, small_config,
                     train_in_process)
import run_files
import trainer

# one worker runs this file's tests, which share expensive runs (pytest.ini: loadgroup)
pytestmark = pytest.mark.xdist_group('resume')


@pytest.fixture(scope='session')
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


@pytest.mark.slow
def test_same_seed_same_csv_other_seed_differs(one_epoch_run, mnist_npz, tmp_path):
    # main.py's own runs are compared with an in-process run in the SIGINT and SIGKILL tests
    rerun(tmp_path / 'a', mnist_npz, seed=3)
    rerun(tmp_path / 'b', mnist_npz, seed=4)
    assert csv_text(str(tmp_path / 'a')) == csv_text(one_epoch_run)
    first_row = csv_text(one_epoch_run).splitlines()[1]
    assert csv_text(str(tmp_path / 'b')).splitlines()[1] != first_row
    a, b = [tf.train.load_checkpoint(os.path.join(folder, 'models', 'MNIST-False', 'checkpoints'))
            for folder in (str(tmp_path / 'a'), one_epoch_run)]
    for name in a.get_variable_to_shape_map():
        np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name), err_msg=name)


def test_rerun_of_a_finished_run_adds_nothing(one_epoch, mnist_npz, caplog):
    rerun(one_epoch, mnist_npz)
    assert 'MNIST-False has already trained 1 epochs: raise --epochs' in caplog.text
    assert csv_text(one_epoch).count('\n') == 2


def test_incompatible_resume_is_refused(one_epoch, mnist_npz):
    with pytest.raises(UsageError, match='was made with --DisInSize=32.*--noresume'):
        rerun(one_epoch, mnist_npz, epochs=2, DisInSize=64)
    with pytest.raises(UsageError, match='was made with --filters=128.*--noresume'):
        rerun(one_epoch, mnist_npz, epochs=2, filters=256)
    assert csv_text(one_epoch).count('\n') == 2  # nothing was touched
    # a flags.json that lost a shape flag: the checkpoint's copy of the flags has it
    flags_path = os.path.join(one_epoch, 'models', 'MNIST-False', 'flags.json')
    saved = json.load(open(flags_path))
    del saved['filters']
    json.dump(saved, open(flags_path, 'w'))
    assert rerun(one_epoch, mnist_npz, epochs=2).config.filters == 128
    assert csv_text(one_epoch).count('\n') == 3


@pytest.mark.slow
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


def test_csv_cut_or_garbled_is_rewritten_from_the_checkpoint(one_epoch, mnist_npz, caplog):
    # the usual power-loss pattern: the last row cut off and a NUL tail; or a line of junk
    path = os.path.join(one_epoch, 'logs', 'MNIST-False-loss.csv')
    whole = open(path).read()
    for damaged in (whole[:-12] + '\0' * 40, whole + 'oops,1,2,3,4\n'):
        open(path, 'w').write(damaged)
        rerun(one_epoch, mnist_npz)  # resumes; nothing left to train
        assert open(path).read() == whole
    assert 'did not hold the 1 rows its checkpoint keeps' in caplog.text


@pytest.mark.slow
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
    # every tensor but the flags, which hold --steps_per_loop
    assert_same_checkpoints(str(tmp_path / 'k1'), str(tmp_path / 'k4'), ignore=('run_flags',))
    assert four.train_loop.experimental_get_tracing_count() == 1
    for name in ('001.png', '002.png'):
        assert (tmp_path / 'k4' / 'plot' / 'MNIST-False' / name).read_bytes() == \
            (tmp_path / 'k1' / 'plot' / 'MNIST-False' / name).read_bytes()


def test_second_run_of_a_save_name_is_refused(tmp_path):
    config = small_config(tmp_path, ImageType='digits')
    lock_path = os.path.join(config.MODEL_PATH, 'digits-False.lock')
    os.makedirs(config.MODEL_PATH)
    with run_files.RunLock(lock_path):
        with pytest.raises(UsageError, match=r'another run is training this SaveName \(pid {} on '
                           r'host {}'.format(os.getpid(), re.escape(socket.gethostname()))):
            trainer.train(config)
    assert not os.path.exists(os.path.join(config.LOG_PATH, 'digits-False-loss.csv'))


def test_stale_lock_is_taken_over(tmp_path, caplog):
    lock_path = str(tmp_path / 'digits-False.lock')
    with open(lock_path, 'w') as f:  # what a killed run leaves: its line, but no lock held
        f.write('pid 999999 on host elsewhere, since 2026-01-01 00:00:00\n')
    with run_files.RunLock(lock_path):
        assert open(lock_path).read().startswith('pid {} on host {}'.format(
            os.getpid(), socket.gethostname()))
    assert 'Took over the lock' in caplog.text and 'pid 999999 on host elsewhere' in caplog.text
    assert open(lock_path).read() == ''  # released at the end
    with run_files.RunLock(lock_path):  # and free for the next run
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
