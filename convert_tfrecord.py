"""Convert a CelebA download, or any folder of pictures, to sharded TFRecords, or verify them."""
import collections
import contextlib
import gc
import io
import multiprocessing
import os
import signal
import stat
import struct
import sys
import time
import zlib

import interrupts  # noqa: E402

interrupts.guard_start_up()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ info lines off by default
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import logging  # noqa: E402
from tqdm import tqdm  # noqa: E402

import config  # noqa: E402
import dataset  # noqa: E402
from dataset import read_manifest  # noqa: E402
import errors  # noqa: E402
from errors import UsageError, fail  # noqa: E402
import files  # noqa: E402
from files import check_writable, saving, write_json  # noqa: E402
import records  # noqa: E402
from records import (CELEBA_TYPES, FOLDER, MANIFEST, NUM_ATTRS, NUM_LANDMARKS,  # noqa: E402
                     PARTITIONS, record_pattern)

config.define_flags(config.ConvertConfig, __name__)

PARTITION_CODES = {'0': 'train', '1': 'val', '2': 'test'}
# official and torchvision text files; Kaggle's CSVs share the stems
ANNOTATIONS = {
    'bbox': ('list_bbox_celeba', 4),
    'attr': ('list_attr_celeba', NUM_ATTRS),
    'landmarks': ('list_landmarks_celeba', NUM_LANDMARKS),
    'landmarks_align': ('list_landmarks_align_celeba', NUM_LANDMARKS),
    'identity': ('identity_CelebA', 1),
    'partition': ('list_eval_partition', 1),
}
# image sides main.py trains at: the manifest counts the images smaller than each
TRAINING_SIZES = ('32', '64', '128')
# annotation files with a count line and a header line (the others have neither)
HEADED = ('bbox', 'attr', 'landmarks', 'landmarks_align')


class Layout:
    """Where one CelebA download keeps its image folders and annotation files."""

    def __init__(self, name, image_dirs, annotations):
        self.name = name
        self.image_dirs = image_dirs  # type -> folder, only those present
        self.annotations = annotations  # key of ANNOTATIONS -> file, only those present
        self.labels = {}  # a folder's subfolder names -> label


def detect_layout(root, layout='auto'):
    """Find which layout root holds: CelebA's official, torchvision or kaggle, or a plain folder."""
    if files.isfile(root):
        raise UsageError('--DatasetPath {} is a file: point it at the folder that holds the '
                         'pictures.'.format(root))
    if not files.isdir(root):
        raise UsageError('--DatasetPath {} does not exist: point it at the CelebA folder that '
                         'holds Img/, Anno/ and Eval/ (or img_align_celeba/ and the list_*.txt '
                         'files), or at a folder of pictures.'.format(root))
    if layout == 'folder':
        return Layout('folder', {FOLDER: root}, {})

    def present(paths):
        return {k: p for k, p in paths.items() if files.exists(p)}

    if files.isdir(os.path.join(root, 'Img')) or files.isdir(os.path.join(root, 'Anno')):
        anno = {k: os.path.join(root, 'Eval' if k == 'partition' else 'Anno', stem + '.txt')
                for k, (stem, _) in ANNOTATIONS.items()}
        dirs = {t: os.path.join(root, 'Img', t) for t in CELEBA_TYPES}
        return Layout('official', present(dirs), present(anno))
    if files.isfile(os.path.join(root, 'list_eval_partition.csv')):
        anno = {k: os.path.join(root, stem + '.csv') for k, (stem, _) in ANNOTATIONS.items()}
        dirs = {'img_align_celeba': os.path.join(root, 'img_align_celeba', 'img_align_celeba')}
        return Layout('kaggle', present(dirs), present(anno))
    if files.isfile(os.path.join(root, 'list_eval_partition.txt')):
        anno = {k: os.path.join(root, stem + '.txt') for k, (stem, _) in ANNOTATIONS.items()}
        dirs = {t: os.path.join(root, t) for t in CELEBA_TYPES}
        return Layout('torchvision', present(dirs), present(anno))
    if files.isdir(os.path.join(root, 'celeba')):
        return detect_layout(os.path.join(root, 'celeba'))
    return Layout('folder', {FOLDER: root}, {})  # no CelebA annotation: a folder of pictures


