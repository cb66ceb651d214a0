"""Every file on a file system TensorFlow opens by its scheme: ram://, in this process's memory, as
gs:// or hdfs:// would be on a cluster. A run there equals the run on local paths; a store that
does not answer is one line after a bounded wait; the lock and moving a run aside without a local
file system; the output folders a Vertex AI job names."""
import json
import os
import re
import time
import types

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

import config
import convert_tfrecord
import csv_log
import evaluate
import files
import generate
from errors import UsageError
from helpers import (StopAt, assert_same_checkpoints, error_line, run_script, small_config,
                     tiny_feature_model, train_in_process)
import run_files
from tools import synthetic
import trainer


def put(local, remote):
    """Copy the local folder local to the folder remote."""
    for folder, _, names in os.walk(local):
        tf.io.gfile.makedirs(os.path.join(remote, os.path.relpath(folder, local)))
        for name in names:
            path = os.path.join(folder, name)
            tf.io.gfile.copy(path, os.path.join(remote, os.path.relpath(path, local)), True)


def read(path, mode='rb'):
    with tf.io.gfile.GFile(path, mode) as f:
        return f.read()


@pytest.mark.slow
def test_a_run_on_ram_equals_the_run_on_local_paths(tmp_path, monkeypatch):
    # pictures converted to records, trained on with --eval_every, evaluated and sampled: once
    # with every path local, once with every path on ram:// and stopped by Ctrl-C and resumed
    monkeypatch.chdir(tmp_path)
    pictures = str(tmp_path / 'pictures')
    synthetic.write_folder(pictures)
    put(pictures, 'ram://storage/pictures')
    os.makedirs(tmp_path / 'features')
    tiny_feature_model(str(tmp_path / 'features' / 'features.keras'), channels=3)
    put(str(tmp_path / 'features'), 'ram://storage/features')
    results = {}
    for root in (str(tmp_path / 'local'), 'ram://storage/run'):
        data = 'ram://storage' if root.startswith('ram://') else str(tmp_path)
        records = os.path.join(root, 'records', 'my_images')
        manifest = convert_tfrecord.convert(os.path.join(data, 'pictures'), records, 'all',
                                            shard_mb=0.001, progress=False)
        features = os.path.join(data, 'features', 'features.keras')
        stats = os.path.join(root, 'stats')
        settings = dict(ImageType='folder', TFRecordPath=records, epochs=2, steps_per_epoch=3,
                        BATCH_SIZE=4, seed=5, eval_every=1, eval_samples=12,
                        feature_model=features, stats_dir=stats, tensorboard=True)
        if root.startswith('ram://'):  # (a local run resumes exactly: tests/test_resume.py)
            with pytest.raises(trainer.Stopped, match='SIGINT at epoch 2, step 1 of 3'):
                train_in_process(root, [StopAt(4)], **settings)
        run = train_in_process(root, **settings)
        assert int(run.step) == 6
        generator = os.path.join(root, 'models', 'my_images-False', 'generator.keras')
        evaluate.run(config.EvalConfig(
            model=generator, ImageType='folder', TFRecordPath=records, DisInSize=32,
            feature_model=features, stats_dir=stats, num_samples=12, seed=1,
            out=os.path.join(root, 'eval.json'), save_stats=os.path.join(root, 'mu_sigma.npz')))
        generate.run(config.SampleConfig(model=generator, DisInSize=32, rows=2, cols=3, seed=2,
                                         out=os.path.join(root, 'out', 'grid.png'),
                                         save_latents=True))
        results[root[:3]] = dict(
            manifest=manifest, loss=read(os.path.join(root, 'logs', 'my_images-False-loss.csv')),
            eval=csv_log.read_csv(os.path.join(root, 'logs', 'my_images-False-eval.csv'),
                                  csv_log.EVAL_COLUMNS),
            report=json.loads(read(os.path.join(root, 'eval.json'))),
            stats=np.load(tf.io.gfile.GFile(os.path.join(root, 'mu_sigma.npz'), 'rb'))['mu'],
            grid=np.asarray(Image.open(tf.io.gfile.GFile(os.path.join(root, 'out', 'grid.png'),
                                                         'rb'))),
            latents=np.load(tf.io.gfile.GFile(os.path.join(root, 'out', 'grid.npy'), 'rb')),
            files=sorted(os.path.relpath(os.path.join(folder, name), root)
                         for folder, _, names in tf.io.gfile.walk(root) for name in names))
    local, ram = results['/tm'], results['ram']
    partition = ram['manifest']['partitions']['train']
    assert partition['records'] == local['manifest']['partitions']['train']['records'] == 10
    assert len(partition['skipped']) == 2
    assert ram['loss'] == local['loss'] and ram['loss'].count(b'\n') == 3
    for column in csv_log.EVAL_COLUMNS[:-1]:  # all but the seconds
        np.testing.assert_array_equal(ram['eval'][column], local['eval'][column])
    for key in ('fid', 'kid_mean', 'precision', 'recall', 'is_mean', 'num_samples'):
        assert ram['report'][key] == local['report'][key], key
    np.testing.assert_array_equal(ram['stats'], local['stats'])
    np.testing.assert_array_equal(ram['grid'], local['grid'])
    np.testing.assert_array_equal(ram['latents'], local['latents'])
    # the networks, optimizers, RNG and loss rows of the checkpoint: all but the flags, which
    # name the records' folder, and the eval rows, which hold the seconds an evaluation took
    assert_same_checkpoints(str(tmp_path / 'local'), 'ram://storage/run', 'my_images-False',
                            ignore=('run_flags', 'eval_rows'))
    # the same files (but the stop's checkpoint, and the local lock files, which stay, empty; names
    # made of the time, or of the records' paths), no lock or temporary left on ram://, and
    # nothing local made by its run
    def named(paths):
        return sorted({re.sub(r'(tfevents|ref-|classifier-)[^/]*', r'\1', p) for p in paths
                       if not p.endswith('.lock')})

    stop = [p for p in ram['files'] if '/ckpt-4.' in p]  # the checkpoint of the stop
    assert len(stop) == 2 and named(set(ram['files']) - set(stop)) == named(local['files'])
    assert 'models/my_images-False/best/generator.keras' in ram['files']
    assert len([p for p in ram['files'] if 'tfevents' in p]) == 2  # the stopped run's, the rest's
    assert not any('.tmp-' in p or p.endswith('.lock') for p in ram['files'])
    assert sorted(os.listdir(tmp_path)) == ['features', 'local', 'pictures']


