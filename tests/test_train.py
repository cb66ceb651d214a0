"""main.py end to end: CSV log, sample grids, weights, learning-rate schedule, bad input."""
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

import model
import utils
from conftest import ROOT, SMALL, error_line, run_script, script_env

ROW = re.compile(r'^ {0,4}\d+,\d+\.\d{6},\d+\.\d{6},\d+\.\d{6},\d+\.\d{6}$')


@pytest.fixture(scope='module')
def mnist_run(mnist_npz, tmp_path_factory):
    """A finished 2-epoch MNIST run at 32x32."""
    cwd = str(tmp_path_factory.mktemp('mnist_run'))
    result = run_script('main.py', SMALL + ['--ImageType=MNIST', '--mnist_path=' + mnist_npz,
                                            '--epochs=2', '--seed=1', '--tensorboard',
                                            '--log_every=2'], cwd)
    assert result.returncode == 0, result.stderr
    return cwd, result


def test_csv_log(mnist_run):
    cwd, _ = mnist_run
    lines = open(os.path.join(cwd, 'logs', 'MNIST-False-loss.csv')).read().splitlines()
    assert lines[0] == 'epoch,Real_P,Fake_P,Gen_loss,Dis_loss'
    assert len(lines) == 3 and all(ROW.match(l) for l in lines[1:]), lines
    table = utils.read_loss_csv(os.path.join(cwd, 'logs', 'MNIST-False-loss.csv'))
    assert list(table['epoch']) == [0, 1]
    assert np.all((table['Real_P'] > 0) & (table['Real_P'] < 1))
    assert np.all((table['Fake_P'] > 0) & (table['Fake_P'] < 1))
    # the seed's losses: D = BCE(1, real) + BCE(0, fake) stays near 2 ln 2 early on
    assert np.all((table['Dis_loss'] > 0.1) & (table['Dis_loss'] < 3))
    assert np.all(table['Gen_loss'] > 0)


def test_sample_grids_and_weights(mnist_run):
    cwd, result = mnist_run
    grids = sorted(glob.glob(os.path.join(cwd, 'plot', 'MNIST-False', '*.png')))
    assert [os.path.basename(g) for g in grids] == ['001.png', '002.png']
    with Image.open(grids[-1]) as img:
        assert img.mode == 'L' and img.size == (4 * 32 + 5 * 2, 4 * 32 + 5 * 2)
        last = np.asarray(img)
    model_dir = os.path.join(cwd, 'models', 'MNIST-False')
    # .weights.h5 files reload into fresh models and give the exported generator's outputs
    G = model.Gen_Net(1, 100, 32)
    G.load_weights(os.path.join(model_dir, 'Generator.weights.h5'))
    D = model.Dis_Net(32, 1)
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
    assert 'train_step was traced 1 time(s)' in result.stderr


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
    schedule = utils.lr_schedule(lr, spe)
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


def test_lr_decays_after_epoch_10_in_a_run(mnist_npz, tmp_path):
    result = run_script('main.py', ['--ImageType=MNIST', '--mnist_path=' + mnist_npz,
                                    '--epochs=11', '--DisInSize=32', '--BATCH_SIZE=4',
                                    '--steps_per_epoch=1', '--notensorboard', '--seed=2'],
                        str(tmp_path))
    assert result.returncode == 0, result.stderr
    lrs = dict(re.findall(r'Epoch (\d+)/11 in .* lr (\S+)', result.stderr))
    assert lrs['10'] == '2.00e-04' and lrs['11'] == '2.00e-05'


