"""MNIST and CelebA input pipelines: shapes, ranges, bbox crops, partitions, bad input."""

import numpy as np
import pytest
import tensorflow as tf

import dataset
from errors import UsageError
from tools import synthetic


def test_load_mnist_shape_and_range(mnist_npz):
    ds = dataset.load_mnist(mnist_npz, 64)
    images = np.stack(list(ds.as_numpy_iterator()))
    assert images.shape == (64, 64, 64, 1) and images.dtype == np.float32
    assert int(ds.cardinality()) == 64  # main.py counts batches per epoch from it
    assert images.min() == -1.0 and images.max() <= 1.0
    # resize_with_pad keeps the 28x28 content centred: the padding border stays at -1
    assert np.all(images[:, :2] == -1.0)


def test_mnist_missing_file(tmp_path):
    with pytest.raises(UsageError, match='does not exist.*mnist.npz'):
        dataset.load_mnist(str(tmp_path / 'nope.npz'), 32)


def test_mnist_wrong_layout(tmp_path):
    path = str(tmp_path / 'bad.npz')
    np.savez(path, images=np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(UsageError, match='not in the mnist.npz layout: it lacks x_test, x_train'):
        dataset.load_mnist(path, 32)
    junk = tmp_path / 'junk.npz'
    junk.write_bytes(b'not a zip file')
    with pytest.raises(UsageError, match='not a readable .npz'):
        dataset.load_mnist(str(junk), 32)


def images_of(records, partition, image_type, bbox=False, size=32):
    return np.stack(list(dataset.load_celeba(records, partition, image_type, bbox, size)
                         .as_numpy_iterator()))


def test_partition_counts_and_all_is_their_sum(records):
    counts = {p: len(images_of(records, p, 'img_align_celeba')) for p in dataset.PARTITIONS}
    assert counts == {'train': 22, 'val': 7, 'test': 7}
    assert len(images_of(records, 'all', 'img_align_celeba')) == 36
    assert dataset.celeba_size(records, 'all') == 36


@pytest.mark.parametrize('image_type', ['img_celeba', 'img_align_celeba', 'img_align_celeba_png'])
def test_celeba_shapes_and_range(records, image_type):
    images = images_of(records, 'val', image_type, size=64)
    assert images.shape == (7, 64, 64, 3) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.std() > 0.05


def test_png_and_jpeg_give_the_same_faces(records):
    jpeg = images_of(records, 'test', 'img_align_celeba')
    png = images_of(records, 'test', 'img_align_celeba_png')
    assert np.abs(jpeg - png).mean() < 0.05


def test_bbox_crop_is_exactly_the_box(records):
    # every in-the-wild image has a pure red rectangle exactly at its bounding box
    faces = images_of(records, 'train', 'img_celeba', bbox=True, size=32)
    red = np.array([1.0, -1.0, -1.0])
    assert np.abs(faces - red).max() < 0.04
    # without the crop the background shows
    whole = images_of(records, 'train', 'img_celeba', bbox=False, size=32)
    assert np.abs(whole - red).max() > 0.5


def test_decode_celeba_crop_matches_pixels_inside_box():
    rng = np.random.default_rng(5)
    picture = synthetic.smooth_image(rng, 96, 80)
    encoded = synthetic.encode(picture, 'JPEG', quality=100)
    x, y, side = 24, 16, 32
    full = tf.io.decode_jpeg(encoded).numpy().astype(np.float32)
    want = (full[y:y + side, x:x + side] - 127.5) / 127.5
    got = dataset.decode_celeba(tf.constant(encoded), tf.constant([x, y, side, side], tf.float32),
                                'img_celeba', True, side).numpy()
    np.testing.assert_allclose(got, want, atol=1.01 / 127.5)


def test_missing_records_folder(tmp_path):
    with pytest.raises(UsageError, match='does not exist: convert your images into it first'):
        dataset.load_celeba(str(tmp_path / 'none'), 'train', 'img_align_celeba', False, 32)
    with pytest.raises(UsageError, match='holds no records for partition val'):
        dataset.load_celeba(str(tmp_path), 'val', 'img_align_celeba', False, 32)


def test_damaged_record_file(tmp_path):
    (tmp_path / 'CelebA_train.tfrecord').write_bytes(b'\x00' * 64)
    with pytest.raises(UsageError, match='CelebA_train.tfrecord is not a readable TFRecord'):
        dataset.load_celeba(str(tmp_path), 'train', 'img_align_celeba', False, 32)


def test_make_batches_is_seeded_and_skips(mnist_npz):
    images = dataset.load_mnist(mnist_npz, 32)
    a = [b for b in dataset.make_batches(images, 8, 100, 7, False).as_numpy_iterator()]
    b = [b for b in dataset.make_batches(images, 8, 100, 7, False).as_numpy_iterator()]
    c = [b for b in dataset.make_batches(images, 8, 100, 7, False, skip_batches=3)
         .as_numpy_iterator()]
    assert len(a) == 8 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(np.array_equal(x, y) for x, y in zip(a[3:], c)) and len(c) == 5
    other = next(dataset.make_batches(images, 8, 100, 8, False).as_numpy_iterator())
    assert not np.array_equal(a[0], other)
