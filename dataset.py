"""Input pipelines (MNIST, scikit-learn's digits, CIFAR-10, and records of CelebA or of any folder of
pictures): unbatched float32 images in [-1, 1]."""
import dataclasses
import json
import os
from typing import ClassVar

import numpy as np
import tensorflow as tf
from absl import logging

from arrays import read_cifar10, read_digits, read_mnist_npz
import conditions
import errors
from errors import UsageError
import files
import records
from records import (CELEBA_TYPES, FOLDER, MANIFEST, PARTITIONS, PLACEHOLDER_RECORDS,
                     RECORD_TYPES, record_pattern)
import utils

AUTOTUNE = tf.data.AUTOTUNE
# the README's quick start: real digits, no download, a few minutes on a laptop's CPU
QUICK_START = ('main.py', '--ImageType=digits', '--DisInSize=32', '--filters=256',
               '--BATCH_SIZE=32', '--epochs=30', '--arch=dcgan', '--lr_decay_epochs=',
               '--ema=0.999', '--lr=4e-4', '--lr_D=2e-4', '--r1=0.01', '--steps_per_loop=4')


def crops_bbox(image_type, bbox):
    """Whether images are cropped by their bounding box: only img_celeba's, and only with --bbox."""
    return bool(bbox) and image_type == 'img_celeba'


# ----------------------------------------------------------------------------- MNIST

def on_images(fn):
    """fn applied to the image of a dataset element, which is an image or (image, condition)."""
    return lambda x, *condition: (fn(x),) + condition if condition else fn(x)


def with_conditions(images, vectors):
    """Unbatched images, each with its condition vector (float32 [C]) when vectors are given."""
    if vectors is None:
        return images
    return tf.data.Dataset.zip(images, tf.data.Dataset.from_tensor_slices(vectors))


def digits_like_mnist(train_x, size):
    """uint8 digits [N, 28, 28] brought to [size, size, 1] as the seed does (resize_with_pad), in [-1, 1]."""
    train_images = train_x.reshape(train_x.shape[0], train_x.shape[1], train_x.shape[2], 1)
    train_images = (train_images.astype('float32') - 127.5) / 127.5
    # resize a thousand digits per op (vectorised), then hand them out one by one
    ds = tf.data.Dataset.from_tensor_slices(train_images).batch(1000)
    ds = ds.map(lambda x: tf.image.resize_with_pad(x, size, size), num_parallel_calls=AUTOTUNE)
    return ds.unbatch().apply(tf.data.experimental.assert_cardinality(len(train_images)))


def load_mnist(path, size):
    """MNIST training digits brought to [size, size, 1] as the seed does (resize_with_pad), in [-1, 1]."""
    return digits_like_mnist(read_mnist_npz(path), size)


def load_digits(size):
    """scikit-learn's real digits brought to [size, size, 1] the way MNIST is, in [-1, 1]; no download."""
    return digits_like_mnist(read_digits(), size)


# ----------------------------------------------------------------------------- CIFAR-10

def load_cifar10(path, size):
    """CIFAR-10's training images at [size, size, 3] in [-1, 1]: area-shrunk or bilinear-enlarged."""
    return cifar_like(read_cifar10(path or None), size)


def cifar_like(train_x, size):
    """uint8 images [N, 32, 32, 3] at [size, size, 3] in [-1, 1], as load_cifar10 gives them."""
    ds = to_unit_range(tf.data.Dataset.from_tensor_slices(train_x).batch(1000))
    if size != 32:
        ds = ds.map(lambda x: tf.clip_by_value(tf.image.resize(
            x, [size, size], method='area' if size < 32 else 'bilinear'), -1.0, 1.0),
            num_parallel_calls=AUTOTUNE)
    return ds.unbatch().apply(tf.data.experimental.assert_cardinality(len(train_x)))


# ----------------------------------------------------------------------------- CelebA

PICTURE_TYPES = ('.jpg', '.jpeg', '.png', '.webp', '.bmp', '.gif', '.tif', '.tiff')


def count_pictures(folder, limit=100000):
    """How many files under folder (the first limit looked at) are named like pictures."""
    count, seen = 0, 0
    for _, _, names in files.walk(folder):
        for name in names:
            seen += 1
            count += name.lower().endswith(PICTURE_TYPES)
        if seen >= limit:
            break
    return count