def read_annotation(path, key):
    """Read one annotation file (txt or Kaggle csv) into {image_id: [numbers]}."""
    width = ANNOTATIONS[key][1]
    with files.open_file(path) as f:
        lines = f.read().splitlines()
    separator = ',' if path.endswith('.csv') else None
    declared, start = None, 1
    if separator:
        start, lines = 2, lines[1:]  # header row of column names
    elif key in HEADED:
        try:
            declared = int(lines[0].split()[0])
        except (IndexError, ValueError):
            raise UsageError('{} line 1 should be the image count, got "{}"'.format(
                path, lines[0] if lines else ''))
        start, lines = 3, lines[2:]
    rows = [(number, line.strip().split(separator, 1)) for number, line in enumerate(lines, start)
            if line.strip()]
    try:  # numpy's C parser reads CelebA's 202,599 rows of 40 attributes 3x faster than int()
        values = np.loadtxt([row[-1] for _, row in rows], dtype=np.int64, delimiter=separator,
                            ndmin=2) if rows else np.zeros((0, width), np.int64)
    except ValueError as e:
        values, problem = None, e
    if values is None or values.shape[1] != width:
        for number, row in rows:  # name the first malformed line
            fields = row[1].split(separator) if len(row) > 1 else []
            try:
                if len(fields) != width:
                    raise ValueError('{} values'.format(len(fields)))
                [int(v) for v in fields]
            except ValueError as e:
                raise UsageError('{} line {} is malformed ({}, expected an image name and {} '
                                 'integers): "{}"; fix or re-download the file.'.format(
                                     path, number, e, width, lines[number - start]))
        raise UsageError('{} could not be read ({}); fix or re-download the file.'.format(
            path, problem))
    table = dict(zip((row[0] for _, row in rows), values.tolist()))
    if declared is not None and declared != len(table):
        raise UsageError('{} declares {} images on line 1 but has {} rows: the file is incomplete; '
                         're-download it.'.format(path, declared, len(table)))
    return table


def image_file(image_dirs, image_type, image_id):
    """Path of one image of a type; the PNG folder names its files .png, a folder keeps its names."""
    if image_type == FOLDER:
        return os.path.join(image_dirs[FOLDER], image_id)
    stem = os.path.splitext(image_id)[0]
    ext = '.png' if image_type == 'img_align_celeba_png' else '.jpg'
    return os.path.join(image_dirs[image_type], stem + ext)


def jpeg_size(data):
    """(width, height) from a JPEG's frame header; ValueError unless it is a whole JPEG file."""
    return jpeg_frame(data)[:2]


