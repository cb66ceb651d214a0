"""Training end to end: CSV log, sample grids, weights, learning-rate schedule, bad input."""
import glob
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import config as config_lib
import csv_log
from errors import UsageError
import gan
from helpers import ROOT, script_env, small_config, train_in_process
import model
import trainer
import utils

ROW = re.compile(r'^ {0,4}\d+,\d+\.\d{6},\d+\.\d{6},\d+\.\d{6},\d+\.\d{6}$')

# one worker runs this file's tests, which share expensive runs (pytest.ini: loadgroup)
pytestmark = pytest.mark.xdist_group('train')


@pytest.fixture(scope='session')
def mnist_run(mnist_npz, tmp_path_factory):
    """A finished 2-epoch MNIST run at 32x32, trained in this process."""
    folder = tmp_path_factory.mktemp('mnist_run')
    run = train_in_process(folder, ImageType='MNIST', mnist_path=mnist_npz, epochs=2, seed=1,
                           tensorboard=True, log_every=2)
    return str(folder), run


def test_csv_log(mnist_run):
    cwd, _ = mnist_run
    lines = open(os.path.join(cwd, 'logs', 'MNIST-False-loss.csv')).read().splitlines()
    assert lines[0] == 'epoch,Real_P,Fake_P,Gen_loss,Dis_loss'
    assert len(lines) == 3 and all(ROW.match(l) for l in lines[1:]), lines
    table = csv_log.read_loss_csv(os.path.join(cwd, 'logs', 'MNIST-False-loss.csv'))
    assert list(table['epoch']) == [0, 1]
    assert np.all((table['Real_P'] > 0) & (table['Real_P'] < 1))
    assert np.all((table['Fake_P'] > 0) & (table['Fake_P'] < 1))
    # the seed's losses: D = BCE(1, real) + BCE(0, fake) stays near 2 ln 2 early on
    assert np.all((table['Dis_loss'] > 0.1) & (table['Dis_loss'] < 3))
    assert np.all(table['Gen_loss'] > 0)


def test_sample_grids_and_weights(mnist_run):
    cwd, run = mnist_run
    grids = sorted(glob.glob(os.path.join(cwd, 'plot', 'MNIST-False', '*.png')))
    assert [os.path.basename(g) for g in grids] == ['001.png', '002.png', 'real.png']
    grids = grids[:2]
    with Image.open(grids[-1]) as img:
        # 4 tiles of 32 px with 2 px gaps, enlarged 2x to be seen; every 2x2 block is one pixel
        assert img.mode == 'L' and img.size == (2 * (4 * 32 + 5 * 2),) * 2
        last = np.asarray(img)[::2, ::2]
        assert np.array_equal(np.asarray(img), utils.viewable(last[..., None])[..., 0])
    model_dir = os.path.join(cwd, 'models', 'MNIST-False')
    # .weights.h5 files reload into fresh models and give the exported generator's outputs
    G = model.Gen_Net(1, 100, 32, filters=128)
    G.load_weights(os.path.join(model_dir, 'Generator.weights.h5'))
    D = model.Dis_Net(32, 1, filters=128)
    D.load_weights(os.path.join(model_dir, 'Discriminator.weights.h5'))
    exported = keras.models.load_model(os.path.join(model_dir, 'generator.keras'))
    noise = tf.random.normal([5, 100], seed=4)
    np.testing.assert_allclose(G(noise, training=False), exported(noise, training=False), atol=1e-6)
    assert D(G(noise)).shape == (5, 1)
    # the last grid is G(fixed noise) with the final weights
    ckpt = tf.train.load_checkpoint(os.path.join(model_dir, 'checkpoints'))
    fixed = ckpt.get_tensor('fixed_noise/.ATTRIBUTES/VARIABLE_VALUE')
    want = utils.make_grid(utils.to_uint8(G(fixed, training=False)), 4, 4)[..., 0]
    assert np.abs(last.astype(int) - want).max() <= 1
    assert run.train_step.experimental_get_tracing_count() == 1


def test_real_grid_shows_the_training_images_as_the_networks_see_them(mnist_run, mnist_npz):
    cwd, _ = mnist_run
    with Image.open(os.path.join(cwd, 'plot', 'MNIST-False', 'real.png')) as img:
        assert img.mode == 'L' and img.size == (276, 276)
        real = np.asarray(img)
    import dataset
    first = np.stack(list(dataset.load_mnist(mnist_npz, 32).take(16).as_numpy_iterator()))
    want = utils.viewable(utils.make_grid(utils.to_uint8(first), 4, 4))[..., 0]
    np.testing.assert_array_equal(real, want)


def test_tensorboard_scalars_and_images(mnist_run):
    cwd, _ = mnist_run
    events = glob.glob(os.path.join(cwd, 'logs', 'tensorboard', 'MNIST-False', 'events.*'))
    tags = set()
    for path in events:
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert {'Real_P', 'Fake_P', 'Gen_loss', 'Dis_loss', 'learning_rate', 'images_per_second',
            'samples'} <= tags


