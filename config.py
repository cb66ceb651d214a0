"""Every setting of the entry points, declared once: a field of a small frozen dataclass with its
default, help text and check. Each entry point defines its absl flags from its config class
(define_flags) and builds its one config value from the parsed flags (from_flags). Without
TensorFlow, so that flags parse and answer --help or a mistake before it loads (5 s).

Flag names, defaults and flags.json keys are the original script's and stay as they are; a new
setting is one field in the group it belongs to (docs/development.md)."""
import dataclasses
import math
import posixpath
import sys
import typing
from dataclasses import dataclass
from typing import Optional

from absl import flags
from absl import logging

from errors import UsageError
import files
import records

# --mixed_precision: Keras' global policy of each precision; auto picks one for the machine
POLICIES = {'none': 'float32', 'bf16': 'mixed_bfloat16', 'fp16': 'mixed_float16'}
PRECISIONS = list(POLICIES) + ['auto']
LOSSES = ['bce', 'hinge', 'ls']  # gan.discriminator_losses and generator_losses
ARCHS = ['seed', 'dcgan']  # model.Gen_Net and Dis_Net
UPDATE_ORDERS = ['simultaneous', 'alternating']  # gan.make_train_step
CONDITIONINGS = ['concat', 'projection']  # model.Gen_Net and Dis_Net with --conditional

# the feature models of the FID: Keras' InceptionV3 weights and TTUR's 2015 Inception graph
INCEPTION_FILE = 'inception_v3_weights_tf_dim_ordering_tf_kernels.h5'
INCEPTION_URL = ('https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/'
                 + INCEPTION_FILE)
GRAPH_FILE = 'classify_image_graph_def.pb'
GRAPH_URL = 'http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz'

PARTITION_CHOICES = list(records.PARTITIONS) + ['all']


def setting(default, help, choices=None, lower=None, upper=None, check=None, path=False,
            flag=None):
    """One setting: its default, its help (units and default), and what values it takes: choices,
    bounds, or check = (predicate, message); path: ~ and $VARS in it are expanded; flag: its flag's
    name where that is not the field's (a Python keyword: --class)."""
    return dataclasses.field(default=default, metadata=dict(
        help=help, choices=choices, lower=lower, upper=upper, check=check, path=path, flag=flag))


def flag_name(field):
    """The absl flag of a setting."""
    return field.metadata['flag'] or field.name


def positive(name):
    """The check of a learning rate: a positive, finite number (or None: the default)."""
    return (lambda v: v is None or 0 < v < math.inf), '--{} must be a positive number'.format(name)


# ----------------------------------------------------------------------------- groups

@dataclass(frozen=True)
class CelebaRoot:
    DatasetPath: str = setting(
        'YourDatasetPath', 'CelebA root: the official layout (Img/, Anno/, Eval/), torchvision\'s '
        'one folder, or Kaggle\'s CSV layout; or any folder of pictures (see convert_tfrecord.py '
        '--layout); read by convert_tfrecord.py, accepted by main.py as in the original script '
        '(default YourDatasetPath)', path=True)


@dataclass(frozen=True)
class Records:
    Partition: str = setting(
        'all', 'CelebA partition: train, val, test or all; main.py and evaluate.py read all three '
        'together, convert_tfrecord.py writes each to its own files (default all)',
        choices=PARTITION_CHOICES)
    TFRecordPath: str = setting(
        records.PLACEHOLDER_RECORDS, 'folder of the converted CelebA (or folder) records, where '
        'convert_tfrecord.py writes them with their manifest.json (default TFRecordFilePath, the '
        'original script\'s placeholder); with --ImageType=folder its name is the SaveName\'s',
        path=True)
    bbox: bool = setting(
        True, 'crop img_celeba faces by their bounding box (convert_tfrecord.py --image_size: '
        'store them so cropped; --nobbox: the centre square); ignored (reported False) for every '
        'other type (default True)')


@dataclass(frozen=True)
class ImageTypeSetting:
    ImageType: str = setting(
        'img_celeba', 'CelebA image type to train on; MNIST; digits (scikit-learn\'s 1,797 real '
        'handwritten digits, no download); cifar10; or folder (records converted from any folder '
        'of pictures with convert_tfrecord.py); evaluate.py: the real images compared with; '
        'generate.py: with a .weights.h5 file, 1 channel (MNIST, digits) or 3 (default '
        'img_celeba)', choices=list(records.IMAGE_TYPES))


