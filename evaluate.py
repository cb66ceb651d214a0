"""Measure a trained generator against real images: FID, KID, precision/recall and IS.

python evaluate.py --model=models/img_celeba-True/generator.keras --ImageType=img_celeba
    --TFRecordPath=records --num_samples=10000
"""
import dataclasses
import json
import os

import interrupts  # noqa: E402

interrupts.guard_start_up()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ info lines off by default
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import config  # noqa: E402
import records  # noqa: E402
import errors  # noqa: E402
import files  # noqa: E402
from errors import UsageError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string('model', '', 'generator.keras written by main.py, or a Generator.weights.h5 '
                    'file (its shape flags come from the flags.json beside it, or from '
                    '--DisInSize, --noise_dim and --filters)')
flags.DEFINE_enum('ImageType', 'MNIST', list(records.IMAGE_TYPES),
                  'real images to compare with, as main.py\'s --ImageType (default MNIST)')
flags.DEFINE_string('mnist_path', '', 'local mnist.npz in Keras\' layout; empty (default) = Keras\' '
                    'download')
flags.DEFINE_string('cifar_path', '', 'local CIFAR-10 (cifar-10-python.tar.gz, -binary.tar.gz or a Keras-layout '
                    'npz); empty (default) = Keras\' download. Its reference statistics use the '
                    '50,000 training images, the common protocol')
flags.DEFINE_string('TFRecordPath', records.PLACEHOLDER_RECORDS, 'folder of the converted CelebA '
                    'records')
flags.DEFINE_enum('Partition', 'all', ['train', 'val', 'test', 'all'],
                  'CelebA partition of the real images (default all)')
flags.DEFINE_boolean('bbox', True, 'crop img_celeba faces by their bounding box (default True)')
flags.DEFINE_integer('DisInSize', 64, 'with a .weights.h5 file: image side, 32, 64 or 128 '
                     '(default 64); a generator.keras file knows its own')
flags.DEFINE_integer('noise_dim', 100, 'with a .weights.h5 file: latent size (default 100)')
flags.DEFINE_integer('filters', 1024, 'with a .weights.h5 file: main.py\'s --filters (default 1024)')
flags.DEFINE_integer('num_samples', 10000, 'generated images to measure (default 10,000; the '
                     'published FID protocol uses 50,000), at least 4 (precision and recall need '
                     'k + 1 = 4) and at most 1,000,000 (their features alone take 8 GB)',
                     lower_bound=4, upper_bound=10 ** 6)
flags.DEFINE_integer('ref_samples', 50000, 'real images for the reference statistics (default '
                     '50,000, or all there are if fewer), at least 4', lower_bound=4)
flags.DEFINE_string('feature_model', '', 'a saved .keras model mapping images in [-1, 1] to feature '
                    'vectors (and, as a second output, class probabilities for IS); default: '
                    'Keras\' InceptionV3 with ImageNet weights')
flags.DEFINE_string('inception_weights', '', 'local copy of Keras\' ' + config.INCEPTION_FILE +
                    ' for machines without internet (default: Keras\' download, cached)')
flags.DEFINE_string('inception_graph', '', 'TTUR\'s Inception graph, ' + config.GRAPH_FILE +
                    ' from ' + config.GRAPH_URL + ': FIDs on the published protocol (default: '
                    'none, Keras\' InceptionV3)')
flags.DEFINE_string('reference_stats', '', 'a TTUR-format statistics file (mu, sigma), e.g. '
                    'fid_stats_cifar10_train.npz, as the real side of the FID; KID and '
                    'precision/recall are then NaN (default: none, the real images)')
flags.DEFINE_string('save_stats', '', 'also write the real images\' mu and sigma in TTUR\'s format '
                    'to this .npz (default: none)')
flags.DEFINE_string('stats_dir', '', 'folder caching the reference statistics (default: fid_stats/ '
                    'beside the records or the npz, else ./fid_stats)')
flags.DEFINE_string('out', '', 'also write the results as JSON to this file (default: none)')
flags.DEFINE_integer('seed', 0, 'random seed of the generated latents (default 0)', lower_bound=0)
flags.DEFINE_integer('batch', 100, 'images per feature-extraction batch (default 100)',
                     lower_bound=1)