def partition_files(tfrecord_dir, partition):
    """Record files of one partition: shards CelebA_{p}.tfrecord-*-of-* or one CelebA_{p}.tfrecord."""
    convert = utils.command('convert_tfrecord.py')
    if not files.isdir(tfrecord_dir):
        raise UsageError('--TFRecordPath {} does not exist: convert your images into it first: {} '
                         '--DatasetPath=<the CelebA folder, or a folder of pictures> '
                         '--TFRecordPath={}'.format(tfrecord_dir, convert, tfrecord_dir))
    parts = PARTITIONS if partition == 'all' else (partition,)
    found = []
    for part in parts:
        shards = files.glob(record_pattern(tfrecord_dir, part))
        if shards:
            found += shards
            continue
        pictures = count_pictures(tfrecord_dir)
        if pictures:
            name = os.path.basename(os.path.normpath(tfrecord_dir))
            raise UsageError('{} holds {} pictures, not records: convert them first with {} '
                             '--DatasetPath={} --TFRecordPath=records/{}, then train with '
                             '--ImageType=folder --TFRecordPath=records/{}'.format(
                                 tfrecord_dir, pictures, convert, tfrecord_dir, name, name))
        raise UsageError('{} holds no records for partition {} (CelebA_{}.tfrecord*): convert '
                         'into it with {} --DatasetPath=<the CelebA folder> --Partition={} '
                         '--TFRecordPath={}'.format(tfrecord_dir, part, part, convert,
                                                    part if partition != 'all' else 'all',
                                                    tfrecord_dir))
    return found


def read_manifest(tfrecord_dir):
    """The converter's manifest.json as a dict, or None when there is none."""
    path = os.path.join(tfrecord_dir, MANIFEST)
    if not files.isfile(path):
        return None
    try:
        with files.open_file(path) as f:
            manifest = json.load(f)
    except ValueError as e:
        raise UsageError('{} is not valid JSON ({}): reconvert with python convert_tfrecord.py '
                         '--overwrite.'.format(path, e))
    if not isinstance(manifest, dict) or not isinstance(manifest.get('partitions', {}), dict):
        raise UsageError('{} is not a manifest of convert_tfrecord.py (it holds a JSON {}): '
                         'reconvert with python convert_tfrecord.py --overwrite.'.format(
                             path, type(manifest).__name__))
    return manifest


def check_shards(tfrecord_dir, partitions):
    """UsageError naming the first shard of partitions that is missing or not as the converter
    wrote it (a zero-byte or cut shard gave TensorFlow's OutOfRangeError mid-epoch)."""
    manifest = read_manifest(tfrecord_dir) or {}
    for part in partitions:
        entry = manifest.get('partitions', {}).get(part, {})
        for name, shard in sorted(entry.get('shards', {}).items()):
            problem = records.shard_problem(os.path.join(tfrecord_dir, name), shard)
            if problem:
                raise UsageError('{} is {} ({} records): run the conversion that made it again, {} '
                                 '--DatasetPath={} --TFRecordPath={} (with its other flags); it '
                                 'rewrites only such shards.'.format(
                                     os.path.join(tfrecord_dir, name), problem, shard['records'],
                                     utils.command('convert_tfrecord.py'),
                                     entry['settings']['source'], tfrecord_dir))


def first_example(files):
    """Parse the first record of the first non-empty file as a tf.train.Example."""
    for path in files:
        try:
            for raw in tf.data.TFRecordDataset(path).take(1):
                return tf.train.Example.FromString(raw.numpy())
        except (tf.errors.DataLossError, tf.errors.OpError) as e:
            raise UsageError('{} is not a readable TFRecord file ({}): run python '
                             'convert_tfrecord.py --verify --TFRecordPath={} and reconvert '
                             'with --overwrite.'.format(path, e.message.splitlines()[0],
                                                        os.path.dirname(path)))
    raise UsageError('the record files {} hold no records: reconvert with python '
                     'convert_tfrecord.py --overwrite.'.format(', '.join(files)))


def count_records(files):
    """Number of records in the files (reads them; prefer the manifest's counts)."""
    ds = tf.data.TFRecordDataset(files, num_parallel_reads=AUTOTUNE)
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1))


def celeba_size(tfrecord_dir, partition):
    """Number of images in a partition ('all' sums them), from the manifest or by counting."""
    manifest = read_manifest(tfrecord_dir)
    parts = PARTITIONS if partition == 'all' else (partition,)
    if manifest and all(p in manifest.get('partitions', {}) for p in parts):
        return sum(manifest['partitions'][p]['records'] for p in parts)
    return count_records(partition_files(tfrecord_dir, partition))