@dataclass(frozen=True)
class ArrayFiles:
    mnist_path: str = setting('', 'local mnist.npz in Keras\' layout; empty (default) = Keras\' '
                              'download', path=True)
    cifar_path: str = setting(
        '', 'local CIFAR-10: the official cifar-10-python.tar.gz or -binary.tar.gz, or an npz in '
        'Keras\' layout; its reference statistics use the 50,000 training images, the common '
        'protocol; empty (default) = Keras\' download', path=True)


@dataclass(frozen=True)
class Shape:
    DisInSize: int = setting(64, 'image side in pixels fed to D and made by G: 32, 64 or 128; '
                             'evaluate.py and generate.py: with a .weights.h5 file (a '
                             'generator.keras knows its own) (default 64)', lower=32)
    noise_dim: int = setting(100, 'latent size (default 100)', lower=1)
    filters: int = setting(
        1024, 'width of the widest block, G\'s first and D\'s last, halved block by block '
        '(default 1024, the original\'s); 256 trained 12x faster on a 2-core CPU (bench.py '
        '--filters=256)', lower=1)
    arch: str = setting(
        'seed', 'network design: seed (the original\'s: LeakyReLU 0.3 in G and D, Dropout and a '
        'Dense layer in D, Keras\' default initialisation) or dcgan (Radford et al. 2016 and '
        'pytorch/examples\': ReLU in G, LeakyReLU 0.2 in D, no Dropout and no Dense layer, N(0, '
        '0.02) kernels, no biases) (default seed)', choices=ARCHS)
    conditional: bool = setting(
        False, 'train G and D on the labels of the data, to draw the class asked for: digits\', '
        'MNIST\'s and CIFAR-10\'s classes, a converted folder\'s subfolders, or with CelebA types '
        'the --attributes; evaluate.py and generate.py need not be told: a generator is '
        'conditional when the conditions.json of its run is beside it (default False)')
    conditioning: str = setting(
        'concat', 'how the condition enters the networks with --conditional: concat (beside G\'s '
        'noise, and as more channels of D\'s input image) or projection (conditional BatchNorm in '
        'G, a projection discriminator: Miyato & Koyama 2018) (default concat: on the digits it '
        'drew the asked digit from epoch 5 on, at a 23% lower FID than projection; '
        'docs/recipes.md)', choices=CONDITIONINGS)


@dataclass(frozen=True)
class Attributes:
    attributes: str = setting(
        '', 'CelebA attributes, a comma list of the 40 names of list_attr_celeba.txt: main.py '
        '--conditional conditions on them (e.g. Male,Smiling,Eyeglasses); generate.py draws them '
        'on, or off with a - (e.g. Male,-Smiling; the others at random) (default: none)')


# the settings that shape a generator: a .weights.h5 file needs them (from flags.json, or given);
# each with the value that a run saved before it existed had (its default)
SHAPE_FLAGS = {f.name: f.default for f in dataclasses.fields(ImageTypeSetting)
               + dataclasses.fields(Shape)}
# the same, as a sentence for messages: '--ImageType, --DisInSize, ... and --arch'
_SHAPE_NAMES = ['--' + name for name in SHAPE_FLAGS]
SHAPE_FLAG_LIST = ', '.join(_SHAPE_NAMES[:-1]) + ' and ' + _SHAPE_NAMES[-1]


# the settings that shape the networks of a run: a resumed run keeps them
RUN_SHAPE_FLAGS = dict(SHAPE_FLAGS, attributes='')


@dataclass(frozen=True)
class Outputs:
    LOG_PATH: str = setting('logs/', 'folder for the CSV loss logs and TensorBoard (default logs/)',
                            path=True)
    MODEL_PATH: str = setting('models/', 'folder for weights and checkpoints (default models/)',
                              path=True)


@dataclass(frozen=True)
class PlotPath:
    PLOT_PATH: str = setting('plot/', 'folder for the per-epoch sample grids (default plot/)',
                             path=True)


