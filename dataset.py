"""Input pipelines (MNIST, scikit-learn's digits, CIFAR-10, and records of CelebA or of any folder of
pictures): unbatched float32 images in [-1, 1]."""
import dataclasses
import glob
import io
import json
import os
import pickle
import re
import tarfile

import numpy as np
import tensorflow as tf
from absl import logging

import records
from records import (CELEBA_TYPES, FOLDER, IMAGE_TYPES, MANIFEST, PARTITIONS,
                     PLACEHOLDER_RECORDS, RECORD_TYPES, record_pattern)
import errors
import utils
from errors import UsageError

AUTOTUNE = tf.data.AUTOTUNE
GRAYSCALE_TYPES = ('MNIST', 'digits')
CIFAR_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'
# the README's quick start: real digits, no download, a few minutes on a laptop's CPU
QUICK_START = ('main.py', '--ImageType=digits', '--DisInSize=32', '--filters=256',
               '--BATCH_SIZE=32', '--epochs=30', '--dropout=0', '--lr_decay_epochs=',
               '--ema=0.999', '--lr_D=1e-4', '--steps_per_loop=4')


def channels(image_type):
    """Image channels of an ImageType: 1 for MNIST and digits, 3 for the CelebA types."""
    return 1 if image_type in GRAYSCALE_TYPES else 3


def crops_bbox(image_type, bbox):
    """Whether images are cropped by their bounding box: only img_celeba's, and only with --bbox."""
    return bool(bbox) and image_type == 'img_celeba'


# ----------------------------------------------------------------------------- MNIST

def keras_download(module, name, fix):
    """The training images of keras.datasets.{module}, or one error saying how to do without."""
    import keras
    try:
        (train_x, _), _ = getattr(keras.datasets, module).load_data()
    except Exception as e:  # any network or cache failure
        raise UsageError('could not download {} ({}): {}, or try --ImageType=digits, which needs '
                         'no download.'.format(name, type(e).__name__, fix))
    return train_x


def read_mnist_npz(path):
    """Return the uint8 training digits [N, 28, 28] of an mnist.npz in Keras' layout."""
    if path is None:
        return keras_download('mnist', 'MNIST', 'download mnist.npz elsewhere and pass '
                              '--mnist_path=/path/to/mnist.npz')
    if not os.path.isfile(path):
        raise UsageError('--mnist_path {} does not exist: give the path of a Keras-layout '
                         'mnist.npz, or leave it empty to download MNIST.'.format(path))
    try:
        with np.load(path) as data:
            missing = {'x_train', 'y_train', 'x_test', 'y_test'} - set(data.files)
            if missing:
                raise UsageError('{} is not in the mnist.npz layout: it lacks {}; it needs the '
                                 'arrays x_train, y_train, x_test and y_test.'.format(
                                     path, ', '.join(sorted(missing))))
            train_x = data['x_train']
    except UsageError:
        raise
    except Exception as e:
        raise UsageError('{} is not a readable .npz file ({}): give a Keras-layout '
                         'mnist.npz.'.format(path, e))
    if train_x.ndim != 3 or train_x.shape[0] == 0:
        raise UsageError('{}: x_train has shape {}, expected [N, 28, 28] digits.'.format(
            path, train_x.shape))
    return train_x


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


def read_digits():
    """scikit-learn's 1,797 real handwritten digits (UCI, 8x8) as uint8 [N, 28, 28] MNIST-like fields."""
    from sklearn.datasets import load_digits
    digits = load_digits().images.astype(np.float32)[..., None] * (255.0 / 16.0)
    # up-sampled to 20x20 and centred with the 4-pixel margin of MNIST's 28x28 fields
    digits = tf.image.resize(digits, [20, 20], method='bicubic')
    digits = tf.pad(digits, [[0, 0], [4, 4], [4, 4], [0, 0]])
    return np.clip(np.round(digits.numpy()[..., 0]), 0, 255).astype(np.uint8)


def load_digits(size):
    """scikit-learn's real digits brought to [size, size, 1] the way MNIST is, in [-1, 1]; no download."""
    return digits_like_mnist(read_digits(), size)


# ----------------------------------------------------------------------------- CIFAR-10