def decode_celeba(encoded, bbox, image_type, crop_bbox, size):
    """Decode one CelebA image (bbox-cropped or centre-cropped square) to [size, size, 3] in [-1, 1]."""
    return tf.clip_by_value((crop_and_resize(encoded, bbox, image_type, crop_bbox, size) - 127.5)
                            / 127.5, -1.0, 1.0)


def crop_and_resize(encoded, bbox, image_type, crop_bbox, size):
    """Decode one image, crop it (its bbox, or the centre square) and resize it: float [size, size,
    3] in [0, 255]. The converter's --image_size stores exactly this, rounded to uint8."""
    if crop_bbox:
        # decode only the face box: x, y, w, h -> crop window y, x, h, w
        box = tf.cast(bbox, tf.int32)
        image = tf.io.decode_and_crop_jpeg(encoded, tf.stack([box[1], box[0], box[3], box[2]]),
                                           channels=3)
    else:
        if image_type == 'img_align_celeba_png':
            image = tf.io.decode_png(encoded, channels=3)
        elif image_type == FOLDER:  # JPEG or PNG
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        else:
            image = tf.io.decode_jpeg(encoded, channels=3)
        shape = tf.shape(image)
        side = tf.minimum(shape[0], shape[1])
        image = tf.image.crop_to_bounding_box(image, (shape[0] - side) // 2,
                                              (shape[1] - side) // 2, side, side)
    # area averaging when shrinking (anti-aliased, 6x cheaper than antialias=True), bilinear otherwise
    shrink = tf.minimum(tf.shape(image)[0], tf.shape(image)[1]) > size
    return tf.cond(shrink, lambda: tf.image.resize(image, [size, size], method='area'),
                   lambda: tf.image.resize(image, [size, size]))


def to_unit_range(images):
    """uint8 images (with their conditions, if any) -> float32 in [-1, 1], as the decoders give
    them."""
    return images.map(on_images(lambda x: (tf.cast(x, tf.float32) - 127.5) / 127.5),
                      num_parallel_calls=AUTOTUNE, deterministic=True)


def load_folder(tfrecord_dir, size, uint8=False):
    """The pictures of a converted folder (convert_tfrecord.py --layout=folder), centre-cropped to
    a square and resized to [size, size, 3] in [-1, 1] (uint8 from preresized records, if asked)."""
    return load_celeba(tfrecord_dir, 'train', FOLDER, False, size, uint8=uint8)


def load_celeba(tfrecord_dir, partition, image_type, bbox, size, files=None, uint8=False,
                labels=None):
    """CelebA images of one partition ('all' = train+val+test) as [size, size, 3] in [-1, 1].

    Records converted with --image_size equal to size give their stored images without decoding;
    with uint8=True those come as uint8 (for caching before to_unit_range), others as float32.
    labels: a function from a batch of serialised records to their condition vectors; each
    image then comes with its own.
    """
    if image_type not in RECORD_TYPES:
        raise UsageError('unknown CelebA image type {}; use one of {}'.format(
            image_type, ', '.join(CELEBA_TYPES)))
    files = files if files is not None else partition_files(tfrecord_dir, partition)
    keys = first_example(files).features.feature
    crop_bbox = crops_bbox(image_type, bbox)
    raw_key = records.preresized_key(image_type, crop_bbox, size)
    if raw_key in keys:
        logging.info('Using the %dx%d images stored in the records of %s (no decoding)', size,
                     size, tfrecord_dir)
        # vectorised: a batch of records parsed and decoded at once
        images = read_records(files, labels).batch(256).map(
            on_images(lambda batch: records.parse_preresized(batch, raw_key, size)),
            num_parallel_calls=AUTOTUNE, deterministic=True).unbatch()
        return images if uint8 else to_unit_range(images)
    stored = records.preresized_kinds(keys, image_type)
    if stored and records.encoded_key(image_type) not in keys:
        raise UsageError('the records in {} hold {} images preresized as {}, not the {} {} px ones '
                         'asked for: train with the --DisInSize (and --bbox) they were made for, or '
                         'reconvert with --image_size={}{}.'.format(
                             tfrecord_dir, image_type, ', '.join(stored),
                             'bbox crops at' if crop_bbox else 'centre squares at', size, size,
                             '' if image_type != 'img_celeba' else
                             ' --bbox' if crop_bbox else ' --nobbox'))
    if records.encoded_key(image_type) not in keys:
        present = sorted(t for t in RECORD_TYPES if records.encoded_key(t) in keys)
        raise UsageError('the records in {} do not hold {} (they hold: {}): train with '
                         '--ImageType={} or reconvert with --ImageTypes={}'.format(
                             tfrecord_dir, image_type, ', '.join(present) or 'no images',
                             present[0] if present else image_type, image_type))
    if crop_bbox and records.BBOX_KEY not in keys:
        raise UsageError('the records in {} have no bounding boxes (list_bbox_celeba was not '
                         'converted): train with --nobbox or reconvert with the bbox file '
                         'present.'.format(tfrecord_dir))

    def parse(raw):
        encoded, box = records.parse_image(raw, image_type, crop_bbox)
        return decode_celeba(encoded, box, image_type, crop_bbox, size)

    return read_records(files, labels).map(on_images(parse), num_parallel_calls=AUTOTUNE,
                                           deterministic=True)


def read_records(files, labels=None):
    """The serialised records of files, read in parallel and in a fixed order; with labels (a
    function of a batch of records), each record with its condition vector."""
    if len(files) == 1:
        raw = tf.data.TFRecordDataset(files[0], buffer_size=8 << 20)
    else:
        raw = tf.data.Dataset.from_tensor_slices(files).interleave(
            lambda f: tf.data.TFRecordDataset(f, buffer_size=8 << 20),
            cycle_length=min(len(files), 16), block_length=1,
            num_parallel_calls=AUTOTUNE, deterministic=True)
    if labels is None:
        return raw
    return raw.batch(256).map(lambda batch: (batch, labels(batch)), num_parallel_calls=AUTOTUNE,
                              deterministic=True).unbatch()


def file_identity(path):
    """A file's absolute path, size, inode and modification and change times: changes when the
    file does, also when a copy that kept the old time and size replaces it (cp -p, rsync -a:
    a new inode and change time, which no tool sets back)."""
    if files.is_remote(path):  # a store keeps a size and a time, no inode
        return '{} {} {}'.format(path, files.getsize(path), files.getmtime(path))
    stat = os.stat(path)
    return '{} {} {} {} {}'.format(os.path.abspath(path), stat.st_size, stat.st_ino,
                                   stat.st_mtime_ns, stat.st_ctime_ns)


@dataclasses.dataclass(frozen=True)
class DataSource:
    """One source of real images and how they are cut: what training reads, evaluate.py compares
    with, and the statistics cache is keyed by. One subclass per kind of data (SOURCES)."""
    image_type: str
    size: int
    partition: str = 'all'
    bbox: bool = True
    tfrecord_dir: str = PLACEHOLDER_RECORDS
    array_path: str = ''  # MNIST's or CIFAR-10's file; empty = Keras' download
    channels: ClassVar[int] = 3

    @property
    def crop_bbox(self):
        """Whether images are cropped by their bounding box (only img_celeba's, with --bbox)."""
        return False

    @property
    def name(self):
        """The seed's SaveName, e.g. MNIST-False or img_celeba-True."""
        return '{}-{}'.format(self.image_type, self.crop_bbox)

    def load(self, uint8=False, condition=None):
        """The unbatched images and how many there are; with uint8, records preresized for
        this size come as uint8 (to cache them before to_unit_range); with a
        conditions.Condition, each image comes with its condition vector: (image, float32 [C])."""
        raise NotImplementedError

    def condition(self, attributes=''):
        """The conditions.Condition of --conditional on this data (--attributes: a comma list,
        for CelebA); UsageError where the data has no labels."""
        if attributes:
            raise UsageError('--attributes={} is for CelebA\'s image types; --ImageType={} is '
                             'conditioned on its classes: drop --attributes.'.format(
                                 attributes, self.image_type))
        return conditions.Condition(conditions.CLASS, self.class_names())

    def class_names(self):
        """The names of this data's classes."""
        raise NotImplementedError

    def read_error(self, error):
        """The UsageError for a training image that cannot be read (a damaged record), or for
        records that ran out before the count of their manifest (OutOfRangeError)."""
        problem = ('its records ran out before the count of its manifest: a record file is '
                   'shorter than when it was converted' if isinstance(error, tf.errors.OutOfRangeError)
                   else errors.short_text(error, 200))
        where = self.array_path or self.tfrecord_dir
        return UsageError('cannot read a training image from {} ({}): run {} --verify '
                          '--TFRecordPath={} and reconvert what it reports.'.format(
                              where, problem, utils.command('convert_tfrecord.py'), where))

    def identity(self):
        """A string naming the images and when their files were made: it changes when they do."""
        return '{}; bbox {}; {} px'.format(self.data_identity(), self.crop_bbox, self.size)

    def stats_dir(self, override=''):
        """Where reference statistics are cached: override, or fid_stats/ beside the records or
        the npz, else ./fid_stats."""
        raise NotImplementedError


class ArraySource(DataSource):
    """Images held whole in memory (MNIST, digits, CIFAR-10)."""

    def load(self, uint8=False, condition=None):
        if condition is None:
            images = self.images(self.read())
            return images, int(images.cardinality())
        train_x, labels = self.read(labels=True)  # one read of the file for both
        images = self.images(train_x)
        return with_conditions(images, condition.vectors(labels)), int(images.cardinality())

    def read(self, labels=False):
        """The uint8 training images as arrays.py reads them (with labels: and their classes,
        int64 [N])."""
        raise NotImplementedError

    def images(self, train_x):
        """The unbatched float32 images in [-1, 1] of the uint8 ones read."""
        raise NotImplementedError

    def labels(self):
        """The class of each image, int64 [N]."""
        return self.read(labels=True)[1]

    def class_names(self):
        return conditions.class_names(self.image_type, int(self.labels().max()) + 1)

    def data_identity(self):
        return '{} {}'.format(self.image_type, file_identity(self.array_path)
                              if self.array_path else 'Keras download')

    def stats_dir(self, override=''):
        if override:
            return override
        return os.path.join(os.path.dirname(os.path.abspath(self.array_path)), 'fid_stats') \
            if self.array_path else 'fid_stats'


class Mnist(ArraySource):
    channels = 1

    def read(self, labels=False):
        return read_mnist_npz(self.array_path or None, labels)

    def images(self, train_x):
        return digits_like_mnist(train_x, self.size)


class Digits(ArraySource):
    channels = 1

    def read(self, labels=False):
        return read_digits(labels)

    def images(self, train_x):
        return digits_like_mnist(train_x, self.size)

    def data_identity(self):
        import sklearn
        return 'scikit-learn {} digits'.format(sklearn.__version__)


class Cifar10(ArraySource):
    def read(self, labels=False):
        return read_cifar10(self.array_path or None, labels)

    def images(self, train_x):
        return cifar_like(train_x, self.size)


class RecordSource(DataSource):
    """Records written by convert_tfrecord.py: CelebA's image types, or any folder of pictures."""

    @property
    def read_partition(self):
        """The partition read ('all' = train, val and test)."""
        return self.partition

    def record_files(self):
        """The record files this source reads."""
        return partition_files(self.tfrecord_dir, self.read_partition)

    def load(self, uint8=False, condition=None):
        if self.tfrecord_dir == PLACEHOLDER_RECORDS and not files.isdir(PLACEHOLDER_RECORDS):
            raise UsageError('no records given: convert CelebA or a folder of pictures first ({} '
                             '--DatasetPath=... --TFRecordPath=records/NAME) and pass '
                             '--TFRecordPath=records/NAME, or start with the quick start, which '
                             'needs no download: {}'.format(utils.command('convert_tfrecord.py'),
                                                            utils.command(*QUICK_START)))
        partition = self.read_partition
        logging.info('Reading %s %s records from %s', self.image_type, partition,
                     self.tfrecord_dir)
        shards = self.record_files()
        check_shards(self.tfrecord_dir, PARTITIONS if partition == 'all' else (partition,))
        labels = None if condition is None else self.label_reader(condition, shards)
        images = load_celeba(self.tfrecord_dir, partition, self.image_type, self.bbox, self.size,
                             files=shards, uint8=uint8, labels=labels)
        return images, celeba_size(self.tfrecord_dir, partition)

    def label_reader(self, condition, files):
        """The function from a batch of serialised records to their condition vectors."""
        raise NotImplementedError

    def data_identity(self):
        return '{} {} {}'.format(self.image_type, self.partition,
                                 ', '.join(map(file_identity, self.record_files())))

    def stats_dir(self, override=''):
        return override or os.path.join(self.tfrecord_dir, 'fid_stats')


class Celeba(RecordSource):
    @property
    def crop_bbox(self):
        return crops_bbox(self.image_type, self.bbox)

    def condition(self, attributes=''):
        if not attributes:
            raise UsageError('--conditional on CelebA needs the attributes to draw: add e.g. '
                             '--attributes=Male,Smiling,Eyeglasses (any of {}).'.format(
                                 ', '.join(records.CELEBA_ATTRIBUTES)))
        return conditions.attribute_condition(
            [a.strip() for a in attributes.split(',') if a.strip()], records.CELEBA_ATTRIBUTES)

    def label_reader(self, condition, files):
        key = records.ANNOTATIONS['attr'][0]
        if key not in first_example(files).features.feature:
            raise UsageError('the records in {} hold no attributes (list_attr_celeba.txt was not '
                             'converted): reconvert with it present to train with '
                             '--conditional.'.format(self.tfrecord_dir))
        indices = [records.CELEBA_ATTRIBUTES.index(name) for name in condition.names]
        return lambda batch: tf.gather(records.parse_labels(batch, key, records.NUM_ATTRS),
                                       indices, axis=1)


class Folder(RecordSource):
    """A converted folder of pictures: all in its train partition, named after its folder."""

    @property
    def read_partition(self):
        return 'train'

    @property
    def name(self):
        """records/my_images -> my_images-False."""
        return '{}-False'.format(os.path.basename(os.path.normpath(self.tfrecord_dir)))

    def folder_labels(self):
        """{subfolder name: label} of the converted folder's manifest."""
        settings = ((read_manifest(self.tfrecord_dir) or {}).get('partitions', {})
                    .get('train', {}).get('settings', {}))
        return settings.get('labels') or {}

    def class_names(self):
        labels = self.folder_labels()
        if len(labels) < 2:
            found = 'all in {}'.format(list(labels)[0] or 'the top folder') if labels \
                else 'no labels stored'
            raise UsageError('{} has no classes to condition on ({}): its pictures were not in '
                             'subfolders, one per class, when it was converted. Put each class in '
                             'its own subfolder, convert again with {} --DatasetPath=... '
                             '--TFRecordPath={} --overwrite, or train without --conditional.'
                             .format(self.tfrecord_dir, found, utils.command('convert_tfrecord.py'),
                                     self.tfrecord_dir))
        return conditions.class_names(self.image_type, len(labels), labels)

    def label_reader(self, condition, files):
        key = records.ANNOTATIONS['label'][0]
        return lambda batch: tf.one_hot(records.parse_labels(batch, key, 1), condition.size)

    def load(self, uint8=False, condition=None):
        images, count = super().load(uint8, condition)
        entry = (read_manifest(self.tfrecord_dir) or {}).get('partitions', {}).get('train', {})
        smaller = entry.get('smaller_than', {}).get(str(self.size), 0)
        if smaller:
            logging.warning('%d of the %d images in %s are smaller than %d px: they are upscaled',
                            smaller, entry['records'], self.tfrecord_dir, self.size)
        return images, count


# every --ImageType and the class of its source (records.IMAGE_TYPES names them in this order)
SOURCES = dict({t: Celeba for t in CELEBA_TYPES}, folder=Folder, MNIST=Mnist, digits=Digits,
               cifar10=Cifar10)


def source(image_type, size, **where):
    """The DataSource of an --ImageType at size px; where: partition, bbox, tfrecord_dir,
    array_path."""
    if image_type not in SOURCES:
        raise UsageError('--ImageType={} is not one of {}.'.format(image_type,
                                                                   ', '.join(SOURCES)))
    return SOURCES[image_type](image_type, size, **where)


def channels(image_type):
    """Image channels of an ImageType: 1 for MNIST and digits, 3 for the others."""
    return SOURCES[image_type].channels


def make_batches(images, batch_size, shuffle_buffer, seed, drop_remainder, skip_batches=0):
    """Shuffle (seeded, one order per call), batch, skip already-trained batches and prefetch;
    uint8 images are brought to float32 in [-1, 1] a batch at a time."""
    if shuffle_buffer > 1:
        images = images.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    batches = images.batch(batch_size, drop_remainder=drop_remainder)
    if skip_batches:
        batches = batches.skip(skip_batches)
    if tf.nest.flatten(images.element_spec)[0].dtype == tf.uint8:
        batches = to_unit_range(batches)
    return batches.prefetch(AUTOTUNE)