@dataclass(frozen=True)
class Training:
    BATCH_SIZE: int = setting(128, 'global batch size in images, over all replicas (default 128)',
                              lower=1)
    lr: float = setting(2e-4, 'Adam learning rate (beta_1 0.5) of both networks, divided by 10 '
                        'after the epochs of --lr_decay_epochs (default 2e-4)', check=positive('lr'))
    epochs: int = setting(35, 'number of epochs (default 35)', lower=1)
    # recipe settings beyond the seed: off, or the seed's values, by default (docs/recipes.md)
    lr_G: Optional[float] = setting(None, 'generator learning rate (default: --lr)',
                                    check=positive('lr_G'))
    lr_D: Optional[float] = setting(None, 'discriminator learning rate (default: --lr); a larger '
                                    'lr_D than lr_G is TTUR (Heusel et al. 2017)',
                                    check=positive('lr_D'))
    lr_decay_epochs: str = setting('10,20,25', 'epochs after which both learning rates are divided '
                                   'by 10 (default 10,20,25, the original\'s); empty = constant')
    dropout: float = setting(
        0.3, 'rate of the discriminator\'s Dropout layers (default 0.3, the original\'s; '
        '--arch=dcgan has none); 0 let D learn faster and G draw better digits in docs/recipes.md',
        check=(lambda v: 0 <= v < 1, '--dropout must be a rate from 0 to below 1'))
    loss: str = setting(
        'bce', 'GAN loss: bce (the original\'s binary cross-entropy on D\'s probability), hinge '
        '(on D\'s logit, as SN-GAN) or ls (least squares on D\'s logit) (default bce)',
        choices=LOSSES)
    update_order: str = setting(
        'simultaneous', 'simultaneous (the original\'s: G and D step from the same D) or '
        'alternating (D steps first, then G against the updated D, as pytorch/examples) '
        '(default simultaneous)', choices=UPDATE_ORDERS)
    spectral_norm: bool = setting(
        False, 'spectral normalization of every convolution and the dense layer of D, one power '
        'iteration a step, and no BatchNorm in D, as SN-DCGAN (default False)')
    r1: float = setting(
        0.0, 'gamma of the R1 penalty, gamma / 2 times the squared gradient of D\'s logit at the '
        'real images, added to D\'s loss every step (0 = off, default); e.g. 0.01 at 32 px',
        lower=0)
    ema: float = setting(
        0.0, 'decay of an exponential moving average of the generator\'s weights, e.g. 0.999, '
        'ramped up over the first steps; the sample grids, --eval_every, best/ and '
        'generator.keras then use the average (0 = off, default)',
        check=(lambda v: 0 <= v < 1, '--ema must be 0 (off) or a decay below 1, e.g. 0.999'))
    standing_stats: bool = setting(
        False, 'sample, evaluate and export the generator with BatchNorm statistics recomputed '
        'for its current weights on 512 fixed latents (BigGAN\'s standing statistics) instead of '
        'the moving averages of training, which lag behind the weights (default False, as the '
        'original; always on with --ema)')
    augment: str = setting(
        '', 'DiffAugment policies applied to real and generated images before every '
        'discriminator call, a comma list of color, translation, cutout (empty = off, default); '
        'for datasets of a few thousand images or fewer')
    steps_per_epoch: int = setting(0, 'batches per epoch; 0 (default) = the whole dataset',
                                   lower=0)
    save_every: int = setting(15, 'save .weights.h5 files every N epochs and after the last '
                              '(default 15)', lower=1)
    resume: bool = setting(True, 'continue from the latest checkpoint of this SaveName (default '
                           'True); --noresume moves the old run aside and starts fresh')
    seed: Optional[int] = setting(None, 'random seed for weights, data order and noise; default: a '
                                  'random one, recorded in flags.json and reused on resume',
                                  lower=0, upper=2 ** 32 - 1)
    keep_checkpoints: int = setting(3, 'how many end-of-epoch checkpoints to keep (default 3)',
                                    lower=1)
    tensorboard: bool = setting(True, 'write TensorBoard logs to {LOG_PATH}/tensorboard/{SaveName} '
                                '(default True)')
    log_every: int = setting(50, 'steps between TensorBoard scalar points (default 50)', lower=1)
    export_only: bool = setting(False, 'export the latest checkpoint\'s generator to '
                                'generator.keras and exit, without training (default False)')
    jit: bool = setting(False, 'compile train_step with XLA; drops the last partial batch so '
                        'shapes stay static (default False)')
    cache: bool = setting(False, 'keep the decoded images in memory after the first epoch '
                          '(default False)')
    shuffle_buffer: int = setting(1000, 'shuffle buffer in images (default 1000; the original used '
                                  '300)', lower=0)
    strategy: str = setting('default', 'tf.distribute strategy: default (one device), mirrored '
                            '(all GPUs of this machine), multi_worker (machines named by '
                            'TF_CONFIG) (default default)',
                            choices=['default', 'mirrored', 'multi_worker'])
    sync_bn: bool = setting(False, 'synchronise BatchNorm statistics across replicas (default '
                            'False)')
    steps_per_loop: int = setting(
        1, 'train steps run inside one tf.function call before the host reads the metrics; '
        'progress bar, TensorBoard points, the NaN check and Ctrl-C act every N steps (default 1; '
        'try 10-50 on a GPU, see bench.py)', lower=1)
    eval_every: int = setting(
        0, 'measure FID, KID, precision/recall and IS every N epochs into '
        '{LOG_PATH}/{SaveName}-eval.csv, keeping the best generator in '
        '{MODEL_PATH}/{SaveName}/best/; 0 (default) = never', lower=0)
    eval_samples: int = setting(10000, 'generated images per evaluation of --eval_every (default '
                                '10,000)', lower=4)


