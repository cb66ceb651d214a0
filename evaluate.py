"""Measure a trained generator against real images: FID, KID, precision/recall and IS.

python evaluate.py --model=models/img_celeba-True/generator.keras --ImageType=img_celeba
    --TFRecordPath=records --num_samples=10000
"""
import dataclasses
import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ info lines off by default
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import dataset  # noqa: E402
import devices  # noqa: E402
import metrics  # noqa: E402
import model  # noqa: E402
import utils  # noqa: E402
from utils import UsageError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string('model', '', 'generator.keras written by main.py, or a Generator.weights.h5 '
                    'file together with --ImageType, --DisInSize, --noise_dim and --filters')
flags.DEFINE_enum('ImageType', 'MNIST', list(dataset.IMAGE_TYPES),
                  'real images to compare with, as main.py\'s --ImageType (default MNIST)')
flags.DEFINE_string('mnist_path', '', 'local mnist.npz in Keras\' layout; empty (default) = Keras\' '
                    'download')
flags.DEFINE_string('cifar_path', '', 'local CIFAR-10 (cifar-10-python.tar.gz or a Keras-layout '
                    'npz); empty (default) = Keras\' download. Its reference statistics use the '
                    '50,000 training images, the common protocol')
flags.DEFINE_string('TFRecordPath', dataset.PLACEHOLDER_RECORDS, 'folder of the converted CelebA '
                    'records')
flags.DEFINE_enum('Partition', 'all', ['train', 'val', 'test', 'all'],
                  'CelebA partition of the real images (default all)')
flags.DEFINE_boolean('bbox', True, 'crop img_celeba faces by their bounding box (default True)')
flags.DEFINE_integer('DisInSize', 64, 'with a .weights.h5 file: image side, 32, 64 or 128 '
                     '(default 64); a generator.keras file knows its own')
flags.DEFINE_integer('noise_dim', 100, 'with a .weights.h5 file: latent size (default 100)')
flags.DEFINE_integer('filters', 1024, 'with a .weights.h5 file: main.py\'s --filters (default 1024)')
flags.DEFINE_integer('num_samples', 10000, 'generated images to measure (default 10,000; the '
                     'published FID protocol uses 50,000)')
flags.DEFINE_integer('ref_samples', 50000, 'real images for the reference statistics (default '
                     '50,000, or all there are if fewer)')
flags.DEFINE_string('feature_model', '', 'a saved .keras model mapping images in [-1, 1] to feature '
                    'vectors (and, as a second output, class probabilities for IS); default: '
                    'Keras\' InceptionV3 with ImageNet weights')
flags.DEFINE_string('inception_weights', '', 'local copy of Keras\' ' + metrics.INCEPTION_FILE +
                    ' for machines without internet (default: Keras\' download, cached)')
flags.DEFINE_string('stats_dir', '', 'folder caching the reference statistics (default: fid_stats/ '
                    'beside the records or the npz, else ./fid_stats)')
flags.DEFINE_string('out', '', 'also write the results as JSON to this file (default: none)')
flags.DEFINE_integer('seed', 0, 'random seed of the generated latents (default 0)')
flags.DEFINE_integer('batch', 100, 'images per feature-extraction batch (default 100)')
flags.DEFINE_enum('mixed_precision', 'none', devices.PRECISIONS,
                  'precision of the feature model, as main.py\'s flag (default none)')


def evaluate_generator(generator, source, num_samples, ref_samples=50000, feature_model='',
                       inception_weights='', stats_dir='', seed=0, batch=100):
    """Every metric of generator against the real images of a dataset.DataSource, as a dict;
    the real images are read at the generator's size, so that like is compared with like."""
    size = generator.output_shape[1]
    if generator.output_shape[-1] != source.channels:
        raise UsageError('the generator makes {}-channel images but --ImageType={} has {}: pass '
                         'the --ImageType it was trained on.'.format(
                             generator.output_shape[-1], source.image_type, source.channels))
    source = dataclasses.replace(source, size=size)
    images, n_images = source.load()
    extractor = metrics.FeatureExtractor(*metrics.load_feature_model(feature_model,
                                                                     inception_weights))
    reference = metrics.reference_features(extractor, images, min(ref_samples, n_images),
                                           source.identity(), source.stats_dir(stats_dir), batch)
    result = metrics.evaluate(generator, extractor, reference, num_samples, seed, batch)
    result['real_data'] = source.identity()
    return result


def main(_argv):
    try:
        if not FLAGS.model:
            raise UsageError('pass --model=models/{SaveName}/generator.keras')
        devices.set_precision(FLAGS.mixed_precision)
        source = dataset.DataSource(
            FLAGS.ImageType, FLAGS.DisInSize, FLAGS.Partition, FLAGS.bbox, FLAGS.TFRecordPath,
            {'MNIST': FLAGS.mnist_path, 'cifar10': FLAGS.cifar_path}.get(FLAGS.ImageType, ''))
        generator = model.load_generator(FLAGS.model, dataset.channels(FLAGS.ImageType),
                                         FLAGS.DisInSize, FLAGS.noise_dim, FLAGS.filters)
        if FLAGS.out:
            utils.check_writable(os.path.dirname(FLAGS.out) or '.')
        result = evaluate_generator(generator, source, FLAGS.num_samples, FLAGS.ref_samples,
                                    FLAGS.feature_model, FLAGS.inception_weights, FLAGS.stats_dir,
                                    FLAGS.seed, FLAGS.batch)
        result['model'] = FLAGS.model
        print('{} against {}:'.format(FLAGS.model, result['real_data']))
        print('  FID {fid:.4f}   KID {kid_mean:.5f} +- {kid_std:.5f}   precision {precision:.4f}   '
              'recall {recall:.4f}   IS {is_mean:.4f} +- {is_std:.4f}'.format(**result))
        print('  {num_samples} generated and {num_reference} real images, features of '
              '{feature_model}, {seconds:.0f} s'.format(**result))
        if FLAGS.out:
            with open(FLAGS.out, 'w') as f:
                json.dump(result, f, indent=1)
            print('wrote {}'.format(FLAGS.out))
    except UsageError as e:
        utils.fail(e)


if __name__ == '__main__':
    app.run(main)