def jpeg_frame(data):
    """(width, height, colour components) from a JPEG's frame header; ValueError unless whole."""
    if data[:2] != b'\xff\xd8':
        raise ValueError('not a JPEG file')
    # a cut-off download lacks the end-of-image marker (tolerating trailing zero padding)
    if not data.rstrip(b'\0').endswith(b'\xff\xd9'):
        raise ValueError('truncated: no end-of-image marker')
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError('corrupt: no marker at byte {}'.format(i))
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        length = struct.unpack('>H', data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height, width = struct.unpack('>HH', data[i + 5:i + 9])
            if not width or not height:
                raise ValueError('corrupt: zero-size frame')
            return width, height, data[i + 9]
        if marker == 0xDA:
            break  # scan data before any frame header
        i += 2 + length
    raise ValueError('corrupt: no frame header')


def png_size(data):
    """(width, height) from a PNG's header; ValueError unless its chunks run whole up to IEND."""
    return png_header(data)[:2]


def png_header(data):
    """(width, height, bit depth, colour type) from a PNG's header; ValueError unless its chunks
    run whole up to IEND.

    Chunk CRCs are checked except IDAT's, which holds nearly all the bytes (CRC-32 runs at about
    2 GB/s here: it would be a sixth of the converter's time); --verify decodes the image data.
    """
    if data[:8] != b'\x89PNG\r\n\x1a\n':
        raise ValueError('not a PNG file')
    i, size = 8, None
    while i + 12 <= len(data):
        length = struct.unpack('>I', data[i:i + 4])[0]
        end = i + 12 + length
        if end > len(data):
            break
        kind = data[i + 4:i + 8]
        if kind != b'IDAT' and zlib.crc32(data[i + 4:end - 4]) != \
                struct.unpack('>I', data[end - 4:end])[0]:
            raise ValueError('corrupt: bad CRC in chunk {} at byte {}'.format(kind, i))
        if kind == b'IHDR':
            size = struct.unpack('>IIBB', data[i + 8:i + 18])
        elif kind == b'IEND' and size:
            return size
        i = end
    raise ValueError('truncated: no IEND chunk')


def check_image(data, image_type):
    """Return (width, height) of an encoded image, or raise ValueError if it is corrupt or truncated.

    Structural checks that cost microseconds (PIL's header parser took 20-30 us an image): JPEG
    markers up to the frame header and the closing end-of-image marker; PNG chunks complete up
    to IEND, and the CRC of every chunk but IDAT. --verify decodes every image.
    """
    return png_size(data) if image_type == 'img_align_celeba_png' else jpeg_size(data)


# --max_megapixels' default, in pixels
DEFAULT_MAX_PIXELS = 64 * 10 ** 6
# EXIF's orientation tag: 1 = upright; 2-8 = mirrored and/or turned (phones in portrait: 6)
ORIENTATION = 0x0112
# reasons a picture is skipped, as the manifest's "kind" of each skip and the summary counts them
SKIP_KINDS = ('missing', 'non-regular', 'unreadable', 'too large', 'undecodable', 'bbox')


def exif_orientation(data):
    """The EXIF orientation of an encoded picture: 1 (upright) also when it has no EXIF (looked
    for in the first 64 KB, where JPEG's APP1 and PNG's eXIf stand, before Pillow opens it)."""
    head = data[:1 << 16]
    if b'Exif\0\0' not in head and b'eXIf' not in head:
        return 1
    from PIL import Image
    with Image.open(io.BytesIO(data)) as img:  # bytes already read
        return img.getexif().get(ORIENTATION, 1)


class TooLarge(ValueError):
    """A picture of more pixels than --max_megapixels allows."""


def check_pixels(width, height, max_pixels):
    """TooLarge for a picture of more than max_pixels pixels."""
    if width * height > max_pixels:
        raise TooLarge('{}x{} = {:.1f} megapixels, over --max_megapixels={:g}'.format(
            width, height, width * height / 1e6, max_pixels / 1e6))


def folder_image(data, max_pixels):
    """(bytes to store, (width, height), rotated) of one picture of a folder; ValueError if it is
    no whole image or has more than max_pixels pixels.

    Upright 8-bit RGB JPEGs and PNGs are stored as they are (checked in microseconds, as
    CelebA's); any other picture Pillow reads (WebP, BMP, GIF's first frame, TIFF; CMYK, palette,
    16-bit or grayscale JPEG and PNG; any with an EXIF orientation other than upright, turned
    upright as a viewer shows it: rotated) is decoded, made RGB and stored as PNG.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError
    fast = None
    if data[:2] == b'\xff\xd8':
        width, height, components = jpeg_frame(data)
        fast = components == 3
    elif data[:8] == b'\x89PNG\r\n\x1a\n':
        width, height, depth, colour = png_header(data)
        fast = (depth, colour) == (8, 2)
    if fast is not None:
        check_pixels(width, height, max_pixels)
    try:
        orientation = exif_orientation(data) if fast else None
        if orientation == 1:
            return data, (width, height), False
        Image.MAX_IMAGE_PIXELS = None  # max_pixels, checked before decoding, is the limit
        with Image.open(io.BytesIO(data)) as img:  # bytes already read
            check_pixels(*img.size, max_pixels)
            img.seek(0)  # an animation's first frame
            img.load()
            orientation = img.getexif().get(ORIENTATION, 1)
            img = ImageOps.exif_transpose(img)
            if img.mode.startswith('I'):  # 16- or 32-bit grayscale: keep the top 8 bits
                pixels = np.asarray(img).astype(np.uint32)
                img = Image.fromarray((pixels >> (8 if pixels.max() < 65536 else 24))
                                      .astype(np.uint8))
            rgb = img.convert('RGB')
    except UnidentifiedImageError:
        raise ValueError('not an image Pillow can read')
    except TooLarge:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError('corrupt or truncated ({})'.format(str(e).splitlines()[0][:100]))
    out = io.BytesIO()
    rgb.save(out, 'PNG', compress_level=1)
    return out.getvalue(), rgb.size, orientation not in (1, None)


def folder_files(root):
    """Every non-hidden file under root, sorted, with symbolic links to folders followed once
    (a loop of links ends), and the folders that could not be read."""
    found, seen, unreadable = [], set(), []
    prefix = len(os.path.join(root, ''))
    for folder, subfolders, names in files.walk(root, lambda e: unreadable.append(e.filename)):
        if files.is_remote(folder):
            where = folder  # a store has no links to go round in
        else:
            info = os.stat(folder)
            where = (info.st_dev, info.st_ino)
        if where in seen:
            subfolders[:] = []
            continue
        seen.add(where)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith('.'))
        below = os.path.join(folder, '')[prefix:]  # the path below root ('' at the top)
        found += [below + f for f in names if not f.startswith('.')]
    return sorted(found), unreadable


def clamp_bbox(box, width, height):
    """Clamp an x, y, w, h box to the image; None if nothing of it is left inside."""
    x, y, w, h = box
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        return None
    return [x0, y0, x1 - x0, y1 - y0]


def preresize(data, item, image_type, size, bbox):
    """{feature key: uint8 pixels} of one image cropped and resized for training at size, with the
    training pipeline's own ops: img_celeba's face box with bbox, the centre square otherwise."""
    crop_bbox = dataset.crops_bbox(image_type, bbox) and 'bbox' in item
    image = dataset.crop_and_resize(data, item.get('bbox'), image_type, crop_bbox, size)
    pixels = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    return {records.preresized_key(image_type, crop_bbox, size): pixels.numpy().tobytes()}


class Skip(Exception):
    """An image left out of the records: kind (one of SKIP_KINDS) and the reason in words."""

    def __init__(self, kind, reason):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


def read_picture(path):
    """The bytes of one picture file; Skip unless it is a regular file that can be read (a FIFO
    named *.jpg made the converter wait for ever)."""
    try:
        if not files.is_remote(path) and not stat.S_ISREG(os.stat(path).st_mode):
            raise Skip('non-regular', 'not a regular file (a FIFO, socket or device): {}'.format(
                path))
        with files.open_file(path, 'rb') as f:
            return f.read()
    except FileNotFoundError:
        raise Skip('missing', 'missing file {}'.format(path))
    except OSError as e:
        raise Skip('unreadable', 'cannot read {} ({})'.format(path, e.strerror))


def encode_item(item, image_dirs, image_types, image_size=0, bbox=True,
                max_pixels=DEFAULT_MAX_PIXELS):
    """Read, check and serialise one image's record; returns (bytes, shorter side of the first
    image, whether it was turned upright by its EXIF orientation), or raises Skip. With
    image_size, the images are stored preresized."""
    images, side, rotated = {}, None, False
    for image_type in image_types:
        path = image_file(image_dirs, image_type, item['id'])
        data = read_picture(path)
        try:
            if image_type == FOLDER:
                data, size, turned = folder_image(data, max_pixels)
                rotated = rotated or turned
            else:
                size = check_image(data, image_type)
                check_pixels(*size, max_pixels)
        except TooLarge as e:
            raise Skip('too large', 'too large: {} is {}'.format(path, e))
        except ValueError as e:
            raise Skip('undecodable', 'undecodable image {} ({})'.format(path, e))
        side = side or min(size)
        # a folder's pictures keep their path below it (cats/a.jpg); CelebA's their file name
        images[image_type] = (item['id'] if image_type == FOLDER else os.path.basename(path), data)
        if image_type == 'img_celeba' and 'bbox' in item:
            if item['bbox'][2] <= 0 or item['bbox'][3] <= 0:
                raise Skip('bbox', 'zero-size bbox {}'.format(item['bbox']))
            box = clamp_bbox(item['bbox'], *size)
            if box is None:
                raise Skip('bbox', 'bbox {} outside the {}x{} image'.format(item['bbox'], *size))
            item = dict(item, bbox=box)
    preresized = {}
    for image_type, (_, data) in images.items() if image_size else ():
        try:
            preresized.update(preresize(data, item, image_type, image_size, bbox))
        except tf.errors.OpError as e:
            raise Skip('undecodable', 'undecodable image {} ({})'.format(
                image_file(image_dirs, image_type, item['id']), e.message.splitlines()[0]))
    example = records.make_example(item, images, preresized if image_size else None)
    return example.SerializeToString(), side, rotated


def write_shard(path, items, image_dirs, image_types, image_size=0, bbox=True,
                max_pixels=DEFAULT_MAX_PIXELS):
    """Write one shard, completely or not at all (files.saving); returns its manifest entry:
    records, its size in bytes, skipped images with kinds and reasons, how many were turned
    upright, and how many images are smaller than each training size."""
    entry = {'records': 0, 'skipped': [], 'rotated': 0,
             'smaller_than': dict.fromkeys(TRAINING_SIZES, 0)}
    with saving('a shard of records', path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
        for item in items:
            try:
                record, side, rotated = encode_item(item, image_dirs, image_types, image_size,
                                                    bbox, max_pixels)
            except Skip as skip:
                entry['skipped'].append({'image': item['id'], 'kind': skip.kind,
                                         'reason': skip.reason})
                continue
            writer.write(record)
            entry['records'] += 1
            entry['rotated'] += rotated
            for size in TRAINING_SIZES:
                entry['smaller_than'][size] += side < int(size)
    entry['bytes'] = files.getsize(path)
    return entry


TASKS = []  # (path, items, image dirs, types, image size, bbox, max pixels) of each shard


def write_shard_task(index):
    """write_shard for TASKS[index] in a worker process, with the shard's image count for progress."""
    path, items, *settings = TASKS[index]
    return path, len(items), write_shard(path, items, *settings)