@dataclass(frozen=True)
class Precision:
    mixed_precision: str = setting(
        'none', 'Keras mixed-precision policy of the networks (evaluate.py: of the feature '
        'model); fp16 adds loss scaling; auto picks per machine and logs why: bf16 on GPUs of '
        'compute capability 8.0+ and on CPUs with bf16 instructions where a bf16 convolution '
        'measures 1.15x fp32 or more, fp16 on 7.x GPUs, else fp32 (default none)',
        choices=PRECISIONS)


@dataclass(frozen=True)
class Metrics:
    ref_samples: int = setting(50000, 'real images for the reference statistics (default 50,000, '
                               'or all there are if fewer), at least 4', lower=4)
    feature_model: str = setting(
        '', 'a saved .keras model mapping images in [-1, 1] to feature vectors (and, as a second '
        'output, class probabilities for IS) (default: Keras\' InceptionV3 with ImageNet '
        'weights)', path=True)
    inception_weights: str = setting(
        '', 'local copy of Keras\' ' + INCEPTION_FILE + ' for machines without internet '
        '(default: Keras\' download, cached)', path=True)
    inception_graph: str = setting(
        '', 'TTUR\'s Inception graph, ' + GRAPH_FILE + ' from ' + GRAPH_URL + ': FIDs on the '
        'published protocol (default: none, Keras\' InceptionV3)', path=True)
    reference_stats: str = setting(
        '', 'a TTUR-format statistics file (mu, sigma), e.g. fid_stats_cifar10_train.npz, as the '
        'real side of the FID; KID and precision/recall are then NaN (default: none, the real '
        'images)', path=True)
    stats_dir: str = setting('', 'folder caching the reference statistics (default: fid_stats/ '
                             'beside the records or the npz, else ./fid_stats)', path=True)


@dataclass(frozen=True)
class GeneratorFile:
    model: str = setting('', 'generator.keras written by main.py, or a Generator.weights.h5 file '
                         '(its shape flags come from the flags.json beside it, or from '
                         + SHAPE_FLAG_LIST + ')',
                         path=True)


@dataclass(frozen=True)
class LatentSeed:
    seed: int = setting(0, 'random seed of the latents, 0 to 2^32 - 1; the same seed gives the '
                        'same images (default 0)', lower=0, upper=2 ** 32 - 1)


@dataclass(frozen=True)
class ChosenClass:
    class_name: str = setting(
        '', 'with a conditional generator: the class to draw, by name (7, ship, a subfolder\'s name) '
        'or index; two, e.g. 3,8, with --interpolate: walks from one to the other at fixed latents '
        '(default: a row of every class)', flag='class')


