"""The TFRecord format of converted CelebA and folder images: file names, feature keys, and the
encoding and parsing of one tf.train.Example. The converter, the input pipelines, bench.py and the
tools all spell a key through this file. TensorFlow is imported by the functions that encode
or parse, so that the entry points' flags (which name IMAGE_TYPES and PLACEHOLDER_RECORDS) load
without it."""
import os

import files

# the seed's placeholder for --TFRecordPath: nothing was converted yet
PLACEHOLDER_RECORDS = 'TFRecordFilePath'
PARTITIONS = ('train', 'val', 'test')
CELEBA_TYPES = ('img_celeba', 'img_align_celeba', 'img_align_celeba_png')
# a converted folder of pictures is stored as one more image type
FOLDER = 'folder'
# types read from converted records, and every --ImageType (arrays are read whole, not from records)
RECORD_TYPES = CELEBA_TYPES + (FOLDER,)
IMAGE_TYPES = RECORD_TYPES + ('MNIST', 'digits', 'cifar10')
MANIFEST = 'manifest.json'
NUM_ATTRS = 40
# the names of image/Attr's 40 values, in list_attr_celeba.txt's order
CELEBA_ATTRIBUTES = tuple(
    '5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose '
    'Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee '
    'Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard '
    'Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair '
    'Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie '
    'Young'.split())
NUM_LANDMARKS = 10

BBOX_KEY = 'image/img_celeba/bbox'
# the item field of each annotation, its key, and its kind (int64 or float)
ANNOTATIONS = {
    'identity': ('image/ID', 'int64', 1),
    'label': ('image/folder/label', 'int64', 1),
    'attr': ('image/Attr', 'float', NUM_ATTRS),
    'landmarks': ('image/Landmarks', 'float', NUM_LANDMARKS),
    'landmarks_align': ('image/LandmarksAlign', 'float', NUM_LANDMARKS),
    'bbox': (BBOX_KEY, 'float', 4),
}


def record_pattern(tfrecord_dir, partition):
    """Glob pattern of one partition's record files: one CelebA_{p}.tfrecord or its shards."""
    return os.path.join(tfrecord_dir, 'CelebA_{}.tfrecord*'.format(partition))


def shard_problem(path, entry):
    """Why a finished shard's file is not as the converter wrote it (missing, or not the size its
    manifest entry records; entries from before they recorded one: empty), or None."""
    try:
        size = files.getsize(path)
    except OSError:
        return 'missing'
    if 'bytes' not in entry:
        return None if size else 'empty'
    if size != entry['bytes']:
        return '{} bytes, not the {} the converter wrote'.format(size, entry['bytes'])
    return None


def shard_name(partition, index, total):
    """File name of shard index of total: CelebA_train.tfrecord-00003-of-00012."""
    return 'CelebA_{}.tfrecord-{:05d}-of-{:05d}'.format(partition, index, total)


def filename_key(image_type):
    """Feature key of an image's file name (for a folder: its path below the folder)."""
    return 'image/{}/filename'.format(image_type)


def encoded_key(image_type):
    """Feature key of an image's encoded file (JPEG or PNG, as it was read)."""
    return 'image/{}/encoded'.format(image_type)


def preresized_key(image_type, crop_bbox, size):
    """Feature key of the images convert_tfrecord.py --image_size stored cropped and resized."""
    return 'image/{}/{}{}'.format(image_type, 'bbox_raw' if crop_bbox else 'raw', size)


def preresized_kinds(keys, image_type):
    """The preresized forms of image_type among keys: ['raw64', 'bbox_raw32', ...]."""
    prefix = 'image/{}/'.format(image_type)
    return sorted(k[len(prefix):] for k in keys if k.startswith(prefix) and 'raw' in k)


def make_example(item, images, preresized=None):
    """The seed's tf.train.Example for one image: encoded images (or, with preresized, the images
    cropped and resized under their own keys instead) and every annotation present.

    images: {image type: (file name, bytes)}; preresized: {feature key: raw uint8 pixels}.
    Filled in place: building Feature messages first and passing them in copies every image twice.
    """
    import tensorflow as tf
    example = tf.train.Example()
    feature = example.features.feature
    for image_type, (name, data) in images.items():
        feature[filename_key(image_type)].bytes_list.value.append(name.encode())
        if preresized is None:
            feature[encoded_key(image_type)].bytes_list.value.append(data)
    for key, pixels in (preresized or {}).items():
        feature[key].bytes_list.value.append(pixels)
    for field, (key, kind, _) in ANNOTATIONS.items():
        if field not in item:
            continue
        values = item[field]
        if field == 'attr':  # CelebA's -1/+1 as 0/1
            values = [1.0 if v > 0 else 0.0 for v in values]
        getattr(feature[key], kind + '_list').value.extend(values)
    return example


def image_features(image_type, crop_bbox):
    """The parse spec of one encoded image (and its box, when cropping by it)."""
    import tensorflow as tf
    features = {encoded_key(image_type): tf.io.FixedLenFeature([], tf.string)}
    if crop_bbox:
        features[BBOX_KEY] = tf.io.FixedLenFeature([4], tf.float32)
    return features


def parse_image(raw, image_type, crop_bbox):
    """(encoded image, bbox or None) of one serialised record."""
    import tensorflow as tf
    example = tf.io.parse_single_example(raw, image_features(image_type, crop_bbox))
    return example[encoded_key(image_type)], example.get(BBOX_KEY)


def parse_preresized(records, key, size):
    """A batch of serialised records -> their preresized images, uint8 [n, size, size, 3]."""
    import tensorflow as tf
    pixels = tf.io.parse_example(records, {key: tf.io.FixedLenFeature([], tf.string)})
    return tf.reshape(tf.io.decode_raw(pixels[key], tf.uint8), [-1, size, size, 3])


def parse_labels(records, key, width):
    """A batch of serialised records -> their label under key: int64 [n] (image/folder/label) or
    float32 [n, width] (image/Attr)."""
    import tensorflow as tf
    spec = tf.io.FixedLenFeature([], tf.int64) if width == 1 \
        else tf.io.FixedLenFeature([width], tf.float32)
    return tf.io.parse_example(records, {key: spec})[key]


def seed_features():
    """The parse spec of every feature the seed's converter wrote (all image types and
    annotations), as the seed's reader parses them."""
    import tensorflow as tf
    features = {k(t): tf.io.FixedLenFeature([], tf.string)
                for t in CELEBA_TYPES for k in (filename_key, encoded_key)}
    for key, kind, width in ANNOTATIONS.values():
        if key != ANNOTATIONS['label'][0]:
            features[key] = tf.io.FixedLenFeature([width], tf.int64 if kind == 'int64'
                                                  else tf.float32)
    return features
