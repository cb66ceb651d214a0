"""Benchmark convert_tfrecord.py against a single-process reference: the seed-style CelebA
converter on generated CelebA, or (--folder) a plain loop over a folder of generated JPEGs.

Run from the repository root: python -m tools.bench_convert [--folder]
"""
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from tqdm import tqdm

import convert_tfrecord  # its --workers and --shard_mb flags apply here too
import records
from tools import synthetic

FLAGS = flags.FLAGS
flags.DEFINE_integer('images', 2000, 'images to generate (default 2000)')
flags.DEFINE_string('source', '', 'existing CelebA folder to convert instead of generated images')
flags.DEFINE_integer('repeats', 3, 'timed runs of each converter; the best counts (default 3)')
flags.DEFINE_string('work_dir', '', 'scratch folder (default: a temporary one, deleted after)')
flags.DEFINE_boolean('folder', False, 'time --layout=folder on --images generated 256x256 JPEGs in '
                     'class folders against a plain single-process loop (default False: CelebA)')



def read_seed_style(path, header_rows):
    """Annotation rows as {image name: [strings]}, parsed the way the seed's converter does."""
    with open(path) as f:
        lines = f.readlines()[header_rows:]
    rows = {}
    for line in lines:
        fields = [x for x in line.strip().split(' ') if x != '']
        rows[fields[0]] = fields[1:]
    return rows


def seed_style_example(item, images):
    """The seed's build_example: a dict of separately built Feature messages."""
    def byte(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    features = {}
    for image_type, (name, data) in images.items():
        features[records.filename_key(image_type)] = byte(name.encode())
        features[records.encoded_key(image_type)] = byte(data)
    key = {field: spec[0] for field, spec in records.ANNOTATIONS.items()}
    features[key['identity']] = tf.train.Feature(int64_list=tf.train.Int64List(
        value=item['identity']))
    features[key['attr']] = floats([0.0 if a < 0 else 1.0 for a in item['attr']])
    for field in ('landmarks', 'landmarks_align', 'bbox'):
        features[key[field]] = floats(item[field])
    return tf.train.Example(features=tf.train.Features(feature=features))


def seed_style_convert(root, out_dir, partition='train'):
    """The seed's converter, restated: one process and one file, every image type of every image."""
    anno = os.path.join(root, 'Anno')
    split = read_seed_style(os.path.join(root, 'Eval', 'list_eval_partition.txt'), 0)
    identity = read_seed_style(os.path.join(anno, 'identity_CelebA.txt'), 0)
    attr = read_seed_style(os.path.join(anno, 'list_attr_celeba.txt'), 2)
    bbox = read_seed_style(os.path.join(anno, 'list_bbox_celeba.txt'), 2)
    landmarks = read_seed_style(os.path.join(anno, 'list_landmarks_celeba.txt'), 2)
    landmarks_align = read_seed_style(os.path.join(anno, 'list_landmarks_align_celeba.txt'), 2)
    code = {'train': '0', 'val': '1', 'test': '2'}[partition]
    count = 0
    with tf.io.TFRecordWriter(records.record_pattern(out_dir, partition).rstrip('*')) as writer:
        for key in tqdm(split, desc='seed-style', unit='img'):
            if split[key][0] != code:
                continue
            images = {}
            for image_type in convert_tfrecord.CELEBA_TYPES:
                name = key[:-4] + '.png' if image_type.endswith('png') else key
                with open(os.path.join(root, 'Img', image_type, name), 'rb') as f:
                    images[image_type] = (name, f.read())
            item = {'identity': [int(identity[key][0])],
                    'attr': [int(a) for a in attr[key]],
                    'landmarks': [float(v) for v in landmarks[key]],
                    'landmarks_align': [float(v) for v in landmarks_align[key]],
                    'bbox': [float(v) for v in bbox[key]]}
            writer.write(seed_style_example(item, images).SerializeToString())
            count += 1
    return count


def write_jpeg_folder(root, n):
    """n generated 256x256 JPEGs of about 20 KB in 10 class folders."""
    rng = np.random.default_rng(0)
    for i in tqdm(range(n), desc='generating', unit='img'):
        folder = os.path.join(root, 'class{}'.format(i % 10))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, '{:06d}.jpg'.format(i)), 'wb') as f:
            f.write(synthetic.encode(synthetic.smooth_image(rng, 256, 256, grain=6), 'JPEG', 90))


def plain_folder_convert(root, out_dir):
    """A plain loop: every file under root into one TFRecord file, one process, no checks."""
    count = 0
    with tf.io.TFRecordWriter(os.path.join(out_dir, 'images.tfrecord')) as writer:
        for folder, _, files in sorted(os.walk(root)):
            for name in sorted(files):
                with open(os.path.join(folder, name), 'rb') as f:
                    data = f.read()
                feature = {records.encoded_key(records.FOLDER): tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[data]))}
                writer.write(tf.train.Example(features=tf.train.Features(
                    feature=feature)).SerializeToString())
                count += 1
    return count


def main(_argv):
    # 2,000 realistic images are about 300 MB: small shards give every core work
    FLAGS.set_default('shard_mb', 20)
    work = FLAGS.work_dir or tempfile.mkdtemp(prefix='bench-convert-')
    root = FLAGS.source
    if FLAGS.folder:
        root = root or os.path.join(work, 'pictures')
        if not FLAGS.source:
            write_jpeg_folder(root, FLAGS.images)
    elif not root:
        root = os.path.join(work, 'celeba')
        print('Generating {} CelebA-layout images of realistic size in {} ...'.format(
            FLAGS.images, root))
        # in-the-wild JPEGs of a few hundred pixels a side; aligned 178x218 JPEG and PNG
        synthetic.write_celeba(root, n=FLAGS.images, wild_size=(400, 480),
                               align_size=(178, 218), split=(1.0, 0.0), progress=tqdm,
                               grain=3, wild_quality=90)
    source_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root)
                    for f in files) / 1e6
    workers = FLAGS.workers or os.cpu_count()

    if FLAGS.folder:
        runs = {'plain loop (1 process, 1 file, no checks)':
                lambda out: plain_folder_convert(root, out)}
    else:
        runs = {'seed-style (1 process, 1 file, no checks)':
                lambda out: seed_style_convert(root, out)}
    for n in sorted({1, workers}):
        runs['convert_tfrecord.py ({} worker{}, checked)'.format(n, 's' if n > 1 else '')] = (
            lambda out, n=n: convert_tfrecord.convert(
                root, out, 'train', shard_mb=FLAGS.shard_mb, workers=n, progress=False,
                layout='folder' if FLAGS.folder else 'auto')['partitions']['train']['records'])
    best = {name: float('inf') for name in runs}
    for repeat in range(FLAGS.repeats):  # interleaved, best of each
        for name, run in runs.items():
            out = os.path.join(work, 'out')
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            os.sync()  # no dirty pages left from the run before
            start = time.time()
            count = run(out)
            best[name] = min(best[name], time.time() - start)
    print('\n{} {}images, {:.0f} MB of source files, {} CPU core(s), best of {} runs'.format(
        count, 'folder ' if FLAGS.folder else '', source_mb, os.cpu_count(), FLAGS.repeats))
    print('{:<44s} {:>8s} {:>10s}'.format('converter', 'seconds', 'images/s'))
    for name, seconds in best.items():
        print('{:<44s} {:8.2f} {:10.1f}'.format(name, seconds, count / seconds))
    names = list(best)
    ref_rate, ours_rate = count / best[names[0]], count / best[names[-1]]
    print('ratio: {:.2f}x'.format(ours_rate / ref_rate))
    if not FLAGS.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    app.run(main)