@dataclass(frozen=True)
class Evaluation:
    num_samples: int = setting(
        10000, 'generated images to measure (default 10,000; the published FID protocol uses '
        '50,000), at least 4 (precision and recall need k + 1 = 4) and at most 1,000,000 (their '
        'features alone take 8 GB)', lower=4, upper=10 ** 6)
    save_stats: str = setting('', 'also write the real images\' mu and sigma in TTUR\'s format to '
                              'this .npz (default: none)', path=True)
    out: str = setting('', 'also write the results as JSON to this file (default: none)',
                       path=True)
    batch: int = setting(100, 'images per feature-extraction batch (default 100)', lower=1)


@dataclass(frozen=True)
class Sampling:
    out: str = setting('samples.png', 'output picture, .png (default samples.png), .jpg, .pdf or '
                       '.svg', path=True)
    rows: int = setting(4, 'grid rows, 1 to 100; with --interpolate, the number of walks (default '
                        '4)', lower=1, upper=100)
    cols: int = setting(4, 'grid columns, 1 to 100 (default 4)', lower=1, upper=100)
    interpolate: bool = setting(False, 'rows of spherical interpolation between pairs of random '
                                'latents instead of a grid (default False)')
    steps: int = setting(8, 'points per interpolation row, endpoints included, 2 to 100 (default '
                         '8)', lower=2, upper=100)
    arithmetic: str = setting('', 'A-B+C: comma-separated sample indices of the --seed grid per '
                              'group, e.g. 3,7,12-1,4,9+0,5,6; B may be empty (default: none)')
    save_latents: bool = setting(False, 'also write the latents drawn to {out}.npy (default '
                                 'False)')


EXPORT_FORMATS = ['saved_model', 'tflite', 'onnx']  # export.py's writers


@dataclass(frozen=True)
class Exporting:
    format: tuple = setting(tuple(EXPORT_FORMATS), 'comma list of saved_model (TF Serving, '
                            'Vertex AI), tflite (float32, and float16 weights where they hold), '
                            'onnx; empty = none (default all three)',
                            check=(lambda v: set(v) <= set(EXPORT_FORMATS),
                                   '--format takes saved_model, tflite and onnx'))
    out: str = setting('export', 'folder the exports are written to (default export)', path=True)
    web: str = setting('', 'also write a page that draws with the generator in the browser to this '
                       'folder: index.html, the ONNX model and onnxruntime-web (default: none)',
                       path=True)
    web_runtime: str = setting(
        'node_modules/onnxruntime-web/dist', 'folder of onnxruntime-web\'s browser files, as '
        '`npm install` in this repository puts them (default node_modules/onnxruntime-web/dist)',
        path=True)


@dataclass(frozen=True)
class Conversion:
    layout: str = setting(
        'auto', 'auto (default): a CelebA layout when its annotation files are there, else a '
        'plain folder of pictures; folder: convert every picture under --DatasetPath '
        '(recursively) even if CelebA files are present', choices=['auto', 'folder'])
    ImageTypes: tuple = setting((), 'image types to store, from img_celeba, img_align_celeba, '
                                'img_align_celeba_png; default (empty): every image folder that '
                                'is present')
    shard_mb: float = setting(150.0, 'target shard size in MB of image bytes (default 150); 0 = '
                              'one image per shard')
    workers: int = setting(0, 'parallel worker processes; 0 (default) = one per CPU core')
    overwrite: bool = setting(False, 'redo finished shards instead of resuming (default False)')
    image_size: str = setting(
        '0', 'crop and resize every image for training at this --DisInSize and store it as raw '
        'uint8 pixels instead of the encoded file: img_celeba\'s bbox crop (see --bbox), the '
        'centre square otherwise, area-averaged as main.py does; no JPEG decoding while '
        'training; 0 (default) = store the files as they are', choices=['0', '32', '64', '128'])
    max_megapixels: float = setting(
        64.0, 'skip, and list, pictures of more megapixels than this (width x height / 10^6; '
        'default 64, a 48-megapixel phone photo passes): one of 400 took 2 GB to decode in '
        'training, and a tiny file can claim a huge image (a decompression bomb)', lower=0.001)
    verify: bool = setting(False, 're-read every shard of --TFRecordPath, decode every image and '
                           'check the counts against manifest.json, then exit (default False)')


