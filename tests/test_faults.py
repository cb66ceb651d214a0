"""Faults that used to lose work silently or end in a traceback: each recovers exactly or stops
with one line naming the file and the next step (the list is in docs/reliability.md)."""
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import csv_log
import dataset
import errors
from errors import OutputError, UsageError
import files
import gan
from helpers import (ROOT, SMALL, StopAt, assert_same_checkpoints, csv_text, error_line,
                     run_script, script_env, small_config, start_script, train_in_process)
import hooks
import interrupts
import metrics
import model
import plot_logs
import run_files
import trainer

# one worker runs this file's tests, which share expensive runs (pytest.ini: loadgroup)
pytestmark = pytest.mark.xdist_group('faults')

RUN = dict(ImageType='MNIST', epochs=3, steps_per_epoch=2, seed=11)


@pytest.fixture(scope='session')
def whole(mnist_npz, tmp_path_factory):
    """An uninterrupted 3-epoch run: what every recovered run must equal."""
    folder = str(tmp_path_factory.mktemp('whole'))
    train_in_process(folder, mnist_path=mnist_npz, **RUN)
    return folder


@pytest.fixture(scope='session')
def two_epochs_run(mnist_npz, tmp_path_factory):
    """The first 2 of whole's 3 epochs (trained once)."""
    folder = str(tmp_path_factory.mktemp('two_epochs'))
    train_in_process(folder, mnist_path=mnist_npz, **dict(RUN, epochs=2))
    return folder


@pytest.fixture
def two_epochs(two_epochs_run, tmp_path):
    """A fresh copy of two_epochs_run, to damage and resume."""
    shutil.copytree(two_epochs_run, str(tmp_path / 'run'))
    return str(tmp_path / 'run')


def resume(folder, mnist_npz, **changes):
    return train_in_process(folder, mnist_path=mnist_npz, **dict(RUN, **changes))


def ckpt_dir(folder):
    return os.path.join(folder, 'models', 'MNIST-False', 'checkpoints')


# ----------------------------------------------------------------------------- lost silently

def test_a_second_run_sharing_only_the_log_folder_is_refused(tmp_path):
    # the lock's advice used to be "train into another --MODEL_PATH", which then shared logs/
    first = small_config(tmp_path, ImageType='digits')
    os.makedirs(first.LOG_PATH)
    second = small_config(tmp_path, ImageType='digits', MODEL_PATH=str(tmp_path / 'other'))
    with run_files.RunLock(os.path.join(first.LOG_PATH, 'digits-False.lock')):
        with pytest.raises(UsageError, match='another run is training this SaveName .*own '
                           '--MODEL_PATH, --LOG_PATH and --PLOT_PATH'):
            trainer.train(second)
    assert not os.path.exists(os.path.join(first.LOG_PATH, 'digits-False-loss.csv'))
    assert {os.path.basename(p) for p in run_files.RunFiles.of(second).locks} == \
        {'digits-False.lock'} and len(run_files.RunFiles.of(second).locks) == 3


def test_a_deleted_model_folder_keeps_its_lock(tmp_path):
    # deleting models/ under a live run removed its lock file: a second run with other log and
    # plot folders took the lock and wrote generator.keras and flags.json into the live run
    first = run_files.RunFiles('digits-False', str(tmp_path / 'logs'), str(tmp_path / 'models'),
                               str(tmp_path / 'plot'))
    second = run_files.RunFiles('digits-False', str(tmp_path / 'logs2'), first.model_path,
                                str(tmp_path / 'plot2'))
    for folder in (first.log_path, first.model_path, first.plot_path, second.log_path,
                   second.plot_path):
        os.makedirs(folder)
    with run_files.lock_outputs(first):
        shutil.rmtree(first.model_path)
        os.makedirs(first.model_path)
        with pytest.raises(UsageError, match=r'another run is training this SaveName \(pid {} '
                           .format(os.getpid())):
            with run_files.lock_outputs(second):
                pass
    with run_files.lock_outputs(second):  # released with the first run
        pass