class CifarBatchUnpickler(pickle.Unpickler):
    """Reads a batch of CIFAR-10's python version, whose dict of arrays names only the classes
    below; any other class is refused before it is looked up, so a crafted file cannot run code."""
    ALLOWED = {('numpy', 'ndarray'), ('numpy', 'dtype'), ('_codecs', 'encode'),
               ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct')}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError('it names {}.{}, which no CIFAR-10 batch holds (a crafted '
                                         'file? it was not run)'.format(module, name))
        return super().find_class(module, name)


def cifar_batch_rows(tar, member):
    """The [N, 3072] uint8 rows of one batch file of either official tarball, read as plain data:
    the binary version's records of a label byte and 3,072 pixel bytes, or the python version's
    dict through CifarBatchUnpickler."""
    data = tar.extractfile(member).read()
    if member.endswith('.bin'):
        if len(data) % 3073:
            raise ValueError('{} is {} bytes, not whole records of 3,073'.format(member, len(data)))
        return np.frombuffer(data, np.uint8).reshape(-1, 3073)[:, 1:]
    batch = CifarBatchUnpickler(io.BytesIO(data), encoding='bytes').load()
    rows = batch.get(b'data') if isinstance(batch, dict) else None
    if not isinstance(rows, np.ndarray) or rows.dtype != np.uint8 or rows.ndim != 2 \
            or rows.shape[1] != 3072:
        raise ValueError('{} holds no [N, 3072] uint8 data array'.format(member))
    return rows


def read_cifar10(path):
    """CIFAR-10's 50,000 uint8 training images [N, 32, 32, 3]: from the official
    cifar-10-python.tar.gz or cifar-10-binary.tar.gz, an npz in Keras' layout (no pickled
    objects), or (path None) Keras' download. Nothing in the file is run."""
    if path is None:
        return keras_download('cifar10', 'CIFAR-10', 'download {} elsewhere and pass '
                              '--cifar_path=/path/to/cifar-10-python.tar.gz'.format(CIFAR_URL))
    if not os.path.isfile(path):
        raise UsageError('--cifar_path {} does not exist: give the official '
                         'cifar-10-python.tar.gz or an npz with x_train, or leave it empty to '
                         'download CIFAR-10.'.format(path))
    try:
        if path.endswith('.npz'):
            with np.load(path) as data:
                if 'x_train' not in data.files:
                    raise UsageError('{} has no x_train array: it needs Keras\' layout '
                                     '(x_train, y_train, x_test, y_test).'.format(path))
                train_x = data['x_train']
        else:
            with tarfile.open(path) as tar:
                batches = sorted(m for m in tar.getnames()
                                 if re.search(r'/data_batch_\d+(\.bin)?$', m))
                if not batches:
                    raise UsageError('{} holds no cifar-10-batches-py/data_batch_* (or '
                                     'cifar-10-batches-bin/data_batch_*.bin) files: is it the '
                                     'python or binary version of CIFAR-10 ({})?'.format(
                                         path, CIFAR_URL))
                rows = [cifar_batch_rows(tar, m) for m in batches]
            train_x = np.concatenate(rows).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except UsageError:
        raise
    except Exception as e:
        raise UsageError('{} could not be read as CIFAR-10 ({}): give the official '
                         'cifar-10-python.tar.gz or a Keras-layout npz.'.format(path, e))
    if train_x.ndim != 4 or train_x.shape[1:] != (32, 32, 3) or not len(train_x):
        raise UsageError('{}: the training images have shape {}, expected [N, 32, 32, 3].'.format(
            path, train_x.shape))
    return train_x


def load_cifar10(path, size):
    """CIFAR-10's training images at [size, size, 3] in [-1, 1]: area-shrunk or bilinear-enlarged."""
    train_x = read_cifar10(path or None)
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
    for _, _, names in os.walk(folder):
        for name in names:
            seen += 1
            count += name.lower().endswith(PICTURE_TYPES)
        if seen >= limit:
            break
    return count


def partition_files(tfrecord_dir, partition):
    """Record files of one partition: shards CelebA_{p}.tfrecord-*-of-* or one CelebA_{p}.tfrecord."""
    convert = utils.command('convert_tfrecord.py')
    if not os.path.isdir(tfrecord_dir):
        raise UsageError('--TFRecordPath {} does not exist: convert your images into it first: {} '
                         '--DatasetPath=<the CelebA folder, or a folder of pictures> '
                         '--TFRecordPath={}'.format(tfrecord_dir, convert, tfrecord_dir))
    parts = PARTITIONS if partition == 'all' else (partition,)
    files = []
    for part in parts:
        found = sorted(glob.glob(record_pattern(tfrecord_dir, part)))
        if found:
            files += found
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
    return files


def read_manifest(tfrecord_dir):
    """The converter's manifest.json as a dict, or None when there is none."""
    path = os.path.join(tfrecord_dir, MANIFEST)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
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
    """uint8 images -> float32 in [-1, 1], as the decoders give them."""
    return images.map(lambda x: (tf.cast(x, tf.float32) - 127.5) / 127.5,
                      num_parallel_calls=AUTOTUNE, deterministic=True)


def load_folder(tfrecord_dir, size, uint8=False):
    """The pictures of a converted folder (convert_tfrecord.py --layout=folder), centre-cropped to
    a square and resized to [size, size, 3] in [-1, 1] (uint8 from preresized records, if asked)."""
    return load_celeba(tfrecord_dir, 'train', FOLDER, False, size, uint8=uint8)


def load_celeba(tfrecord_dir, partition, image_type, bbox, size, files=None, uint8=False):
    """CelebA images of one partition ('all' = train+val+test) as [size, size, 3] in [-1, 1].

    Records converted with --image_size equal to size give their stored images without decoding;
    with uint8=True those come as uint8 (for caching before to_unit_range), others as float32.
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
        images = read_records(files).batch(256).map(
            lambda batch: records.parse_preresized(batch, raw_key, size),
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

    return read_records(files).map(parse, num_parallel_calls=AUTOTUNE, deterministic=True)


def read_records(files):
    """The serialised records of files, read in parallel and in a fixed order."""
    if len(files) == 1:
        return tf.data.TFRecordDataset(files[0], buffer_size=8 << 20)
    return tf.data.Dataset.from_tensor_slices(files).interleave(
        lambda f: tf.data.TFRecordDataset(f, buffer_size=8 << 20),
        cycle_length=min(len(files), 16), block_length=1,
        num_parallel_calls=AUTOTUNE, deterministic=True)


def file_identity(path):
    """A file's absolute path, size, inode and modification and change times: changes when the
    file does, also when a copy that kept the old time and size replaces it (cp -p, rsync -a:
    a new inode and change time, which no tool sets back)."""
    stat = os.stat(path)
    return '{} {} {} {} {}'.format(os.path.abspath(path), stat.st_size, stat.st_ino,
                                   stat.st_mtime_ns, stat.st_ctime_ns)


@dataclasses.dataclass(frozen=True)
class DataSource:
    """One source of real images and how they are cut: what training reads, evaluate.py compares
    with, and the statistics cache is keyed by."""
    image_type: str
    size: int
    partition: str = 'all'
    bbox: bool = True
    tfrecord_dir: str = PLACEHOLDER_RECORDS
    array_path: str = ''  # MNIST's or CIFAR-10's file; empty = Keras' download

    @classmethod
    def of(cls, flags):
        """The source named by the data flags of main.py or evaluate.py (a config with the flags'
        names: ImageType, DisInSize, Partition, bbox, TFRecordPath, mnist_path, cifar_path)."""
        return cls(flags.ImageType, flags.DisInSize, flags.Partition, flags.bbox,
                   flags.TFRecordPath, {'MNIST': flags.mnist_path,
                                        'cifar10': flags.cifar_path}.get(flags.ImageType, ''))

    @property
    def crop_bbox(self):
        return crops_bbox(self.image_type, self.bbox)

    @property
    def channels(self):
        return channels(self.image_type)

    @property
    def name(self):
        """The seed's SaveName, e.g. MNIST-False or img_celeba-True; a folder's records give
        their folder's name (records/my_images -> my_images-False)."""
        if self.image_type == FOLDER:
            return '{}-False'.format(os.path.basename(os.path.normpath(self.tfrecord_dir)))
        return '{}-{}'.format(self.image_type, self.crop_bbox)

    def record_files(self):
        """The record files this source reads (a folder's are all in its train partition)."""
        return partition_files(self.tfrecord_dir, 'train' if self.image_type == FOLDER
                               else self.partition)

    def load(self, uint8=False):
        """The unbatched images and how many there are; with uint8, records preresized for
        this size come as uint8 (to cache them before to_unit_range)."""
        if self.image_type == 'MNIST':
            images = load_mnist(self.array_path or None, self.size)
        elif self.image_type == 'digits':
            images = load_digits(self.size)
        elif self.image_type == 'cifar10':
            images = load_cifar10(self.array_path, self.size)
        elif self.image_type not in RECORD_TYPES:
            raise UsageError('--ImageType={} is not one of {}.'.format(
                self.image_type, ', '.join(IMAGE_TYPES)))
        else:
            return self.load_records(uint8)
        return images, int(images.cardinality())

    def load_records(self, uint8):
        """load() of converted CelebA or folder records."""
        if self.tfrecord_dir == PLACEHOLDER_RECORDS and not os.path.isdir(PLACEHOLDER_RECORDS):
            raise UsageError('no records given: convert CelebA or a folder of pictures first ({} '
                             '--DatasetPath=... --TFRecordPath=records/NAME) and pass '
                             '--TFRecordPath=records/NAME, or start with the quick start, which '
                             'needs no download: {}'.format(utils.command('convert_tfrecord.py'),
                                                            utils.command(*QUICK_START)))
        partition = 'train' if self.image_type == FOLDER else self.partition
        logging.info('Reading %s %s records from %s', self.image_type, partition,
                     self.tfrecord_dir)
        files = self.record_files()
        check_shards(self.tfrecord_dir, PARTITIONS if partition == 'all' else (partition,))
        images = load_celeba(self.tfrecord_dir, partition, self.image_type, self.bbox, self.size,
                             files=files, uint8=uint8)
        if self.image_type == FOLDER:
            entry = (read_manifest(self.tfrecord_dir) or {}).get('partitions', {}).get('train', {})
            smaller = entry.get('smaller_than', {}).get(str(self.size), 0)
            if smaller:
                logging.warning('%d of the %d images in %s are smaller than %d px: they are '
                                'upscaled', smaller, entry['records'], self.tfrecord_dir,
                                self.size)
        return images, celeba_size(self.tfrecord_dir, partition)

    def read_error(self, error):
        """The UsageError for a training image that cannot be read (a damaged record), or for
        records that ran out before the count of their manifest (OutOfRangeError)."""
        where = self.array_path or self.tfrecord_dir
        problem = ('its records ran out before the count of its manifest: a record file is '
                   'shorter than when it was converted' if isinstance(error, tf.errors.OutOfRangeError)
                   else errors.short_text(error, 200))
        return UsageError('cannot read a training image from {} ({}): run {} --verify '
                          '--TFRecordPath={} and reconvert what it reports.'.format(
                              where, problem, utils.command('convert_tfrecord.py'), where))

    def identity(self):
        """A string naming the images and when their files were made: it changes when they do."""
        if self.image_type == 'digits':
            import sklearn
            data = 'scikit-learn {} digits'.format(sklearn.__version__)
        elif self.image_type in ('MNIST', 'cifar10'):
            data = '{} {}'.format(self.image_type, file_identity(self.array_path)
                                  if self.array_path else 'Keras download')
        else:
            data = '{} {} {}'.format(self.image_type, self.partition,
                                     ', '.join(map(file_identity, self.record_files())))
        return '{}; bbox {}; {} px'.format(data, self.crop_bbox, self.size)

    def stats_dir(self, override=''):
        """Where reference statistics are cached: override, or fid_stats/ beside the records or
        the npz, else ./fid_stats."""
        if override:
            return override
        if self.image_type in RECORD_TYPES:
            return os.path.join(self.tfrecord_dir, 'fid_stats')
        if self.array_path:
            return os.path.join(os.path.dirname(os.path.abspath(self.array_path)), 'fid_stats')
        return 'fid_stats'


def make_batches(images, batch_size, shuffle_buffer, seed, drop_remainder, skip_batches=0):
    """Shuffle (seeded, one order per call), batch, skip already-trained batches and prefetch;
    uint8 images are brought to float32 in [-1, 1] a batch at a time."""
    if shuffle_buffer > 1:
        images = images.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    batches = images.batch(batch_size, drop_remainder=drop_remainder)
    if skip_batches:
        batches = batches.skip(skip_batches)
    if images.element_spec.dtype == tf.uint8:
        batches = to_unit_range(batches)
    return batches.prefetch(AUTOTUNE)