@dataclass(frozen=True)
class Plotting:
    out_dir: str = setting('plot/', 'folder for the PNG plots and GIFs (default plot/, main.py\'s '
                           '--PLOT_PATH, beside the sample-grid folders)', path=True)
    name: str = setting('', 'file-name prefix of the plots; default: the SaveName of a single CSV, '
                        '"comparison" for several')
    gif: bool = setting(False, 'also animate {PLOT_PATH}/{SaveName}/*.png into '
                        '{out_dir}/{SaveName}.gif, one labelled frame per epoch (default False)')
    frame_seconds: float = setting(0.3, 'GIF frame duration in seconds (default 0.3)')


@dataclass(frozen=True)
class Benchmark:
    modes: tuple = setting((), 'train_step modes to time, from fp32, bf16, fp16, jit, jit_bf16, '
                           'jit_fp16; default: all on a GPU, all but fp16 on a CPU (its fp16 '
                           'kernels are very slow without XLA)')
    batch: int = setting(64, 'batch size of the timed steps and pipelines (default 64)', lower=1)
    size: int = setting(64, 'image side, the original\'s DisInSize (default 64)')
    steps: int = setting(6, 'timed train steps per mode, after the warm-up (default 6)')
    warmup: int = setting(2, 'untimed steps per mode: tracing and XLA compilation (default 2)')
    pipeline_batches: int = setting(200, 'timed batches per pipeline: ten times the original\'s '
                                    'prefetch(20), so that a full prefetch buffer hardly counts '
                                    '(default 200)')
    repeats: int = setting(2, 'timed runs of each pipeline, interleaved; the best counts (default '
                           '2)')
    celeba_images: int = setting(600, 'CelebA-layout images to generate when no --bench_celeba is '
                                 'given (default 600)')
    bench_celeba: str = setting('', 'a CelebA folder to convert and read, for example the real '
                                'one (default: generate --celeba_images images)', path=True)
    bench_mnist: str = setting('', 'a Keras-layout mnist.npz (default: generate 8,192 digits)',
                               path=True)
    loops: tuple = setting(('1', '4', '16'), 'steps per loop to time in the dispatch section, at '
                           'DisInSize 32, batch 16, fp32 (default 1,4,16)')
    loop_steps: int = setting(32, 'timed steps per steps-per-loop value (default 32)')
    filters: int = setting(1024, 'main.py\'s --filters for the timed train modes and the dispatch '
                           'section; when not the original 1024, fp32 at 1024 is timed too, for '
                           'the ratio (default 1024)')
    inception_images: int = setting(64, 'images timed through InceptionV3 at 299x299 (default '
                                    '64)', lower=1)


# ----------------------------------------------------------------------------- entry points

@dataclass(frozen=True)
class DataChoice:
    """The real images a config names (main.py's and evaluate.py's)."""

    @property
    def source(self):
        """The real images of this config, at its --DisInSize (a dataset.DataSource)."""
        import dataset
        return dataset.source(self.ImageType, self.DisInSize, partition=self.Partition,
                              bbox=self.bbox, tfrecord_dir=self.TFRecordPath,
                              array_path={'MNIST': self.mnist_path,
                                          'cifar10': self.cifar_path}.get(self.ImageType, ''))


@dataclass(frozen=True)
class TrainConfig(Precision, Metrics, Training, PlotPath, Outputs, Attributes, Shape, ArrayFiles,
                  ImageTypeSetting, Records, CelebaRoot, DataChoice):
    """Everything one training run depends on (main.py)."""

    @property
    def decay_epochs(self):
        """--lr_decay_epochs as a tuple of epochs; () = a constant learning rate."""
        import utils
        return utils.parse_epochs(self.lr_decay_epochs, '--lr_decay_epochs')

    @property
    def save_name(self):
        """The seed's SaveName, e.g. MNIST-False or img_celeba-True (a folder's: its name)."""
        return self.source.name

    @property
    def condition(self):
        """The conditions.Condition that --conditional trains on (None without it)."""
        if not self.conditional:
            if self.attributes:
                raise UsageError('--attributes={} conditions a run only with --conditional: add '
                                 'it.'.format(self.attributes))
            return None
        return self.source.condition(self.attributes)


@dataclass(frozen=True)
class EvalConfig(Evaluation, LatentSeed, Precision, Metrics, Shape, ArrayFiles, Records,
                 ImageTypeSetting, GeneratorFile, DataChoice):
    """What one evaluation depends on (evaluate.py)."""