flags.DEFINE_enum('mixed_precision', 'none', config.PRECISIONS,
                  'precision of the feature model, as main.py\'s flag (default none)')


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What one evaluation depends on; field names are this script's flags."""
    model: str = ''
    ImageType: str = 'MNIST'
    mnist_path: str = ''
    cifar_path: str = ''
    TFRecordPath: str = records.PLACEHOLDER_RECORDS
    Partition: str = 'all'
    bbox: bool = True
    DisInSize: int = 64
    noise_dim: int = 100
    filters: int = 1024
    num_samples: int = 10000
    ref_samples: int = 50000
    feature_model: str = ''
    inception_weights: str = ''
    inception_graph: str = ''
    reference_stats: str = ''
    save_stats: str = ''
    stats_dir: str = ''
    out: str = ''
    seed: int = 0
    batch: int = 100
    mixed_precision: str = 'none'

    PATHS = ('model', 'mnist_path', 'cifar_path', 'TFRecordPath', 'feature_model',
             'inception_weights', 'inception_graph', 'reference_stats', 'save_stats', 'stats_dir',
             'out')

    @property
    def source(self):
        """The real images compared with."""
        import dataset
        return dataset.DataSource.of(self)


def evaluate_generator(generator, config):
    """Every metric of generator against config's real images (or statistics file), as a dict,
    with the real-vs-real FID of two halves of the reference images as 'fid_floor' when known.
    The real images are read at the generator's size, so that like is compared with like."""
    import metrics
    source = dataclasses.replace(config.source, size=generator.output_shape[1])
    if generator.output_shape[-1] != source.channels:
        raise UsageError('the generator makes {}-channel images but --ImageType={} has {}: pass '
                         'the --ImageType it was trained on.'.format(
                             generator.output_shape[-1], source.image_type, source.channels))
    extractor = metrics.FeatureExtractor(*metrics.load_feature_model(
        config.feature_model, config.inception_weights, config.inception_graph))
    if config.reference_stats:
        reference = metrics.load_stats(config.reference_stats)
    else:
        images, n_images = source.load()
        reference = metrics.reference_features(
            extractor, images, min(config.ref_samples, n_images), source.identity(),
            source.stats_dir(config.stats_dir), config.batch)
    result = metrics.evaluate(generator, extractor, reference, config.num_samples, config.seed,
                              config.batch)
    features = reference.features
    result['fid_floor'] = (metrics.fid(features[::2], features[1::2])
                           if features is not None and len(features) >= 4 else None)
    if config.save_stats:
        reference.save_stats(config.save_stats)
    return result


def report(result, config):
    """The lines evaluate.py prints: every metric, and the scale of the FID."""
    lines = ['{} against {}:'.format(config.model, result['reference']),
             '  FID {fid:.4f}   KID {kid_mean:.5f} +- {kid_std:.5f}   precision {precision:.4f}   '
             'recall {recall:.4f}   IS {is_mean:.4f} +- {is_std:.4f}'.format(**result)]
    if result['fid_floor'] is not None:
        lines.append('  scale: two halves of the reference images score FID {:.4f} against each '
                     'other (the floor this many images allow); lower is better'.format(
                         result['fid_floor']))
    else:
        lines.append('  KID and precision/recall need the real images\' features, which a '
                     'statistics file does not hold: reported as NaN')
    lines.append('  {} generated images, features of {} ({} precision)'.format(
        result['num_samples'], result['feature_model'], result['protocol']['compute_dtype']))
    return lines


@errors.entry_point
def main(_argv):
    config = EvalConfig(**{f.name: files.expand_path(FLAGS[f.name].value)
                           if f.name in EvalConfig.PATHS else FLAGS[f.name].value
                           for f in dataclasses.fields(EvalConfig)})
    if not config.model:
        raise UsageError('pass --model=models/{SaveName}/generator.keras')
    for path in (config.out, config.save_stats):
        if path:
            files.check_output_file(path)
    # TensorFlow (5 s) loads here, once the flags and the output files are checked
    import dataset
    import devices
    import model
    devices.set_precision(config.mixed_precision)
    generator = model.load_generator(config.model, dataset.channels(config.ImageType),
                                     config.DisInSize, config.noise_dim, config.filters,
                                     given=[f for f in model.SHAPE_FLAGS if FLAGS[f].present])
    result = evaluate_generator(generator, config)
    result['model'] = config.model
    print('\n'.join(report(result, config)))
    if config.save_stats:
        print('wrote {} (mu and sigma, TTUR\'s format)'.format(config.save_stats))
    if config.out:
        with files.saving('the results', config.out) as tmp, open(tmp, 'w') as f:
            json.dump(result, f, indent=1)
        print('wrote {}'.format(config.out))


if __name__ == '__main__':
    app.run(main)
