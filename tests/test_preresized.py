"""Records that train without decoding: convert_tfrecord.py --image_size and the pipelines on them."""
import os

import numpy as np
import pytest

import convert_tfrecord
import dataset
from errors import UsageError
from helpers import train_in_process

# one worker runs this file's tests, which share expensive runs (pytest.ini: loadgroup)
pytestmark = pytest.mark.xdist_group('preresized')


@pytest.fixture(scope='session')
def preresized(celeba_root, tmp_path_factory):
    """celeba_root converted with --image_size=32: every type, img_celeba by its bbox, no files."""
    out = str(tmp_path_factory.mktemp('preresized'))
    convert_tfrecord.convert(celeba_root[0], out, 'all', shard_mb=0.01, progress=False,
                             image_size=32)
    return out


@pytest.fixture(scope='session')
def centre_squares(celeba_root, tmp_path_factory):
    """celeba_root converted with --image_size=32 --nobbox (the shards of `records`)."""
    out = str(tmp_path_factory.mktemp('centre'))
    convert_tfrecord.convert(celeba_root[0], out, 'all', shard_mb=0.01, progress=False,
                             image_size=32, bbox=False)
    return out


def images(records, image_type, bbox, size=32, partition='all'):
    return np.stack(list(dataset.load_celeba(records, partition, image_type, bbox, size)
                         .as_numpy_iterator()))


@pytest.mark.parametrize('image_type,bbox', [('img_celeba', True), ('img_celeba', False),
                                             ('img_align_celeba', False),
                                             ('img_align_celeba_png', False)])
def test_preresized_images_equal_the_decoded_ones(records, preresized, centre_squares, image_type,
                                                  bbox):
    want = images(records, image_type, bbox)
    got = images(preresized if bbox or image_type != 'img_celeba' else centre_squares, image_type,
                 bbox)
    assert got.shape == want.shape == (36, 32, 32, 3)
    # the same crop and resize, rounded to whole pixel values once
    np.testing.assert_allclose(got, want, atol=0.5 / 127.5 + 1e-6)
    assert np.abs(got - want).mean() < 0.26 / 127.5


def test_preresized_records_hold_no_files_and_verify(preresized):
    example = dataset.first_example(dataset.partition_files(preresized, 'train'))
    keys = set(example.features.feature)
    assert {'image/img_celeba/bbox_raw32', 'image/img_align_celeba/raw32',
            'image/img_align_celeba_png/raw32', 'image/img_celeba/filename'} <= keys
    assert not any(k.endswith('/encoded') for k in keys) and 'image/img_celeba/raw32' not in keys
    # one 32x32x3 image of each type, the annotations: records of about 9 KB
    assert len(example.SerializeToString()) < 3 * 32 * 32 * 3 + 1000
    assert convert_tfrecord.verify(preresized, progress=False) == []


def test_size_and_crop_mismatch_name_both(preresized):
    with pytest.raises(UsageError, match='hold img_celeba images preresized as bbox_raw32, not the '
                       'bbox crops at 64 px .* reconvert with --image_size=64 --bbox'):
        dataset.load_celeba(preresized, 'all', 'img_celeba', True, 64)
    with pytest.raises(UsageError, match='preresized as bbox_raw32, not the centre squares at 32 '
                       'px .* --image_size=32 --nobbox'):
        dataset.load_celeba(preresized, 'all', 'img_celeba', False, 32)


@pytest.mark.slow
def test_cached_and_uncached_training_are_identical(preresized, tmp_path):
    settings = dict(ImageType='img_celeba', bbox=True, TFRecordPath=preresized, Partition='all',
                    steps_per_epoch=0, epochs=2, seed=3, BATCH_SIZE=12)
    plain = train_in_process(tmp_path / 'plain', **settings)
    train_in_process(tmp_path / 'cached', cache=True, **settings)
    assert plain.steps_per_epoch == 3
    csv = [open(os.path.join(tmp_path, k, 'logs', 'img_celeba-True-loss.csv')).read()
           for k in ('plain', 'cached')]
    assert csv[0] == csv[1] and csv[0].count('\n') == 3


def test_folder_preresized(tmp_path):
    from tools import synthetic
    root = str(tmp_path / 'pictures')
    synthetic.write_folder(root)
    out = str(tmp_path / 'rec')
    convert_tfrecord.convert(root, out, 'all', progress=False, image_size=32)
    got = np.stack(list(dataset.load_folder(out, 32).as_numpy_iterator()))
    assert got.shape == (10, 32, 32, 3) and got.min() >= -1 and got.max() <= 1
