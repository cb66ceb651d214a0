"""Train the original script's DCGAN on MNIST, scikit-learn's digits or CelebA TFRecords: python main.py [flags]."""
import dataclasses
import math
import os
import sys

import interrupts  # noqa: E402

interrupts.guard_start_up()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ info lines off by default
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import config  # noqa: E402
import records  # noqa: E402
import errors  # noqa: E402
import files  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string('DatasetPath', 'YourDatasetPath',
                    'CelebA root; used by convert_tfrecord.py, accepted here as in the original script')
flags.DEFINE_enum('Partition', 'all', ['train', 'val', 'test', 'all'],
                  'CelebA partition to train on; all = train, val and test together (default all)')
flags.DEFINE_enum('ImageType', 'img_celeba',
                  ['img_celeba', 'img_align_celeba', 'img_align_celeba_png', 'MNIST', 'digits',
                   'cifar10', 'folder'],
                  'CelebA image type to train on; MNIST; digits (scikit-learn\'s 1,797 real '
                  'handwritten digits, no download); cifar10; or folder (records converted from '
                  'any folder of pictures with convert_tfrecord.py) (default img_celeba)')
flags.DEFINE_boolean('bbox', True, 'crop img_celeba faces by their bounding box; ignored (reported '
                     'False) for every other type (default True)')
flags.DEFINE_string('TFRecordPath', records.PLACEHOLDER_RECORDS, 'folder of the converted CelebA '
                    '(or folder) records (default TFRecordFilePath, the original script\'s placeholder); '
                    'with --ImageType=folder its name is the SaveName\'s')
flags.DEFINE_string('LOG_PATH', 'logs/', 'folder for the CSV loss logs and TensorBoard (default logs/)')
flags.DEFINE_string('MODEL_PATH', 'models/', 'folder for weights and checkpoints (default models/)')
flags.DEFINE_string('PLOT_PATH', 'plot/', 'folder for the per-epoch sample grids (default plot/)')
flags.DEFINE_integer('DisInSize', 64, 'image side in pixels fed to D and made by G: 32, 64 or 128 '
                     '(default 64)', lower_bound=32)
flags.DEFINE_integer('noise_dim', 100, 'latent size (default 100)', lower_bound=1)
flags.DEFINE_integer('filters', 1024, 'width of the widest block, G\'s first and D\'s last, halved '
                     'block by block (default 1024, the original\'s); 256 trained 12x faster on a '
                     '2-core CPU (bench.py --filters=256)', lower_bound=1)
flags.DEFINE_integer('BATCH_SIZE', 128, 'global batch size in images, over all replicas (default 128)',
                     lower_bound=1)
flags.DEFINE_float('lr', 2e-4, 'Adam learning rate (beta_1 0.5) of both networks, divided by 10 '
                   'after the epochs of --lr_decay_epochs (default 2e-4)')
flags.DEFINE_integer('epochs', 35, 'number of epochs (default 35)', lower_bound=1)

# recipe flags beyond the seed: off, or the seed's values, by default (see docs/recipes.md)
flags.DEFINE_float('lr_G', None, 'generator learning rate (default: --lr)')
flags.DEFINE_float('lr_D', None, 'discriminator learning rate (default: --lr); a larger lr_D than '
                   'lr_G is TTUR (Heusel et al. 2017)')
flags.DEFINE_string('lr_decay_epochs', '10,20,25', 'epochs after which both learning rates are '
                    'divided by 10 (default 10,20,25, the original\'s); empty = constant')
flags.DEFINE_float('dropout', 0.3, 'rate of the discriminator\'s Dropout layers (default 0.3, the '
                   'original\'s); 0 let D learn faster and G draw better digits in docs/recipes.md')
flags.DEFINE_float('ema', 0.0, 'decay of an exponential moving average of the generator\'s weights, '
                   'e.g. 0.999, ramped up over the first steps; the sample grids, --eval_every, '
                   'best/ and generator.keras then use the average (0 = off, default)')
flags.DEFINE_boolean('standing_stats', False, 'sample, evaluate and export the generator with '
                     'BatchNorm statistics recomputed for its current weights on 512 fixed latents '
                     '(BigGAN\'s standing statistics) instead of the moving averages of training, '
                     'which lag behind the weights (default False, as the original; always on with '
                     '--ema)')
flags.DEFINE_string('augment', '', 'DiffAugment policies applied to real and generated images before '
                    'every discriminator call, a comma list of color, translation, cutout '
                    '(empty = off, default); for datasets of a few thousand images or fewer')

flags.DEFINE_string('mnist_path', '', 'local mnist.npz in Keras\' layout; empty (default) = Keras\' '
                    'download')
flags.DEFINE_string('cifar_path', '', 'local CIFAR-10: the official cifar-10-python.tar.gz or -binary.tar.gz, or an npz '
                    'in Keras\' layout; empty (default) = Keras\' download')
flags.DEFINE_integer('steps_per_epoch', 0, 'batches per epoch; 0 (default) = the whole dataset',
                     lower_bound=0)
flags.DEFINE_integer('save_every', 15, 'save .weights.h5 files every N epochs and after the last '
                     '(default 15)', lower_bound=1)
flags.DEFINE_boolean('resume', True, 'continue from the latest checkpoint of this SaveName '
                     '(default True); --noresume moves the old run aside and starts fresh')
flags.DEFINE_integer('seed', None, 'random seed for weights, data order and noise; default: a '
                     'random one, recorded in flags.json and reused on resume',
                     lower_bound=0, upper_bound=2 ** 32 - 1)