def test_lr_schedule_boundaries():
    spe, lr = 7, 2e-4
    schedule = gan.lr_schedule(lr, spe)
    opt = keras.optimizers.Adam(schedule, beta_1=0.5)
    var = keras.Variable(1.0)
    opt.build([var])
    for epochs, value in [(10, lr), (20, lr / 10), (25, lr / 100)]:
        # the last update of epoch `epochs` (1-based) and the first one after it
        last, first = spe * epochs - 1, spe * epochs
        opt.iterations.assign(last)
        assert float(opt.learning_rate) == pytest.approx(value)
        opt.iterations.assign(first)
        assert float(opt.learning_rate) == pytest.approx(value / 10)
    opt.iterations.assign(0)
    assert float(opt.learning_rate) == pytest.approx(lr)
    assert opt.beta_1 == 0.5


def test_lr_decays_after_epoch_10_of_the_run(tmp_path):
    run = trainer.build(small_config(tmp_path, ImageType='digits', steps_per_epoch=7))
    for epochs, value in [(10, 2e-4), (20, 2e-5), (25, 2e-6)]:
        # the last step of epoch `epochs` (1-based) and the first one after it, for G and D
        run.step.assign(7 * epochs - 1)
        assert [float(opt.learning_rate) for opt in (run.G_opt, run.D_opt)] == \
            pytest.approx([value] * 2)
        run.step.assign(7 * epochs)
        assert [float(opt.learning_rate) for opt in (run.G_opt, run.D_opt)] == \
            pytest.approx([value / 10] * 2)


def test_digits_need_no_download(digits_run):
    folder, run = digits_run
    assert run.config.save_name == 'digits-False' and run.n_images == 1797
    table = csv_log.read_loss_csv(os.path.join(folder, 'logs', 'digits-False-loss.csv'))
    assert list(table['epoch']) == [0] and 0 < table['Real_P'][0] < 1
    with Image.open(os.path.join(folder, 'plot', 'digits-False', '001.png')) as img:
        assert img.mode == 'L' and img.size == (276, 276)
        grid = np.asarray(img)[::2, ::2]  # each pixel enlarged 2x to be seen
    # 16 generated samples between the 2-pixel white gaps: none blank, no two alike
    tiles = [grid[2 + r * 34:34 + r * 34, 2 + c * 34:34 + c * 34] for r in range(4)
             for c in range(4)]
    assert all(tile.std() > 1 for tile in tiles)
    assert len({tile.tobytes() for tile in tiles}) == 16
    assert os.path.exists(os.path.join(folder, 'models', 'digits-False', 'generator.keras'))


def test_celeba_bbox_run_on_all_partitions(records, tmp_path):
    # 36 images at batch 8: 5 steps, the last one partial; no retrace for it
    run = train_in_process(tmp_path, ImageType='img_celeba', bbox=True, TFRecordPath=records,
                           Partition='all', steps_per_epoch=0, epochs=1, seed=1)
    assert (run.n_images, run.steps_per_epoch) == (36, 5)
    assert run.train_step.experimental_get_tracing_count() == 1
    with Image.open(tmp_path / 'plot' / 'img_celeba-True' / '001.png') as img:
        assert img.mode == 'RGB' and img.size == (276, 276)
    assert (tmp_path / 'logs' / 'img_celeba-True-loss.csv').read_text().count('\n') == 2
    assert (tmp_path / 'models' / 'img_celeba-True' / 'Generator.weights.h5').exists()


def test_aligned_png_run_reports_bbox_false(records, tmp_path):
    train_in_process(tmp_path, ImageType='img_align_celeba_png', bbox=True, TFRecordPath=records,
                     Partition='val', epochs=1)
    assert (tmp_path / 'plot' / 'img_align_celeba_png-False' / '001.png').exists()


def bad_config(tmp_path, match, **changes):
    """Training with changes stops with a UsageError matching match, before any step."""
    with pytest.raises(UsageError, match=match):
        train_in_process(tmp_path, epochs=1, **changes)


def test_missing_tfrecord_path(tmp_path):
    bad_config(tmp_path, '--TFRecordPath nowhere does not exist: convert your images into it',
               ImageType='img_align_celeba', TFRecordPath='nowhere')


def test_tfrecord_path_without_records(tmp_path):
    bad_config(tmp_path, r'holds no records for partition test.*convert_tfrecord.py',
               ImageType='img_align_celeba', TFRecordPath=str(tmp_path), Partition='test')


def test_image_type_not_in_records(celeba_root, tmp_path):
    import convert_tfrecord
    out = str(tmp_path / 'rec')
    convert_tfrecord.convert(celeba_root[0], out, 'train', image_types=['img_align_celeba'],
                             progress=False)
    bad_config(tmp_path, r'do not hold img_celeba \(they hold: img_align_celeba\)',
               ImageType='img_celeba', TFRecordPath=out, Partition='train')