@dataclass(frozen=True)
class SampleConfig(Sampling, ChosenClass, Attributes, LatentSeed, Shape, ImageTypeSetting,
                   GeneratorFile):
    """What one call of generate.py draws."""


@dataclass(frozen=True)
class ExportConfig(Exporting, LatentSeed, Shape, ImageTypeSetting, GeneratorFile):
    """One export of a generator (export.py)."""


@dataclass(frozen=True)
class ConvertConfig(Conversion, Records, CelebaRoot):
    """One conversion to records (convert_tfrecord.py)."""


@dataclass(frozen=True)
class PlotConfig(Plotting, PlotPath):
    """The plots of plot_logs.py (its CSV files are its positional arguments)."""


@dataclass(frozen=True)
class BenchConfig(Benchmark):
    """What bench.py times."""


# ----------------------------------------------------------------------------- absl flags

def define_flags(config_class, module_name, flag_values=flags.FLAGS):
    """Define an absl flag for each field of config_class, as belonging to module_name (the entry
    point's __name__: its --helpshort lists them). A flag already defined by the same setting
    (two entry points imported by one process) is kept."""
    if module_name == '__main__':
        module_name = sys.argv[0]  # as absl names the main module
    for field in dataclasses.fields(config_class):
        meta, name = field.metadata, flag_name(field)
        if name in flag_values:
            if not flag_values[name].help.endswith(meta['help']):  # (enums: '<a|b>: ' first)
                raise ValueError('--{} is already defined as another setting'.format(name))
            continue
        args = dict(flag_values=flag_values, module_name=module_name)
        kind = kind_of(field)
        if meta['choices']:
            flags.DEFINE_enum(name, field.default, meta['choices'], meta['help'], **args)
        elif kind is bool:
            flags.DEFINE_boolean(name, field.default, meta['help'], **args)
        elif kind is tuple:
            flags.DEFINE_list(name, list(field.default), meta['help'], **args)
        else:
            define = flags.DEFINE_integer if kind is int else (
                flags.DEFINE_float if kind is float else flags.DEFINE_string)
            bounds = dict(lower_bound=meta['lower'], upper_bound=meta['upper']) \
                if kind in (int, float) else {}
            define(name, field.default, meta['help'], **bounds, **args)
        if meta['check']:
            flags.register_validator(name, meta['check'][0], meta['check'][1],
                                     flag_values=flag_values)


def kind_of(field):
    """The Python type of a field's values: Optional[X] is X."""
    args = [a for a in typing.get_args(field.type) if a is not type(None)]
    return args[0] if args else field.type


def from_flags(config_class, flag_values=flags.FLAGS):
    """The config value of the parsed flags, with ~ and $VARS in path settings expanded."""
    values = {}
    for field in dataclasses.fields(config_class):
        value = flag_values[flag_name(field)].value
        if field.metadata['path']:
            value = files.expand_path(value)
        elif kind_of(field) is tuple:
            value = tuple(value)
        values[field.name] = value
    return config_class(**values)


def cluster_outputs(settings, environ, flag_values=flags.FLAGS):
    """settings with the output folders a Vertex AI custom job names in environ where their flags
    were not given: --MODEL_PATH=$AIP_MODEL_DIR, --LOG_PATH=$AIP_TENSORBOARD_LOG_DIR (CSVs and
    TensorBoard) and --PLOT_PATH=plot/ beside $AIP_MODEL_DIR. (The checkpoints stay in the model
    folder, beside the flags they resume with: AIP_CHECKPOINT_DIR is not used.)"""
    model_dir = environ.get('AIP_MODEL_DIR', '').rstrip('/')
    places = dict(MODEL_PATH=model_dir, LOG_PATH=environ.get('AIP_TENSORBOARD_LOG_DIR', ''),
                  PLOT_PATH=model_dir and posixpath.join(posixpath.dirname(model_dir), 'plot'))
    chosen = {k: v for k, v in places.items() if v and k not in given(places, flag_values)}
    for name, value in sorted(chosen.items()):
        logging.info('--%s=%s (from the Vertex AI job\'s AIP_* variables)', name, value)
    return dataclasses.replace(settings, **chosen)


def given(names, flag_values=flags.FLAGS):
    """Which of the settings names the user passed on the command line."""
    return [name for name in names if flag_values[name].present]