def plan_partition(partition, ids, annotations, layout, image_types, shard_bytes):
    """Group a partition's images into shards of about shard_bytes, sized from a sample of files."""
    sample = [image_file(layout.image_dirs, t, i) for i in ids[:200] for t in image_types]
    sizes = [files.getsize(p) for p in sample if files.isfile(p)]
    image_bytes = len(image_types) * sum(sizes) / max(1, len(sizes))
    per_shard = max(1, int(shard_bytes // max(1, image_bytes)))
    items = []
    for image_id in ids:
        item = {'id': image_id}
        for key in ('bbox', 'attr', 'landmarks', 'landmarks_align', 'identity', 'label'):
            if key in annotations and (key != 'bbox' or 'img_celeba' in image_types):
                if image_id not in annotations[key]:
                    raise UsageError('{} has no row for {}: the annotation file is incomplete; '
                                     're-download it.'.format(layout.annotations[key], image_id))
                item[key] = annotations[key][image_id]
        items.append(item)
    shards = [items[i:i + per_shard] for i in range(0, len(items), per_shard)] or [[]]
    total = len(shards)
    names = [records.shard_name(partition, i, total) for i in range(total)]
    return list(zip(names, shards))


def load_folder_plan(layout):
    """A folder's pictures, all in the train partition, labelled by their top-level subfolder."""
    root = layout.image_dirs[FOLDER]
    pictures, unreadable = folder_files(root)
    for folder in unreadable:
        logging.warning('cannot read the folder %s: its pictures are left out', folder)
    if not pictures:
        raise UsageError('{} holds no pictures (no files but hidden ones{}): point --DatasetPath '
                         'at the folder of your images.'.format(
                             root, ', and unreadable folders' if unreadable else ''))
    classes = sorted({f.split(os.sep, 1)[0] if os.sep in f else '' for f in pictures})
    layout.labels = {name: i for i, name in enumerate(classes)}
    labels = {f: [layout.labels[f.split(os.sep, 1)[0] if os.sep in f else '']] for f in pictures}
    return layout, [FOLDER], {'train': pictures}, {'label': labels}


def load_plan(dataset_path, partition, image_types, layout='auto'):
    """Detect the layout, read the annotations and return (layout, image types, {partition: ids})."""
    layout = detect_layout(dataset_path, layout)
    if layout.name == 'folder':
        return load_folder_plan(layout)
    if not layout.image_dirs:
        raise UsageError('{} ({} layout) has no image folder: expected one of {}.'.format(
            dataset_path, layout.name, ', '.join(CELEBA_TYPES)))
    if image_types:
        unknown = [t for t in image_types if t not in CELEBA_TYPES]
        if unknown:
            raise UsageError('--ImageTypes {} unknown: use {}'.format(
                ','.join(unknown), ','.join(CELEBA_TYPES)))
        absent = [t for t in image_types if t not in layout.image_dirs]
        if absent:
            raise UsageError('--ImageTypes asks for {} but {} has no such folder (it has {}).'.format(
                ','.join(absent), dataset_path, ', '.join(layout.image_dirs)))
    else:
        image_types = [t for t in CELEBA_TYPES if t in layout.image_dirs]
    if 'partition' not in layout.annotations:
        raise UsageError('{} has no list_eval_partition file: it says which images are train, val '
                         'and test; download it from the CelebA page.'.format(dataset_path))
    annotations = {k: read_annotation(p, k) for k, p in layout.annotations.items()}
    ids = {p: [] for p in PARTITIONS}
    split_file = layout.annotations['partition']
    for image_id, (code,) in annotations.pop('partition').items():
        if str(code) not in PARTITION_CODES:
            raise UsageError('{}: {} has partition {}, expected 0, 1 or 2.'.format(
                split_file, image_id, code))
        ids[PARTITION_CODES[str(code)]].append(image_id)
    wanted = PARTITIONS if partition == 'all' else (partition,)
    return layout, image_types, {p: sorted(ids[p]) for p in wanted}, annotations


def write_manifest(out_dir, manifest):
    """Write manifest.json, completely or not at all."""
    write_json(os.path.join(out_dir, MANIFEST), manifest, 'the manifest')


def plan_tasks(dataset_path, out_dir, partition, image_types, shard_mb, overwrite, layout='auto',
               image_size=0, bbox=True, max_pixels=DEFAULT_MAX_PIXELS):
    """Plan the shards, drop unfinished or stale ones and return (manifest, parts, shards to write)."""
    layout, image_types, ids, annotations = load_plan(dataset_path, partition, image_types, layout)
    check_writable(out_dir)
    for leftover in files.glob(os.path.join(out_dir, '.tmp-CelebA_*')):
        files.remove(leftover)  # a shard an interrupted run did not finish
    manifest = read_manifest(out_dir) or {'partitions': {}}
    settings = {'source': files.absolute(dataset_path), 'layout': layout.name,
                'image_types': image_types, 'shard_mb': shard_mb,
                'annotations': sorted(annotations)}
    if layout.name == 'folder':
        settings['labels'] = layout.labels  # subfolder name -> image/folder/label
    if image_size:
        settings['image_size'] = image_size
        settings['bbox'] = bbox and 'bbox' in annotations and 'img_celeba' in image_types
    logging.info('%s: %s layout, image types %s, annotations %s', dataset_path, layout.name,
                 ', '.join(image_types), ', '.join(sorted(annotations)) or 'none')
    tasks, parts = [], {}
    for part, part_ids in ids.items():
        shards = plan_partition(part, part_ids, annotations, layout, image_types,
                                shard_mb * (1 << 20))
        old = manifest['partitions'].get(part)
        existing = files.glob(record_pattern(out_dir, part))
        if old and old['settings'] != settings and not overwrite and existing:
            raise UsageError('{} already holds {} records made with other settings ({} vs now {}): '
                             'add --overwrite to redo them, or choose another --TFRecordPath.'.format(
                                 out_dir, part, old['settings'], settings))
        done = {} if overwrite or not old or old['settings'] != settings else {
            name: entry for name, entry in old['shards'].items()
            if not records.shard_problem(os.path.join(out_dir, name), entry)}
        for name in sorted(set(old['shards']) - set(done)) if old and not overwrite and \
                old['settings'] == settings else ():
            logging.warning('%s is missing or not as it was written (cut short?): converting it '
                            'again', os.path.join(out_dir, name))
        names = {name for name, _ in shards}
        for path in existing:
            name = os.path.basename(path)
            if name not in names or name not in done:
                files.remove(path)  # from another plan, or written before its manifest entry
        parts[part] = {'settings': settings, 'images': len(part_ids),
                       'planned_shards': len(shards),
                       'shards': {n: s for n, s in done.items() if n in names}}
        tasks += [(os.path.join(out_dir, name), items, layout.image_dirs, image_types, image_size,
                   bbox, max_pixels)
                  for name, items in shards if name not in parts[part]['shards']]
        manifest['partitions'][part] = summarise(parts[part])
    write_manifest(out_dir, manifest)
    finished = sum(len(p['shards']) for p in parts.values())
    if finished:
        logging.info('resuming: %d shards already done, %d to write', finished, len(tasks))
    return manifest, parts, tasks


def convert(dataset_path, out_dir, partition, image_types=(), shard_mb=150, workers=1,
            overwrite=False, progress=True, layout='auto', image_size=0, bbox=True,
            max_pixels=DEFAULT_MAX_PIXELS):
    """Convert CelebA or a folder of pictures to shards in out_dir, resuming finished shards;
    returns the manifest."""
    global TASKS
    interrupts.kept = 'the finished shards in {} are kept'.format(out_dir)
    if out_dir.startswith('ram://'):
        workers = 1  # ram:// is this process's memory: what forked workers wrote there is lost
    try:
        with gc_paused():
            manifest, parts, TASKS = plan_tasks(dataset_path, out_dir, partition, image_types,
                                                shard_mb, overwrite, layout, image_size, bbox,
                                                max_pixels)
            # forked after planning, the workers inherit TASKS and are sent only indices: 40 KB
            # tasks serialised through a 64 KB pipe kept them waiting for this process
            with worker_pool(min(workers, len(TASKS))) as pool, \
                    tqdm(total=sum(len(task[1]) for task in TASKS), unit='img', desc='converting',
                         disable=not progress, smoothing=0.1) as bar:
                indices = range(len(TASKS))
                results = pool.imap_unordered(write_shard_task, indices) if pool else \
                    map(write_shard_task, indices)
                for path, n_items, entry in results:
                    name = os.path.basename(path)
                    part = name.split('_', 1)[1].split('.', 1)[0]
                    parts[part]['shards'][name] = entry
                    manifest['partitions'][part] = summarise(parts[part])
                    write_manifest(out_dir, manifest)
                    bar.update(n_items)
    except KeyboardInterrupt:
        raise UsageError('interrupted: finished shards are kept in {}; run the same command '
                         'again to continue.'.format(out_dir))
    finally:
        TASKS = []
    if all(parts[p]['settings']['layout'] == 'folder' and not manifest['partitions'][p]['records']
           for p in parts):
        entry = manifest['partitions']['train']
        raise UsageError('none of the {} files under {} is a picture that can be read (first: {} '
                         '- {}); the skip list is in {}.'.format(
                             len(entry['skipped']), dataset_path, entry['skipped'][0]['image'],
                             entry['skipped'][0]['reason'], os.path.join(out_dir, MANIFEST)))
    return manifest


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector: each full collection walks TensorFlow's 360,000 objects.

    Reading CelebA's annotations makes a million small lists, which triggered collections taking
    most of the planning time; nothing here makes reference cycles, and the forked workers, which
    inherit the pause, then never touch (and copy) the parent's objects.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def summarise(part):
    """The manifest entry of one partition: counts, settings, shards and every skipped image."""
    shards = part['shards'].values()
    skipped = [s for shard in shards for s in shard['skipped']]
    smaller = {size: sum(s.get('smaller_than', {}).get(size, 0) for s in shards)
               for size in TRAINING_SIZES}
    return dict(part, records=sum(s['records'] for s in shards), skipped=skipped,
                rotated=sum(s.get('rotated', 0) for s in shards), smaller_than=smaller,
                complete=len(part['shards']) == part['planned_shards'])


@contextlib.contextmanager
def worker_pool(workers):
    """A pool of forked worker processes, or None for workers=1; closed and joined when the work
    is done, terminated only on an error or Ctrl-C."""
    if workers <= 1:
        yield None
        return
    # fork starts workers at once with this process's memory; they only serialise protos and
    # write files, and the parent has run no TensorFlow op (spawn would import TensorFlow again).
    # Ctrl-C is left to the parent, which stops them: no traceback from every worker
    pool = multiprocessing.get_context('fork').Pool(workers, signal.signal,
                                                    (signal.SIGINT, signal.SIG_IGN))
    try:
        yield pool
    except BaseException:
        pool.terminate()
        raise
    # not terminate(): with a worker idle on the task queue it can wait forever for that queue's
    # lock (python/cpython#73945), as a test's converter once did
    pool.close()
    pool.join()


def verify(out_dir, progress=True):
    """Re-read every shard, decode every image and compare counts with the manifest; returns problems."""
    manifest = read_manifest(out_dir)
    if manifest is None:
        raise UsageError('{} has no {}: convert into it first with python convert_tfrecord.py '
                         '--DatasetPath=... --TFRecordPath={}'.format(out_dir, MANIFEST, out_dir))
    problems = []
    for part, entry in sorted(manifest['partitions'].items()):
        types = entry['settings']['image_types']
        image_size = entry['settings'].get('image_size', 0)
        bbox = entry['settings'].get('bbox', False)
        shards = files.glob(record_pattern(out_dir, part))
        listed = set(entry['shards'])
        for name in sorted(listed - {os.path.basename(f) for f in shards}):
            problems.append('{}: shard {} is listed in the manifest but missing'.format(part, name))
        total = 0
        for path in tqdm(shards, desc='verifying ' + part, unit='shard', disable=not progress):
            name = os.path.basename(path)
            count, error = verify_shard(path, types, image_size, bbox)
            total += count
            if error:
                problems.append('{}: {}'.format(name, error))
            if name not in listed:
                problems.append('{}: not in the manifest (left by another run?)'.format(name))
            elif count != entry['shards'][name]['records']:
                problems.append('{}: {} records, manifest says {}'.format(
                    name, count, entry['shards'][name]['records']))
        print('{:5s}: {:7d} records read, manifest {:7d}, {} skipped at conversion{}'.format(
            part, total, entry['records'], len(entry['skipped']),
            '' if total == entry['records'] else '  MISMATCH'))
        if total != entry['records']:
            problems.append('{}: {} records read, manifest says {}'.format(part, total, entry['records']))
    return problems


def verify_shard(path, image_types, image_size=0, bbox=False):
    """Count one shard's records, parsing each and decoding its images (or checking the size of
    its preresized ones); returns (count, error)."""
    keys = [records.preresized_key(t, dataset.crops_bbox(t, bbox), image_size) if image_size else
            records.encoded_key(t) for t in image_types]
    features = {k: tf.io.FixedLenFeature([], tf.string) for k in keys}

    def check(raw):
        example = tf.io.parse_single_example(raw, features)
        if image_size:
            checks = [tf.debugging.assert_equal(tf.size(tf.io.decode_raw(example[k], tf.uint8)),
                                                image_size * image_size * 3,
                                                message='preresized image of the wrong size')
                      for k in keys]
            with tf.control_dependencies(checks):
                return tf.constant(0)
        sizes = [tf.size(tf.io.decode_image(example[k], channels=3, expand_animations=False))
                 for k in sorted(features)]
        return tf.add_n(sizes) if sizes else tf.constant(0)

    ds = tf.data.TFRecordDataset(path).map(check, num_parallel_calls=tf.data.AUTOTUNE)
    count = 0
    iterator = iter(ds)
    while True:
        try:
            next(iterator)
        except StopIteration:
            return count, None
        except tf.errors.OpError as e:
            return count, 'record {} is damaged: {}'.format(count, e.message.splitlines()[0])
        count += 1


@errors.entry_point
def main(_argv):
    settings = config.from_flags(config.ConvertConfig)
    source, out = settings.DatasetPath, settings.TFRecordPath
    try:
        if settings.verify:
            problems = verify(out)
            for problem in problems:
                print('PROBLEM: ' + problem, file=sys.stderr)
            if problems:
                fail('{} problem(s) in {}: reconvert the listed partitions with '
                     '--overwrite.'.format(len(problems), out))
            print('OK: every record parses and every image decodes.')
            return
        start = time.time()
        workers = settings.workers or os.cpu_count() or 1
        manifest = convert(source, out, settings.Partition, list(settings.ImageTypes),
                           settings.shard_mb, workers, settings.overwrite, layout=settings.layout,
                           image_size=int(settings.image_size), bbox=settings.bbox,
                           max_pixels=int(settings.max_megapixels * 10 ** 6))
    except UsageError as e:
        fail(e)
    images = 0
    for part, entry in manifest['partitions'].items():
        images += entry['records']
        kinds = collections.Counter(s.get('kind', 'undecodable') for s in entry['skipped'])
        print('{:5s}: {:7d} records in {} shards, {} skipped{}{}'.format(
            part, entry['records'], len(entry['shards']), len(entry['skipped']),
            ' ({})'.format(', '.join('{} {}'.format(kinds[k], k) for k in SKIP_KINDS if kinds[k]))
            if kinds else '', ', {} turned upright by their EXIF orientation'.format(
                entry['rotated']) if entry.get('rotated') else ''))
        for skip in entry['skipped'][:20]:
            print('  skipped {}: {}'.format(skip['image'], skip['reason']))
        if len(entry['skipped']) > 20:
            print('  ... and {} more: all are listed in {}'.format(
                len(entry['skipped']) - 20, os.path.join(out, MANIFEST)))
    print('wrote {} in {:.1f} s; check it with python convert_tfrecord.py --verify '
          '--TFRecordPath={}'.format(out, time.time() - start, out))


if __name__ == '__main__':
    app.run(main)