def test_celeba_bbox_run_on_all_partitions(records, tmp_path):
    # 36 images at batch 8: 5 steps, the last one partial; no retrace for it
    result = run_script('main.py', ['--ImageType=img_celeba', '--bbox', '--TFRecordPath=' + records,
                                    '--Partition=all', '--DisInSize=32', '--BATCH_SIZE=8',
                                    '--epochs=1', '--notensorboard', '--seed=1'], str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'img_celeba-True: 36 images, 5 steps of 8 per epoch' in result.stderr
    assert 'train_step was traced 1 time(s)' in result.stderr
    with Image.open(tmp_path / 'plot' / 'img_celeba-True' / '001.png') as img:
        assert img.mode == 'RGB' and img.size == (138, 138)
    assert (tmp_path / 'logs' / 'img_celeba-True-loss.csv').read_text().count('\n') == 2
    assert (tmp_path / 'models' / 'img_celeba-True' / 'Generator.weights.h5').exists()


def test_aligned_png_run_reports_bbox_false(records, tmp_path):
    result = run_script('main.py', ['--ImageType=img_align_celeba_png', '--bbox',
                                    '--TFRecordPath=' + records, '--Partition=val', '--epochs=1']
                        + SMALL, str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'plot' / 'img_align_celeba_png-False' / '001.png').exists()


def bad_run(tmp_path, args, env=None):
    return error_line(run_script('main.py', args + SMALL + ['--epochs=1'], str(tmp_path), env=env))


def test_missing_tfrecord_path(tmp_path):
    line = bad_run(tmp_path, ['--ImageType=img_align_celeba', '--TFRecordPath=nowhere'])
    assert '--TFRecordPath nowhere does not exist: convert CelebA first' in line


def test_tfrecord_path_without_records(tmp_path):
    line = bad_run(tmp_path, ['--ImageType=img_align_celeba', '--TFRecordPath=.', '--Partition=test'])
    assert '. holds no records for partition test' in line and 'convert_tfrecord.py' in line


def test_image_type_not_in_records(celeba_root, tmp_path):
    import convert_tfrecord
    out = str(tmp_path / 'rec')
    convert_tfrecord.convert(celeba_root[0], out, 'train', image_types=['img_align_celeba'],
                             progress=False)
    line = bad_run(tmp_path, ['--ImageType=img_celeba', '--TFRecordPath=' + out,
                              '--Partition=train'])
    assert 'do not hold img_celeba (they hold: img_align_celeba)' in line


def test_damaged_record_stops_with_verify_hint(records, tmp_path):
    import shutil
    out = str(tmp_path / 'rec')
    shutil.copytree(records, out)
    shard = sorted(glob.glob(os.path.join(out, 'CelebA_val.tfrecord-*')))[2]
    data = bytearray(open(shard, 'rb').read())
    data[len(data) // 2] ^= 0xFF
    open(shard, 'wb').write(bytes(data))
    line = bad_run(tmp_path, ['--ImageType=img_align_celeba', '--TFRecordPath=' + out,
                              '--Partition=val', '--steps_per_epoch=0'])
    assert 'cannot read a training image from ' + out in line
    assert 'convert_tfrecord.py --verify' in line


def test_missing_and_malformed_mnist(tmp_path):
    line = bad_run(tmp_path, ['--ImageType=MNIST', '--mnist_path=missing.npz'])
    assert '--mnist_path missing.npz does not exist' in line
    np.savez(tmp_path / 'other.npz', x=np.zeros(3))
    line = bad_run(tmp_path, ['--ImageType=MNIST', '--mnist_path=other.npz'])
    assert 'other.npz is not in the mnist.npz layout' in line


def test_mnist_download_failure_points_to_mnist_path(tmp_path):
    env = dict(script_env(), KERAS_HOME=str(tmp_path / 'keras'), HTTPS_PROXY='http://127.0.0.1:9',
               HTTP_PROXY='http://127.0.0.1:9', https_proxy='http://127.0.0.1:9')
    line = bad_run(tmp_path, ['--ImageType=MNIST'], env=env)
    assert 'could not download MNIST' in line and '--mnist_path=/path/to/mnist.npz' in line


def test_unsupported_size(mnist_npz, tmp_path):
    result = run_script('main.py', ['--ImageType=MNIST', '--mnist_path=' + mnist_npz,
                                    '--DisInSize=48'], str(tmp_path))
    assert 'DisInSize must be one of 32, 64, 128, got 48' in error_line(result)


def test_unwritable_output_folder(mnist_npz, tmp_path):
    (tmp_path / 'afile').write_text('x')
    line = bad_run(tmp_path, ['--ImageType=MNIST', '--mnist_path=' + mnist_npz,
                              '--LOG_PATH=afile/logs'])
    assert 'cannot write to afile/logs' in line


def test_help_is_quick_and_lists_flags():
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'), '--helpshort'],
                            capture_output=True, text=True, env=script_env(), timeout=120)
    assert '--DisInSize' in result.stdout and '--mixed_precision' in result.stdout