flags.DEFINE_integer('keep_checkpoints', 3, 'how many end-of-epoch checkpoints to keep (default 3)',
                     lower_bound=1)
flags.DEFINE_boolean('tensorboard', True, 'write TensorBoard logs to {LOG_PATH}/tensorboard/{SaveName} '
                     '(default True)')
flags.DEFINE_integer('log_every', 50, 'steps between TensorBoard scalar points (default 50)',
                     lower_bound=1)
flags.DEFINE_boolean('export_only', False, 'export the latest checkpoint\'s generator to '
                     'generator.keras and exit, without training (default False)')
flags.DEFINE_boolean('jit', False, 'compile train_step with XLA; drops the last partial batch so '
                     'shapes stay static (default False)')
flags.DEFINE_enum('mixed_precision', 'none', config.PRECISIONS,
                  'Keras mixed-precision policy; fp16 adds loss scaling; auto picks per machine and '
                  'logs why: bf16 on GPUs of compute capability 8.0+ and on CPUs with bf16 '
                  'instructions where a bf16 convolution measures 1.15x fp32 or more, fp16 on 7.x '
                  'GPUs, else fp32 (default none)')
flags.DEFINE_boolean('cache', False, 'keep the decoded images in memory after the first epoch '
                     '(default False)')
flags.DEFINE_integer('shuffle_buffer', 1000, 'shuffle buffer in images (default 1000; the original used 300)',
                     lower_bound=0)
flags.DEFINE_enum('strategy', 'default', ['default', 'mirrored', 'multi_worker'],
                  'tf.distribute strategy: default (one device), mirrored (all GPUs of this '
                  'machine), multi_worker (machines named by TF_CONFIG) (default default)')
flags.DEFINE_integer('steps_per_loop', 1, 'train steps run inside one tf.function call before the '
                     'host reads the metrics; progress bar, TensorBoard points, the NaN check and '
                     'Ctrl-C act every N steps (default 1; try 10-50 on a GPU, see bench.py)',
                     lower_bound=1)
flags.DEFINE_integer('eval_every', 0, 'measure FID, KID, precision/recall and IS every N epochs into '
                     '{LOG_PATH}/{SaveName}-eval.csv, keeping the best generator in '
                     '{MODEL_PATH}/{SaveName}/best/; 0 (default) = never', lower_bound=0)
flags.DEFINE_integer('eval_samples', 10000, 'generated images per evaluation (default 10,000)',
                     lower_bound=4)
flags.DEFINE_integer('ref_samples', 50000, 'real images for the reference statistics (default '
                     '50,000, or all if fewer)', lower_bound=4)
flags.DEFINE_string('feature_model', '', 'saved .keras feature model for the evaluation (default: '
                    'Keras\' InceptionV3 with ImageNet weights); see evaluate.py')
flags.DEFINE_string('inception_weights', '', 'local copy of Keras\' InceptionV3 ImageNet weights '
                    'for machines without internet (default: Keras\' download)')
flags.DEFINE_string('inception_graph', '', 'TTUR\'s Inception graph (classify_image_graph_def.pb) as '
                    'the feature model of --eval_every: FIDs on the published protocol (default: '
                    'none); see evaluate.py')
flags.DEFINE_string('reference_stats', '', 'a TTUR-format statistics file (mu, sigma) as the real '
                    'side of --eval_every\'s FID; KID and precision/recall are then NaN (default: '
                    'none, the training images)')
flags.DEFINE_string('stats_dir', '', 'folder caching the reference statistics (default: fid_stats/ '
                    'beside the records or the npz, else ./fid_stats)')
flags.DEFINE_boolean('sync_bn', False, 'synchronise BatchNorm statistics across replicas '
                     '(default False)')

for _name in ('lr', 'lr_G', 'lr_D'):
    flags.register_validator(_name, lambda v: v is None or 0 < v < math.inf,
                             '--{} must be a positive number'.format(_name))
flags.register_validator('dropout', lambda v: 0 <= v < 1, '--dropout must be a rate from 0 to '
                         'below 1')
flags.register_validator('ema', lambda v: 0 <= v < 1, '--ema must be 0 (off) or a decay below 1, '
                         'e.g. 0.999')


# flags that name files or folders: ~ and $VARS in them are expanded
PATH_FLAGS = ('DatasetPath', 'TFRecordPath', 'LOG_PATH', 'MODEL_PATH', 'PLOT_PATH', 'mnist_path',
              'cifar_path', 'feature_model', 'inception_weights', 'inception_graph',
              'reference_stats', 'stats_dir')


def config_from_flags():
    """The run's Config from the parsed flags (same names), with ~ and $VARS in paths expanded."""
    import trainer
    return trainer.Config(**{f.name: files.expand_path(FLAGS[f.name].value)
                             if f.name in PATH_FLAGS else FLAGS[f.name].value
                             for f in dataclasses.fields(trainer.Config)})


@errors.entry_point
def main(_argv):
    # TensorFlow (5 s) loads here, once the flags are parsed: --help and a mistyped flag answer
    # at once, and Ctrl-C while it loads is the boundary's one-line stop
    import devices
    import trainer
    devices.configure_tensorflow()
    try:
        trainer.train(config_from_flags())
    except trainer.Stopped as e:
        print('Stopped by {}'.format(e), flush=True)
        sys.exit(128 + e.signum)


if __name__ == '__main__':
    app.run(main)