@pytest.mark.parametrize('damage', ['no state file', 'empty state file', 'garbled state file'])
def test_lost_or_garbled_state_file_resumes_from_the_newest_checkpoint(whole, two_epochs,
                                                                       mnist_npz, damage, caplog):
    state = os.path.join(ckpt_dir(two_epochs), 'checkpoint')
    if damage == 'no state file':
        os.remove(state)
    else:
        open(state, 'w').write('' if damage == 'empty state file' else 'model_checkpoint_path: "x')
    run = resume(two_epochs, mnist_npz, epochs=2)  # nothing to train: the state as restored
    assert 'resuming from ckpt-4' in caplog.text
    assert run.checkpoint.latest == os.path.join(ckpt_dir(two_epochs), 'ckpt-4')
    resume(two_epochs, mnist_npz)
    assert csv_text(two_epochs) == csv_text(whole)
    assert_same_checkpoints(two_epochs, whole)


@pytest.mark.parametrize('damage', ['truncated data', 'flipped byte', 'empty data'])
def test_damaged_newest_checkpoint_falls_back_to_the_one_before(whole, two_epochs, mnist_npz,
                                                                damage, caplog):
    data = glob.glob(os.path.join(ckpt_dir(two_epochs), 'ckpt-4.data-*'))[0]
    content = bytearray(open(data, 'rb').read())
    if damage == 'truncated data':
        content = content[:len(content) // 2]
    elif damage == 'flipped byte':
        content[len(content) // 3] ^= 0xFF
    else:
        content = b''
    open(data, 'wb').write(bytes(content))
    resume(two_epochs, mnist_npz)
    assert 'Damaged checkpoint(s) ckpt-4' in caplog.text and 'from the older ckpt-2' in caplog.text
    assert os.path.exists(data + '.damaged')
    # epoch 2 was trained again from ckpt-2: each epoch once, with the uninterrupted numbers
    assert csv_text(two_epochs) == csv_text(whole)
    assert_same_checkpoints(two_epochs, whole)


def test_resumed_runs_keep_only_keep_checkpoints_and_no_temporary(whole, two_epochs, mnist_npz):
    # every resume used to leave the checkpoints it found for ever: 2 + 1 here, and 8 after runs
    # of 2, 5 and 9 epochs with the default 3
    # and the temporary folder of a save that was killed is removed at the next start
    os.makedirs(os.path.join(ckpt_dir(two_epochs), 'ckpt-5_temp', 'part-00000-of-00001'))
    resume(two_epochs, mnist_npz, keep_checkpoints=1)
    assert sorted(os.listdir(ckpt_dir(two_epochs))) == ['checkpoint', 'ckpt-6.data-00000-of-00001',
                                                        'ckpt-6.index']
    state = tf.train.get_checkpoint_state(ckpt_dir(two_epochs))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ['ckpt-6']
    assert csv_text(two_epochs) == csv_text(whole)


def test_every_checkpoint_damaged_is_one_error(two_epochs, mnist_npz):
    for data in glob.glob(os.path.join(ckpt_dir(two_epochs), 'ckpt-*.data-*')):
        open(data, 'wb').close()
    with pytest.raises(UsageError, match='every checkpoint in .* is damaged .*--noresume'):
        resume(two_epochs, mnist_npz)


@pytest.mark.slow
def test_missing_flags_json_keeps_the_seed(mnist_npz, tmp_path, caplog):
    # no --seed: a random one, recorded in flags.json and in the checkpoint
    settings = dict(RUN, seed=None)
    kept, lost = str(tmp_path / 'kept'), str(tmp_path / 'lost')
    train_in_process(kept, mnist_path=mnist_npz, **dict(settings, epochs=1))
    shutil.copytree(kept, lost)
    os.remove(os.path.join(lost, 'models', 'MNIST-False', 'flags.json'))
    train_in_process(kept, mnist_path=mnist_npz, **settings)
    train_in_process(lost, mnist_path=mnist_npz, **settings)
    assert 'flags.json is missing: the run\'s flags (seed' in caplog.text
    assert csv_text(lost) == csv_text(kept)
    assert json.load(open(os.path.join(lost, 'models', 'MNIST-False', 'flags.json')))['seed'] == \
        json.load(open(os.path.join(kept, 'models', 'MNIST-False', 'flags.json')))['seed']


@pytest.mark.slow
def test_hand_edited_flags_json_resumes_with_the_checkpoints_values(whole, two_epochs, mnist_npz,
                                                                    caplog):
    # an edited seed resumed with the new seed, no word; an edited shape gave advice that failed
    path = os.path.join(two_epochs, 'models', 'MNIST-False', 'flags.json')
    flags = json.load(open(path))
    json.dump(dict(flags, seed=999, filters=-5, DisInSize=64), open(path, 'w'))
    run = resume(two_epochs, mnist_npz)
    assert run.seed == 11
    assert 'differs from the checkpoint it describes (DisInSize: 32 -> 64; filters: 128 -> -5; ' \
        'seed: 11 -> 999): resuming with the checkpoint\'s values' in caplog.text
    assert csv_text(two_epochs) == csv_text(whole)
    assert_same_checkpoints(whole, two_epochs)


def test_missing_flags_json_still_refuses_another_shape(two_epochs, mnist_npz):
    os.remove(os.path.join(two_epochs, 'models', 'MNIST-False', 'flags.json'))
    with pytest.raises(UsageError, match='was made with --filters=128'):
        resume(two_epochs, mnist_npz, filters=256)


class CutEvalCsv(hooks.Hook):
    """Cuts the eval CSV's last row after epoch 2, as a crash right after writing it would."""

    def on_epoch_end(self, run, epoch, means):
        if epoch == 1:
            path = run.files.eval_csv
            text = open(path).read()
            open(path, 'w').write(text[:text.rindex(',')] + '\0' * 20)


@pytest.mark.slow
def test_a_cut_eval_csv_keeps_its_rows_and_the_best_generator(mnist_npz, tmp_path):
    from helpers import tiny_feature_model
    features = tiny_feature_model(str(tmp_path / 'tiny.keras'))
    settings = dict(RUN, eval_every=1, eval_samples=16, feature_model=features,
                    stats_dir=str(tmp_path / 'stats'))
    train_in_process(tmp_path / 'whole', mnist_path=mnist_npz, **settings)
    cut = str(tmp_path / 'cut')
    with pytest.raises(trainer.Stopped):
        train_in_process(cut, [CutEvalCsv(), StopAt(5)], mnist_path=mnist_npz, **settings)
    train_in_process(cut, mnist_path=mnist_npz, **settings)
    rows = [csv_log.read_csv(os.path.join(f, 'logs', 'MNIST-False-eval.csv'), csv_log.EVAL_COLUMNS)
            for f in (str(tmp_path / 'whole'), cut)]
    for column in ('epoch', 'FID', 'KID', 'precision', 'recall', 'IS'):
        np.testing.assert_array_equal(rows[0][column], rows[1][column])
    best = [json.load(open(os.path.join(f, 'models', 'MNIST-False', 'best', 'best.json')))
            for f in (str(tmp_path / 'whole'), cut)]
    assert (best[0]['epoch'], best[0]['fid']) == (best[1]['epoch'], best[1]['fid'])
    # and best/ holds that epoch's generator, not a later, worse one
    weights = [keras.models.load_model(os.path.join(f, 'models', 'MNIST-False', 'best',
                                                    'generator.keras')).get_weights()
               for f in (str(tmp_path / 'whole'), cut)]
    assert len(weights[0]) == len(weights[1]) > 10
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_move_aside_twice_in_one_second_keeps_both(tmp_path):
    for content in ('first', 'second'):
        (tmp_path / 'run.csv').write_text(content)
        run_files.move_aside([str(tmp_path / 'run.csv')])
    old = sorted(p.read_text() for p in tmp_path.glob('run.csv.old-*'))
    assert old == ['first', 'second']


class FailingOpen:
    """Stands in for files.open_file of the file named name (opened in one of modes), on a disk
    that runs out of space halfway: the first write writes half, then fails."""

    def __init__(self, name, modes='w'):
        self.name, self.modes = name, modes

    def __call__(self, path, mode='r', *args, **kwargs):
        file = open(path, mode, *args, **kwargs)
        if self.name in os.path.basename(path) and mode[0] in self.modes:
            def write(data):
                file.__class__.write(file, data[:len(data) // 2])
                raise OSError(28, 'No space left on device')
            file.write = write
        return file


@pytest.mark.slow
def test_full_disk_while_writing_a_csv_row_then_resume_is_exact(whole, two_epochs, mnist_npz,
                                                                  monkeypatch):
    # the row is cut halfway; the next run rewrites the CSV from the checkpoint
    monkeypatch.setattr(files, 'open_file', FailingOpen('MNIST-False-loss.csv', 'a'))
    with pytest.raises(OutputError) as error:
        resume(two_epochs, mnist_npz)
    assert errors.error_message(error.value).startswith(
        'no space left on the device of {} while saving a row of the CSV log; the last good '
        'checkpoint, '.format(os.path.join(two_epochs, 'logs', 'MNIST-False-loss.csv')))
    assert not csv_text(two_epochs).endswith('\n')  # half a row
    monkeypatch.undo()
    resume(two_epochs, mnist_npz)
    assert csv_text(two_epochs) == csv_text(whole)
    assert_same_checkpoints(two_epochs, whole)


@pytest.mark.parametrize('name', ['Generator.weights.h5', 'generator.keras'])
def test_failed_weight_or_model_save_keeps_the_previous_file(two_epochs, mnist_npz, monkeypatch,
                                                             name):
    folder = os.path.join(two_epochs, 'models', 'MNIST-False')
    before = open(os.path.join(folder, name), 'rb').read()
    monkeypatch.setattr(files, 'open_file', FailingOpen(name))
    with pytest.raises(OutputError) as error:
        resume(two_epochs, mnist_npz)
    message = errors.error_message(error.value)
    assert message.startswith('no space left on the device of ' + os.path.join(folder, name))
    # the weights are written before epoch 3's checkpoint, the generator after it
    assert 'the last good checkpoint' in message
    assert ('ckpt-4' if name == 'Generator.weights.h5' else 'ckpt-6') in message
    assert open(os.path.join(folder, name), 'rb').read() == before
    assert not glob.glob(os.path.join(folder, '.tmp-*'))


def test_failed_grid_write_keeps_the_files_as_they_were(two_epochs, mnist_npz, monkeypatch):
    grids = os.path.join(two_epochs, 'plot', 'MNIST-False')
    os.makedirs(os.path.join(grids, '.tmp-003.png'))  # a folder where the temporary file goes
    with pytest.raises(OutputError) as error:
        resume(two_epochs, mnist_npz)
    assert errors.error_message(error.value).startswith('a folder is in the way at ' +
                                                       os.path.join(grids, '003.png'))
    assert sorted(os.listdir(grids)) == ['.tmp-003.png', '001.png', '002.png', 'real.png']


def test_full_disk_for_tensorboard_is_reported(two_epochs, mnist_npz, monkeypatch):
    def full(*_args, **_kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, 'events: No space left on device')
    monkeypatch.setattr(type(tf.summary.create_file_writer(os.path.join(two_epochs, 'tb'))),
                        'flush', full)
    with pytest.raises(OutputError) as error:
        resume(two_epochs, mnist_npz, tensorboard=True)
    assert errors.error_message(error.value).startswith(
        'no space left on the device of ' + os.path.join(two_epochs, 'logs', 'tensorboard',
                                                          'MNIST-False'))


@contextlib.contextmanager
def small_disk(folder, size):
    """folder as a tmpfs of size bytes where this process may mount one (root), else None."""
    os.makedirs(folder)
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size={}'.format(size), 'tmpfs', folder],
                      capture_output=True).returncode:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(['umount', '-l', folder])


@pytest.mark.slow
def test_full_disk_for_tensorboard_events_is_never_silent(mnist_npz, tmp_path, monkeypatch):
    # TensorFlow's writer drops records it cannot write, and its flush can still succeed: the
    # events file was cut to a third with exit 0. First a writer made to lose records that way,
    # then (where this process may mount one) a real 16 KB disk
    real_flush = type(tf.summary.create_file_writer(str(tmp_path / 'tb'))).flush

    def lossy(writer):
        real_flush(writer)
        for path in glob.glob(str(tmp_path / 'lossy' / 'logs' / 'tensorboard' / '*' / 'events*')):
            os.truncate(path, min(os.path.getsize(path), 6000))

    monkeypatch.setattr(type(tf.summary.create_file_writer(str(tmp_path / 'tb'))), 'flush', lossy)
    with pytest.raises(OutputError) as error:
        train_in_process(tmp_path / 'lossy', mnist_path=mnist_npz, tensorboard=True, log_every=1,
                         **dict(RUN, epochs=4))
    message = errors.error_message(error.value)
    assert message.startswith('no space left on the device of ' + str(
        tmp_path / 'lossy' / 'logs' / 'tensorboard' / 'MNIST-False')), message
    assert 'lacks what was written up to step' in str(error.value.cause)
    assert 'while saving TensorBoard events; no checkpoint was saved yet' in message
    monkeypatch.undo()
    logs = str(tmp_path / 'small' / 'logs')
    with small_disk(logs, 16 << 10) as disk:
        if disk:
            with pytest.raises(OutputError) as error:
                train_in_process(tmp_path / 'small', mnist_path=mnist_npz, tensorboard=True,
                                 log_every=1, **dict(RUN, epochs=8))
            message = errors.error_message(error.value)
            assert message.startswith('no space left on the device of ' + logs), message
            assert 'while saving TensorBoard events; ' in message


# ----------------------------------------------------------------------------- one line

@pytest.mark.parametrize('content,message', [
    ('[1, 2]', 'holds a JSON list, not the run\'s flags'),
    ('null', 'holds a JSON NoneType'),
    ('{"epochs": 3}', 'has no valid seed \\(None\\)'),
    ('{"seed": "abc"}', "has no valid seed \\('abc'\\)"),
    ('{"seed": 1.5}', 'has no valid seed \\(1.5\\)'),
    ('{"seed": 1', 'cannot be read as JSON'),
    (None, 'cannot be read as JSON \\(Is a directory\\)'),
])
def test_damaged_flags_json_is_one_error(two_epochs, mnist_npz, content, message):
    path = os.path.join(two_epochs, 'models', 'MNIST-False', 'flags.json')
    os.remove(path)
    if content is None:
        os.makedirs(path)
    else:
        open(path, 'w').write(content)
    with pytest.raises(UsageError, match=message + '.*--noresume'):
        resume(two_epochs, mnist_npz)


def test_out_of_memory_names_the_batch(two_epochs, mnist_npz, monkeypatch):
    def oom(*_args):
        raise tf.errors.ResourceExhaustedError(None, None, 'OOM when allocating tensor')
    monkeypatch.setattr(gan, 'make_train_loop', lambda *a: oom)
    with pytest.raises(UsageError, match='out of memory at --BATCH_SIZE=8 .*--BATCH_SIZE=4; the '
                       'last good checkpoint, .*ckpt-4, is kept'):
        trainer.train(small_config(two_epochs, mnist_path=mnist_npz, **RUN))


def stand_in_run(epochs=5, plot_path='plot/'):
    """What EpochSummary and WeightSaver read of a run, without training one."""
    return types.SimpleNamespace(config=types.SimpleNamespace(epochs=epochs), epoch_lr=2e-4,
                                 files=run_files.RunFiles('x', plot_path=plot_path),
                                 Generator=types.SimpleNamespace(name='Generator'),
                                 Discriminator=types.SimpleNamespace(name='Discriminator'))


def test_collapse_and_explosion_warnings_and_save_every(tmp_path, caplog, monkeypatch):
    summary = hooks.EpochSummary()
    run = stand_in_run(plot_path=str(tmp_path))
    # --lr=1e6 trained to losses of 1e19 with no word (only NaN was caught)
    for epoch, means in enumerate([[0.8, 0.3, 1.2, 0.9], [0.995, 0.005, 6.0, 0.01],
                                   [0.39, 0.47, 1.06e20, -1.81e20]]):
        summary.on_epoch_begin(run, epoch)
        summary.on_epoch_end(run, epoch, means)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
    assert warnings == [
        'Epoch 2: the discriminator wins completely (Real_P 0.9950, Fake_P 0.0050): training has '
        'probably collapsed; look at the grids in ' + os.path.join(str(tmp_path), 'x'),
        'Epoch 3: the losses exploded (Gen_loss 1.06e+20, Dis_loss -1.81e+20; a few is usual): '
        'the learning rate (0.0002) is probably far too high. Stop with Ctrl-C and start again '
        'with a lower --lr (the original\'s is 2e-4) and --noresume']
    saved = []
    monkeypatch.setattr(model, 'save_network', lambda net, path, what: saved.append(
        (net.name, os.path.basename(path))))
    saver = hooks.WeightSaver(save_every=2)
    for epoch in range(5):  # 0-based: epochs 2 and 4 (every 2nd), and 5 (the last)
        saver.on_epoch_end(run, epoch, None)
    assert saved == [('Generator', 'Generator.weights.h5'),
                     ('Discriminator', 'Discriminator.weights.h5')] * 3
    saved.clear()
    for epoch in range(5):
        hooks.WeightSaver(save_every=15).on_epoch_end(run, epoch, None)
    assert len(saved) == 2  # the last epoch only


def test_nan_without_a_checkpoint_says_so(mnist_npz, tmp_path):
    with pytest.raises(UsageError, match='non-finite loss at global step 1 .*no checkpoint was '
                       'saved yet'):
        train_in_process(tmp_path, mnist_path=mnist_npz, **dict(RUN, lr=float('nan')))


def test_a_second_signal_while_saving_waits_for_the_save():
    stop = trainer.StopRequest()
    stop.handle(signal.SIGINT, None)
    stop.saving = True
    stop.handle(signal.SIGINT, None)  # no exception: the save completes, then the run stops
    stop.saving = False
    with pytest.raises(interrupts.Interrupted):
        stop.handle(signal.SIGTERM, None)


def test_wrong_files_for_the_tools(tmp_path):
    png = tmp_path / 'grid.png'
    Image.new('L', (4, 4)).save(png)
    with pytest.raises(UsageError, match='grid.png is not a text file'):
        plot_logs.plot_logs([str(png)], str(tmp_path))
    with pytest.raises(UsageError, match='is a folder: pass a loss CSV'):
        plot_logs.plot_logs([str(tmp_path)], str(tmp_path))
    with pytest.raises(UsageError, match='x.xyz must end in .png, .jpg'):
        files.check_output_file(str(tmp_path / 'x.xyz'), ('.png', '.jpg'))
    with pytest.raises(UsageError, match='is a folder: give a file name'):
        files.check_output_file(str(tmp_path))
    with pytest.raises(UsageError, match='--model .* is a folder'):
        model.load_generator(str(tmp_path), 1, 32, 100)
    (tmp_path / 'log.csv').write_text(csv_log.CSV_HEADER)
    with pytest.raises(UsageError, match='cannot load .*log.csv'):
        model.load_generator(str(tmp_path / 'log.csv'), 1, 32, 100)
    cut = tmp_path / 'generator.keras'
    cut.write_bytes(b'PK\x03\x04 cut off')
    with pytest.raises(UsageError, match='is not a whole .keras file'):
        model.load_generator(str(cut), 1, 32, 100)
    with pytest.raises(UsageError, match='gives 3 images; precision and recall need at least '
                       'k \\+ 1 = 4'):
        metrics.Reference(np.zeros((3, 5)))
    manifest = tmp_path / 'records'
    manifest.mkdir()
    (manifest / 'manifest.json').write_text('[1, 2]')
    with pytest.raises(UsageError, match='is not a manifest of convert_tfrecord.py'):
        dataset.read_manifest(str(manifest))


def test_bit_flipped_keras_file_is_one_error(two_epochs):
    path = os.path.join(two_epochs, 'models', 'MNIST-False', 'generator.keras')
    data = bytearray(open(path, 'rb').read())
    data[len(data) // 2] ^= 0xFF
    open(path, 'wb').write(bytes(data))
    with pytest.raises(UsageError, match='cannot load .*generator.keras|not a whole .keras'):
        model.load_generator(path, 1, 32, 100)


def test_words_that_are_not_flags_are_refused(capsys):
    # absl ignores them: `main.py epochs=5 BATCH_SIZE=8` trained 35 epochs of 128, exit 0
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    ran = []
    try:
        with pytest.raises(SystemExit) as stop:
            errors.entry_point(ran.append)(['main.py', 'epochs=5', 'BATCH_SIZE=8'])
        assert stop.value.code == 1 and not ran
        assert capsys.readouterr().err == ('ERROR: main.py takes only flags, and "epochs=5" is not '
                                           'one: write --epochs=5 (python main.py --helpshort '
                                           'lists them).\n')
        errors.entry_point(positional=True)(ran.append)(['plot_logs.py', 'a.csv'])
        assert ran == [['plot_logs.py', 'a.csv']]
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def test_a_network_of_the_wrong_kind_is_named(two_epochs, tmp_path):
    # a discriminator given as --model or --feature_model was "unexpected ... a bug"
    discriminator = str(tmp_path / 'discriminator.keras')
    model.Dis_Net(32, 1, filters=128).save(discriminator)
    generator = os.path.join(two_epochs, 'models', 'MNIST-False', 'generator.keras')
    with pytest.raises(UsageError, match=r'--model .*discriminator.keras is not a generator: it '
                       r'maps \(None, 32, 32, 1\) to \(None, 1\)'):
        model.load_generator(discriminator, 1, 32, 100)
    for path, shapes in ((discriminator, r'\(None, 32, 32, 1\) to \(None, 1\)'),
                         (generator, r'\(None, 100\) to \(None, 32, 32, 1\)')):
        with pytest.raises(UsageError, match='--feature_model .* maps ' + shapes + ': it needs '
                           'images'):
            metrics.load_feature_model(feature_model=path)


def test_advice_names_the_flag_at_fault(two_epochs, mnist_npz, tmp_path, monkeypatch):
    # huge networks advised a smaller --BATCH_SIZE; --ema added on resume said "cannot restore
    # ... 23 Python objects"; a read-only checkpoints folder gave TensorFlow's own error text
    with pytest.raises(UsageError, match=r'the networks\' weights do not fit in memory at '
                       r'--filters=128 and --noise_dim=100000000 \(.*\): use smaller ones'):
        train_in_process(tmp_path, mnist_path=mnist_npz, **dict(RUN, noise_dim=10 ** 8))
    with pytest.raises(UsageError, match=r'cannot restore .*ckpt-4 with these flags \(it was made '
                       r'with --ema=0.0 \(this run: 0.999\)\): rerun with the flags'):
        resume(two_epochs, mnist_npz, ema=0.999)

    def read_only(*_args, **_kwargs):
        raise tf.errors.PermissionDeniedError(None, None, 'checkpoint: Permission denied')

    monkeypatch.setattr(tf.compat.v1.train, 'update_checkpoint_state', read_only)
    with pytest.raises(OutputError) as error:
        resume(two_epochs, mnist_npz)
    assert errors.error_message(error.value).startswith(
        'no permission to write (or a read-only file system) at {} while saving the checkpoint '
        'state file'.format(os.path.join(ckpt_dir(two_epochs), 'checkpoint')))


def test_unexpected_errors_are_one_line_with_the_debug_hint():
    assert errors.error_message(KeyError('x')).startswith('unexpected KeyError')
    assert 'DCGAN_DEBUG=1' in errors.error_message(OSError(13, 'Permission denied', 'f.txt'))
    message = errors.error_message(tf.errors.NotFoundError(None, None, '{{function_node x}} gone'))
    assert message.startswith('NotFoundError: gone')


# ----------------------------------------------------------------------------- as a process

@pytest.mark.slow
def refused_flags(script, args):
    """The args of script's that absl refuses when it parses them one by one (its flags defined as
    when it runs)."""
    settings = {'main': 'TrainConfig', 'generate': 'SampleConfig', 'evaluate': 'EvalConfig'}[script]
    code = ('import sys, config, {}; from absl import flags\n'
            'config.define_flags(config.' + settings + ', "{}")\n'
            'for arg in sys.argv[1:]:\n'
            '    try:\n'
            '        flags.FLAGS(["{}.py", arg])\n'
            '        print("ACCEPTED", arg)\n'
            '    except flags.Error as e:\n'
            '        print("REFUSED", arg, str(e).splitlines()[0])\n'
            '    flags.FLAGS.unparse_flags()\n').format(script, script, script)
    out = subprocess.run([sys.executable, '-c', code] + args, capture_output=True, text=True,
                         env=script_env(), cwd=ROOT, timeout=120).stdout.splitlines()
    return [line.split()[1] for line in out if line.startswith('REFUSED')]


def test_out_of_range_flags_are_refused_at_parse_time():
    bad = ['--BATCH_SIZE=0', '--BATCH_SIZE=-4', '--save_every=0', '--log_every=0',
           '--noise_dim=0', '--seed=-1', '--seed=4294967296', '--keep_checkpoints=0',
           '--epochs=0', '--steps_per_epoch=-1', '--steps_per_loop=0', '--eval_every=-1',
           '--eval_samples=3', '--shuffle_buffer=-5', '--lr=-1', '--lr=nan', '--lr_D=0',
           '--filters=0', '--ema=1', '--ref_samples=2']
    assert refused_flags('main', bad) == bad
    # generate.py's seed of -1 and a 100000-row grid, evaluate.py's 10^8 samples were "a bug"
    bad = ['--seed=-1', '--seed=4294967296', '--rows=100000', '--cols=101', '--steps=1000']
    assert refused_flags('generate', bad + ['--rows=100', '--seed=0']) == bad
    assert refused_flags('evaluate', ['--num_samples=100000000', '--num_samples=1000000',
                                      '--num_samples=3', '--ref_samples=3']) == \
        ['--num_samples=100000000', '--num_samples=3', '--ref_samples=3']
    # as absl prints it: one line, then its hint, exit status 1
    result = run_script('main.py', ['--BATCH_SIZE=0'], ROOT)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert 'flag --BATCH_SIZE=0: 0 is not a positive integer' in result.stderr


@pytest.mark.slow
def test_full_disk_while_checkpointing_then_resume_is_exact(whole, mnist_npz, tmp_path):
    # the checkpoint of epoch 2 cannot be written (a file size limit stands in for a full disk);
    # after "freeing space" the same command resumes, and the run equals an uninterrupted one
    cwd = str(tmp_path)
    args = SMALL + ['--ImageType=MNIST', '--mnist_path=' + mnist_npz, '--epochs=3',
                    '--steps_per_epoch=2', '--seed=11', '--LOG_PATH=logs', '--MODEL_PATH=models',
                    '--PLOT_PATH=plot']
    resume(cwd, mnist_npz, epochs=1)  # in this process: the command's run, as whole shows
    limit = os.path.join(ROOT, 'tests', 'file_limit.py')
    result = run_script(limit, ['200000', os.path.join(ROOT, 'main.py')] + args, cwd)
    line = error_line(result)
    assert 'while saving checkpoint ckpt-4; the last good checkpoint, ' in line, line
    assert 'ckpt-2, is kept' in line and 'DCGAN_DEBUG=1' in line
    assert not glob.glob(os.path.join(cwd, 'models', 'MNIST-False', 'checkpoints', '*temp*'))
    assert sorted(os.listdir(os.path.join(cwd, 'models', 'MNIST-False', 'checkpoints'))) == [
        'checkpoint', 'ckpt-2.data-00000-of-00001', 'ckpt-2.index']
    resume(cwd, mnist_npz)
    assert csv_text(cwd) == csv_text(whole)
    assert_same_checkpoints(cwd, whole)


@pytest.mark.slow
def test_full_disk_while_writing_weights_is_one_line(mnist_npz, tmp_path):
    # h5py on a full disk printed "Exception ignored ... file write failed" tracebacks after the
    # one-line error, and sometimes crashed the process (status 139). A 400 KB tmpfs where the
    # test may mount one, else a file size limit
    models = str(tmp_path / 'models')
    args = SMALL + ['--ImageType=MNIST', '--mnist_path=' + mnist_npz, '--epochs=1',
                    '--MODEL_PATH=' + models]
    with small_disk(models, 400 << 10) as disk:
        command = [os.path.join(ROOT, 'main.py')] if disk else [
            os.path.join(ROOT, 'tests', 'file_limit.py'), '200000', os.path.join(ROOT, 'main.py')]
        result = run_script(command[0], command[1:] + args, str(tmp_path))
    assert result.returncode == 1, result.stderr
    line = error_line(result)
    assert 'while saving the Generator weights; no checkpoint was saved yet' in line, line
    assert 'Exception ignored' not in result.stderr and 'h5py' not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_start_up_is_one_line(mnist_npz, tmp_path, sig):
    proc = start_script('main.py', SMALL + ['--ImageType=MNIST', '--mnist_path=' + mnist_npz,
                                            '--epochs=1'], str(tmp_path))
    try:  # the signal comes once TensorFlow's library is loaded: seconds before anything is written
        deadline = time.time() + 60
        while 'libtensorflow' not in open('/proc/{}/maps'.format(proc.pid)).read():
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.01)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    err = err.decode()
    assert proc.returncode == 128 + sig, err
    assert 'Traceback' not in err
    lines = [line for line in err.splitlines() if line.startswith('ERROR: ')]
    assert lines == ['ERROR: stopped by {} during start-up, before anything was written; run the '
                     'command again.'.format(signal.Signals(sig).name)], err
    assert not os.path.exists(tmp_path / 'models' / 'MNIST-False')


@pytest.mark.slow
def test_tool_errors_are_one_line(two_epochs, tmp_path):
    generator = os.path.join(two_epochs, 'models', 'MNIST-False', 'generator.keras')
    assert 'must end in .png' in error_line(run_script(
        'generate.py', ['--model=' + generator, '--out=x.xyz'], str(tmp_path)))
    assert 'is a folder: give a file name' in error_line(run_script(
        'evaluate.py', ['--model=' + generator, '--out=' + str(tmp_path)], str(tmp_path)))
    png = tmp_path / 'p.png'
    Image.new('L', (4, 4)).save(png)
    assert 'is not a text file' in error_line(run_script('plot_logs.py', [str(png)],
                                                         str(tmp_path)))