def test_an_unreachable_store_is_one_line_after_a_bounded_wait(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(files, 'REMOTE_TIMEOUT', 0.5)

    def hang(path):
        time.sleep(30)

    monkeypatch.setattr(files, '_gfile', lambda: types.SimpleNamespace(makedirs=hang))
    start = time.time()
    with pytest.raises(UsageError, match=r'cannot write to gs://bucket/runs \(no answer in 0.5 s '):
        files.check_writable('gs://bucket/runs')
    assert time.time() - start < 5
    # a bucket this machine cannot reach: TensorFlow's own reason (or no answer in 10 s), before
    # anything is made (it used to make a local folder 'gs:' and train an epoch first)
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(files, 'REMOTE_TIMEOUT', 10)
    start = time.time()
    with pytest.raises(UsageError, match='cannot write to gs://no-such-bucket-here/m '):
        train_in_process(tmp_path, ImageType='digits', MODEL_PATH='gs://no-such-bucket-here/m')
    assert time.time() - start < 30
    assert not os.path.exists(tmp_path / 'gs:')


@pytest.mark.slow
def test_a_bucket_out_of_reach_is_one_line(tmp_path):
    start = time.time()
    line = error_line(run_script('main.py', ['--ImageType=digits',
                                             '--MODEL_PATH=gs://no-such-bucket-here/m'], tmp_path))
    assert 'cannot write to gs://no-such-bucket-here/m (' in line
    assert time.time() - start < files.REMOTE_TIMEOUT + 60
    assert os.listdir(tmp_path) == []


def test_the_lock_on_a_store_without_locks(monkeypatch, caplog):
    monkeypatch.setattr(run_files.RemoteLock, 'SETTLE', 0)
    folder = 'ram://storage/lock'
    paths = run_files.RunFiles('digits-False', folder, folder, folder)
    assert paths.locks == [folder + '/digits-False.lock']
    with run_files.lock_outputs(paths):
        assert read(paths.locks[0], 'r').startswith('pid {} on host'.format(os.getpid()))
        with pytest.raises(UsageError, match='another run is training this SaveName'):
            with run_files.lock_outputs(paths):
                pass
    assert not tf.io.gfile.exists(paths.locks[0])  # released
    # a holder killed without its exit: taken over once its line is STALE seconds old
    with tf.io.gfile.GFile(paths.locks[0], 'w') as f:
        f.write('pid 1 on host gone, since then; alive at {:.0f}\n'.format(time.time() - 400))
    with run_files.lock_outputs(paths):
        assert 'Took over the lock' in caplog.text


def test_a_run_on_a_store_is_moved_aside_whole():
    # as --noresume does: beside its lock, whose name begins with the folder's (which ram://
    # took for a file in the folder), and twice
    models = 'ram://storage/aside/models'
    for name in ('flags.json', 'checkpoints/ckpt-1.index', 'best/generator.keras'):
        files.makedirs(os.path.dirname(os.path.join(models, 'digits-False', name)))
        with files.open_file(os.path.join(models, 'digits-False', name), 'w') as f:
            f.write(name)
    with files.open_file(models + '/digits-False.lock', 'w') as f:
        f.write('pid 1')
    first = run_files.move_aside([models + '/digits-False'])
    files.makedirs(models + '/digits-False/best')
    second = run_files.move_aside([models + '/digits-False/'])
    assert first[0] != second[0] and not files.exists(models + '/digits-False')
    assert files.listdir(models) == sorted(['digits-False.lock', first[0].rsplit('/', 1)[1],
                                            second[0].rsplit('/', 1)[1]])
    assert first[0].startswith(models + '/digits-False.old-')
    assert [(f[len(first[0]):], sorted(n)) for f, _, n in files.walk(first[0])] == [
        ('', ['flags.json']), ('/best', ['generator.keras']), ('/checkpoints', ['ckpt-1.index'])]
    assert read(first[0] + '/best/generator.keras', 'r') == 'best/generator.keras'
    assert list(files.walk(second[0])) == [(second[0], ['best'], []), (second[0] + '/best', [], [])]


def test_a_vertex_ai_job_writes_where_it_is_told(monkeypatch):
    flag_values = flags.FlagValues()
    config.define_flags(config.TrainConfig, 'main', flag_values)
    environ = {'AIP_MODEL_DIR': 'gs://b/job/model/',
               'AIP_CHECKPOINT_DIR': 'gs://b/job/checkpoints/',
               'AIP_TENSORBOARD_LOG_DIR': 'gs://b/job/logs/'}
    flag_values(['main.py'])
    c = config.cluster_outputs(config.from_flags(config.TrainConfig, flag_values), environ,
                               flag_values)
    assert (c.MODEL_PATH, c.LOG_PATH, c.PLOT_PATH) == ('gs://b/job/model', 'gs://b/job/logs/',
                                                       'gs://b/job/plot')
    flag_values(['main.py', '--PLOT_PATH=gs://b/grids'])  # a flag given wins
    c = config.cluster_outputs(config.from_flags(config.TrainConfig, flag_values), environ,
                               flag_values)
    assert (c.MODEL_PATH, c.PLOT_PATH) == ('gs://b/job/model', 'gs://b/grids')
    assert config.cluster_outputs(small_config('x'), {}, flag_values) == small_config('x')