def test_damaged_record_stops_with_verify_hint(records, tmp_path):
    import shutil
    out = str(tmp_path / 'rec')
    shutil.copytree(records, out)
    shard = sorted(glob.glob(os.path.join(out, 'CelebA_val.tfrecord-*')))[2]
    data = bytearray(open(shard, 'rb').read())
    data[len(data) // 2] ^= 0xFF
    open(shard, 'wb').write(bytes(data))
    bad_config(tmp_path, 'cannot read a training image from {}.*convert_tfrecord.py '
               '--verify'.format(re.escape(out)), ImageType='img_align_celeba', TFRecordPath=out,
               Partition='val', steps_per_epoch=0)


def test_missing_and_malformed_mnist(tmp_path):
    bad_config(tmp_path, '--mnist_path missing.npz does not exist', ImageType='MNIST',
               mnist_path='missing.npz')
    np.savez(tmp_path / 'other.npz', x=np.zeros(3))
    bad_config(tmp_path, 'other.npz is not in the mnist.npz layout', ImageType='MNIST',
               mnist_path=str(tmp_path / 'other.npz'))


def test_unsupported_size_or_width(tmp_path):
    bad_config(tmp_path, 'DisInSize must be one of 32, 64, 128, got 48', ImageType='digits',
               DisInSize=48)
    bad_config(tmp_path, '--filters must be a multiple of 8 at DisInSize 64 .*got 100',
               ImageType='digits', DisInSize=64, filters=100)


def test_unwritable_output_folder(tmp_path):
    (tmp_path / 'afile').write_text('x')
    bad_config(tmp_path, 'cannot write to .*afile/logs', ImageType='digits',
               LOG_PATH=str(tmp_path / 'afile' / 'logs'))


def test_cache_with_a_short_epoch_is_refused(tmp_path):
    bad_config(tmp_path, '--cache needs whole epochs: with --steps_per_epoch=3 of 225 batches',
               ImageType='digits', cache=True)


def test_no_flags_says_what_to_do(tmp_path):
    # main.py with no flags at all: the original's CelebA with nothing converted
    config = config_lib.TrainConfig(LOG_PATH=str(tmp_path / 'logs'), MODEL_PATH=str(tmp_path / 'models'),
                            PLOT_PATH=str(tmp_path / 'plot'))
    with pytest.raises(UsageError) as error:
        trainer.train(config)
    assert 'no records given: convert CelebA or a folder of pictures first' in str(error.value)
    assert '--ImageType=digits' in str(error.value)


def test_mnist_download_failure_points_to_mnist_path_and_digits(tmp_path, monkeypatch):
    def offline():
        raise OSError('[Errno 101] Network is unreachable')

    monkeypatch.setattr(keras.datasets.mnist, 'load_data', offline)
    with pytest.raises(UsageError) as error:
        train_in_process(tmp_path, ImageType='MNIST', epochs=1)
    line = str(error.value)
    assert 'could not download MNIST' in line and '--mnist_path=/path/to/mnist.npz' in line
    assert 'try --ImageType=digits, which needs no download' in line


# ----------------------------------------------------------------------------- as a process

@pytest.mark.slow
def test_helpshort_lists_flags():
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'), '--helpshort'],
                            capture_output=True, text=True, env=script_env(), timeout=120)
    # absl ends every help request with status 1 before main() runs: no data, no models
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr
    assert '--DisInSize' in result.stdout and '--mixed_precision' in result.stdout
    assert 'digits' in result.stdout


@pytest.mark.slow
def test_every_config_field_is_a_flag_with_the_same_default_and_paths_expand():
    # one process for both: main.py's flags make config.TrainConfig's defaults, and path flags
    # expand ~ and $VARS
    code = ('import dataclasses, main, config; from absl import flags; flags.FLAGS(["main.py"]); '
            'names = {f.name for f in dataclasses.fields(config.TrainConfig)}; '
            'defined = {f.name for f in flags.FLAGS.get_flags_for_module("main")}; '
            'print(sorted(names ^ defined), '
            'config.from_flags(config.TrainConfig) == config.TrainConfig()); '
            'flags.FLAGS.unparse_flags(); '
            'flags.FLAGS(["main.py", "--LOG_PATH=~/logs", "--mnist_path=$DCGAN_DATA/m.npz"]); '
            'c = config.from_flags(config.TrainConfig); print(c.LOG_PATH, c.mnist_path)')
    env = dict(script_env(), HOME='/home/someone', DCGAN_DATA='/data/digits')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=120)
    assert result.stdout.strip().splitlines()[-2:] == [
        '[] True', '/home/someone/logs /data/digits/m.npz'], result.stderr
