"""The training run as a Trainer with hooks: one Config in, CSV, grids, checkpoints and exports out."""
import contextlib
import dataclasses
import fcntl
import json
import math
import os
import shutil
import signal
import socket
import tempfile
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from tqdm import tqdm

import dataset
import metrics
import model
import utils
from utils import UsageError

# flags that shape the networks: a checkpoint made with other values cannot be restored
SHAPE_FLAGS = ('ImageType', 'DisInSize', 'noise_dim', 'filters')
POLICIES = {'none': 'float32', 'bf16': 'mixed_bfloat16', 'fp16': 'mixed_float16'}
# the seed's placeholder for --TFRecordPath: nothing was converted yet
PLACEHOLDER_RECORDS = 'TFRecordFilePath'


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything one training run depends on; field names and defaults are main.py's flags."""
    DatasetPath: str = 'YourDatasetPath'
    Partition: str = 'all'
    ImageType: str = 'img_celeba'
    bbox: bool = True
    TFRecordPath: str = PLACEHOLDER_RECORDS
    LOG_PATH: str = 'logs/'
    MODEL_PATH: str = 'models/'
    PLOT_PATH: str = 'plot/'
    DisInSize: int = 64
    noise_dim: int = 100
    filters: int = 1024
    BATCH_SIZE: int = 128
    lr: float = 2e-4
    epochs: int = 35
    mnist_path: str = ''
    cifar_path: str = ''
    steps_per_epoch: int = 0
    save_every: int = 15
    resume: bool = True
    seed: Optional[int] = None
    keep_checkpoints: int = 3
    tensorboard: bool = True
    log_every: int = 50
    export_only: bool = False
    jit: bool = False
    mixed_precision: str = 'none'
    cache: bool = False
    shuffle_buffer: int = 1000
    strategy: str = 'default'
    sync_bn: bool = False
    steps_per_loop: int = 1
    eval_every: int = 0
    eval_samples: int = 10000
    ref_samples: int = 50000
    feature_model: str = ''
    inception_weights: str = ''
    stats_dir: str = ''

    @property
    def crop_bbox(self):
        """Whether faces are cropped by their bounding box: only img_celeba with --bbox."""
        return self.bbox and self.ImageType == 'img_celeba'

    @property
    def save_name(self):
        """The seed's SaveName, e.g. MNIST-False or img_celeba-True; a folder's records give
        their folder's name (records/my_images -> my_images-False)."""
        if self.ImageType == 'folder':
            return '{}-False'.format(os.path.basename(os.path.normpath(self.TFRecordPath)))
        return '{}-{}'.format(self.ImageType, self.crop_bbox)

    @property
    def array_path(self):
        """The file of an array dataset (MNIST or CIFAR-10); empty for Keras' download."""
        return {'MNIST': self.mnist_path, 'cifar10': self.cifar_path}.get(self.ImageType, '')


def configure_tensorflow():
    """Process-wide TensorFlow settings for training; entry points call this once in main().

    TF 2.21's grappler remapper fails on this graph's LeakyReLU gradient, logs an error and drops
    its rewrites anyway: switching it off changes no speed (measured) and no output.
    """
    tf.config.optimizer.set_experimental_options({'remapping': False})


def conv_speedup(repeats=3):
    """How many times faster a convolution of the discriminator's shape runs in bf16 than in fp32
    on this CPU (a quarter of a second to measure)."""
    times = {}
    for dtype in (tf.float32, tf.bfloat16):
        x = tf.cast(tf.random.uniform([16, 16, 16, 256]), dtype)
        kernel = tf.cast(tf.random.uniform([4, 4, 256, 512]), dtype)
        conv = tf.function(lambda a, k: tf.nn.conv2d(a, k, 2, 'SAME'))
        conv(x, kernel).numpy()  # warm-up: tracing and oneDNN's kernel choice
        start = time.perf_counter()
        for _ in range(repeats):
            out = conv(x, kernel)
        out.numpy()
        times[dtype] = time.perf_counter() - start
    return times[tf.float32] / times[tf.bfloat16]


def auto_precision(gpus=None, cpu_flags=None, measure=conv_speedup):
    """The fastest --mixed_precision for this machine, and why: ('bf16' | 'fp16' | 'none', reason).

    GPUs: bf16 from compute capability 8.0, fp16 with loss scaling on 7.x (tensor cores without
    bf16), fp32 below. CPUs: bf16 where a bf16 convolution measures at least 1.15x fp32 (CPUs
    with AMX, and some with AVX-512 bf16 alone: 1.3x on one AMD host, 0.62x on another host), fp32
    otherwise, and on CPUs with no bf16 instructions at all.
    """
    if gpus is None:
        gpus = [tf.config.experimental.get_device_details(g).get('compute_capability')
                for g in tf.config.list_physical_devices('GPU')]
    if gpus:
        capability = min(tuple(g) for g in gpus if g) if any(gpus) else (0, 0)
        if capability >= (8, 0):
            return 'bf16', 'GPU of compute capability {}.{}: bf16 tensor cores'.format(*capability)
        if capability >= (7, 0):
            return 'fp16', ('GPU of compute capability {}.{}: fp16 tensor cores, no bf16; loss '
                            'scaling on'.format(*capability))
        return 'none', 'GPU of compute capability {}.{}: no tensor cores'.format(*capability)
    if cpu_flags is None:
        try:
            with open('/proc/cpuinfo') as f:
                cpu_flags = next((line.split(':', 1)[1].split() for line in f
                                  if line.startswith('flags')), [])
        except OSError:
            cpu_flags = []
    units = [f for f in ('amx_bf16', 'avx512_bf16') if f in cpu_flags]
    if not units:
        return 'none', 'CPU without bf16 instructions'
    speedup = measure()
    return ('bf16' if speedup >= 1.15 else 'none',
            'CPU with {}: a bf16 convolution ran at {:.2f}x fp32 here'.format(
                ' and '.join(units), speedup))


def make_strategy(name):
    """The tf.distribute strategy for --strategy."""
    if name == 'mirrored':
        return tf.distribute.MirroredStrategy()
    if name == 'multi_worker':
        if 'TF_CONFIG' not in os.environ:
            raise UsageError('--strategy=multi_worker needs TF_CONFIG describing the cluster and '
                             'this worker\'s task (see the README).')
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """Whether this process writes the run's files (always, except non-chief multi-worker tasks)."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == 'chief' or (task_type == 'worker' and task_id == 0
                                    and 'chief' not in resolver.cluster_spec().as_dict())


def create_dataset(config, uint8=False):
    """The unbatched training images and how many there are; with uint8, records preresized for
    this size come as uint8 (to cache them before dataset.to_unit_range)."""
    size = config.DisInSize
    if config.ImageType == 'MNIST':
        images = dataset.load_mnist(config.mnist_path or None, size)
        return images, int(images.cardinality())
    if config.ImageType == 'digits':
        images = dataset.load_digits(size)
        return images, int(images.cardinality())
    if config.ImageType == 'cifar10':
        images = dataset.load_cifar10(config.cifar_path, size)
        return images, int(images.cardinality())
    if config.ImageType == 'folder':
        images = dataset.load_folder(config.TFRecordPath, size, uint8)
        manifest = dataset.read_manifest(config.TFRecordPath) or {}
        entry = manifest.get('partitions', {}).get('train', {})
        smaller = entry.get('smaller_than', {}).get(str(size), 0)
        if smaller:
            logging.warning('%d of the %d images in %s are smaller than %d px: they are upscaled',
                            smaller, entry['records'], config.TFRecordPath, size)
        return images, dataset.celeba_size(config.TFRecordPath, 'train')
    if config.TFRecordPath == PLACEHOLDER_RECORDS and not os.path.isdir(PLACEHOLDER_RECORDS):
        raise UsageError('no CelebA records given: convert CelebA first (python convert_tfrecord.py '
                         '--DatasetPath=... --TFRecordPath=records) and pass --TFRecordPath=records, '
                         'or start with the quick start, which needs no download: python main.py '
                         '--ImageType=digits --DisInSize=32 --BATCH_SIZE=64 --epochs=15')
    logging.info('Reading CelebA %s records from %s', config.Partition, config.TFRecordPath)
    files = dataset.partition_files(config.TFRecordPath, config.Partition)
    images = dataset.load_celeba(config.TFRecordPath, config.Partition, config.ImageType,
                                 config.crop_bbox, size, files=files, uint8=uint8)
    return images, dataset.celeba_size(config.TFRecordPath, config.Partition)


def data_source(config):
    """What the real images are, for the reference-statistics cache: source, partition, crop, size."""
    return '{}; bbox {}; {} px'.format(
        dataset.source_identity(config.ImageType, config.array_path, config.TFRecordPath,
                                config.Partition), config.crop_bbox, config.DisInSize)


def default_stats_dir(config):
    """Where reference statistics are cached by default: beside the records or the npz."""
    if config.stats_dir:
        return config.stats_dir
    if config.ImageType in dataset.CELEBA_TYPES + ('folder',):
        return os.path.join(config.TFRecordPath, 'fid_stats')
    if config.array_path:
        return os.path.join(os.path.dirname(os.path.abspath(config.array_path)), 'fid_stats')
    return 'fid_stats'


def setup_model(channels, image_size, noise_dim, lr, steps_per_epoch, sync_bn=False, fp16=False,
                step=None, filters=1024):
    """Generator, Discriminator and their Adam optimizers (beta_1 0.5), built and ready to restore.

    With a global step variable, the learning rate follows it rather than each optimizer's own
    update count, which a LossScaleOptimizer does not advance on the steps it skips.
    """
    Generator = model.Gen_Net(channels, noise_dim, image_size, sync_bn=sync_bn, filters=filters)
    Discriminator = model.Dis_Net(image_size, channels, sync_bn=sync_bn, filters=filters)
    schedule = utils.lr_schedule(lr, steps_per_epoch)
    opts = []
    for net in (Generator, Discriminator):
        rate = schedule if step is None else (lambda: schedule(step))
        opt = keras.optimizers.Adam(rate, beta_1=0.5)
        if fp16:
            opt = keras.mixed_precision.LossScaleOptimizer(opt)
        opt.build(net.trainable_variables)
        opts.append(opt)
    return Generator, Discriminator, opts[0], opts[1]


def make_train_step(models, opts, strategy, noise_dim, batch_size, seed, element_spec, jit=False):
    """The distributed, traced-once train step: (images, step) -> [Real_P, Fake_P, Gen_loss, Dis_loss].

    element_spec is the distributed dataset's; its unknown batch size keeps the last, partial
    batch from retracing.
    """
    Generator, Discriminator = models
    seed = tf.constant(seed, tf.int64)
    G_opt, D_opt = opts

    @tf.function(jit_compile=jit)
    def train_step(images, step):
        ctx = tf.distribute.get_replica_context()
        local = tf.shape(images)[0]
        batch_sum = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(local, tf.float32))
        global_batch = tf.cast(batch_sum, tf.int32)
        # one noise batch per global step, sliced by replica: the same noise on any number of devices
        noise = tf.random.stateless_normal([batch_size, noise_dim], seed=tf.stack([seed, step]))
        noise = noise[ctx.replica_id_in_sync_group * local:][:local]
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated_images = Generator(noise, training=True)
            real_output = Discriminator(images, training=True)
            fake_output = Discriminator(generated_images, training=True)
            gen_loss = utils.generator_loss(fake_output, global_batch)
            disc_loss = utils.discriminator_loss(real_output, fake_output, global_batch)
            # loss scaling under fp16 (LossScaleOptimizer), identity otherwise
            gen_scaled = G_opt.scale_loss(gen_loss)
            disc_scaled = D_opt.scale_loss(disc_loss)
        gen_grads = gen_tape.gradient(gen_scaled, Generator.trainable_variables)
        disc_grads = disc_tape.gradient(disc_scaled, Discriminator.trainable_variables)
        G_opt.apply_gradients(zip(gen_grads, Generator.trainable_variables))
        D_opt.apply_gradients(zip(disc_grads, Discriminator.trainable_variables))
        return tf.stack([tf.reduce_sum(real_output) / batch_sum,
                         tf.reduce_sum(fake_output) / batch_sum, gen_loss, disc_loss])

    @tf.function(input_signature=[element_spec, tf.TensorSpec([], tf.int64)])
    def distributed_train_step(images, step):
        per_replica = strategy.run(train_step, args=(images, step))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return distributed_train_step


def make_train_loop(train_step, step, step_in_epoch, sums):
    """The traced-once device loop: (iterator, k) -> (last step's values, first non-finite step or -1).

    It runs k train steps from a distributed iterator inside one tf.function, as Keras'
    steps_per_execution and Orbit's steps_per_loop do, and keeps the global step, the step in the
    epoch and the metric sums on the device: the host waits once per k steps, not at every step.
    The sums add the same float64 values in the same order for any k, so results do not depend on it.
    """
    @tf.function
    def train_loop(iterator, k):
        values = tf.zeros([4])
        first_bad = tf.constant(-1, tf.int64)
        for _ in tf.range(k):
            current = step.read_value()
            values = train_step(next(iterator), current)
            finite = tf.reduce_all(tf.math.is_finite(values))
            first_bad = tf.where((first_bad < 0) & tf.logical_not(finite), current, first_bad)
            sums.assign_add(tf.cast(values, tf.float64))
            step_in_epoch.assign_add(1)
            step.assign_add(1)
        return values, first_bad

    return train_loop


def rng_variables(models):
    """The Dropout layers' seed-generator states, which checkpoints do not track by themselves."""
    return [v for net in models for v in net.non_trainable_variables if 'seed_generator' in v.path]


def run_outputs(config):
    """Every path one run writes."""
    name = config.save_name
    return [os.path.join(config.MODEL_PATH, name), os.path.join(config.PLOT_PATH, name),
            os.path.join(config.LOG_PATH, name + '-loss.csv'),
            os.path.join(config.LOG_PATH, name + '-eval.csv'),
            os.path.join(config.LOG_PATH, 'tensorboard', name)]


def move_aside(paths):
    """Rename existing paths to PATH.old-TIMESTAMP, so a fresh run never deletes an old one."""
    stamp = time.strftime('%Y%m%d-%H%M%S')
    moved = []
    for path in paths:
        path = path.rstrip('/')
        if os.path.exists(path):
            target = '{}.old-{}'.format(path, stamp)
            os.rename(path, target)
            moved.append(target)
    return moved


def read_saved_flags(flags_path, current):
    """The flags a previous run saved (None if none), refusing ones that shape other networks."""
    if not os.path.isfile(flags_path):
        return None
    try:
        with open(flags_path) as f:
            saved = json.load(f)
    except ValueError as e:
        raise UsageError('{} is not valid JSON ({}): restore it, or add --noresume to start a new '
                         'run (the old one is moved aside).'.format(flags_path, e))
    # the networks' shape; a run saved before a flag existed had its default
    made = {k: saved.get(k, getattr(Config, k)) for k in SHAPE_FLAGS}
    wrong = [k for k in SHAPE_FLAGS if made[k] != current.get(k)]
    if wrong:
        raise UsageError('the checkpoint in {} was made with {}, which shape the networks: rerun '
                         'with those values, or add --noresume to start a new run (the old one is '
                         'moved aside).'.format(os.path.dirname(flags_path), ', '.join(
                             '--{}={}'.format(k, made[k]) for k in wrong)))
    return saved


def flag_differences(saved, current):
    """Lines 'name: saved -> current' for flags whose values changed."""
    return ['{}: {} -> {}'.format(k, saved[k], current.get(k)) for k in sorted(saved)
            if k in current and saved[k] != current[k]]


class RunLock:
    """An exclusive lock on {MODEL_PATH}/{SaveName}.lock, so two runs never share one SaveName.

    The operating system drops the lock when its process ends, however it ends, so a lock left by
    a killed run is taken over; the file names the PID and host of its holder.
    """

    def __init__(self, path):
        self.path = path
        self.file = None

    def __enter__(self):
        self.file = open(self.path, 'a+')
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or 'unknown'
            self.file.close()
            raise UsageError('another run is training this SaveName ({}; lock {}): wait for it to '
                             'finish or stop it, or train into another --MODEL_PATH.'.format(
                                 holder, self.path))
        self.file.seek(0)
        stale = self.file.read().strip()
        if stale:
            logging.warning('Took over the lock %s left by a run that ended without releasing '
                            'it (%s)', self.path, stale)
        self.file.seek(0)
        self.file.truncate()
        self.file.write('pid {} on host {}, since {}\n'.format(
            os.getpid(), socket.gethostname(), time.strftime('%Y-%m-%d %H:%M:%S')))
        self.file.flush()
        return self

    def __exit__(self, *exc):
        self.file.truncate(0)
        self.file.close()  # closing releases the lock


class Stopped(Exception):
    """A run stopped by SIGINT/SIGTERM after saving a checkpoint; main.py exits with 128 + signum."""

    def __init__(self, signum, message):
        super().__init__('{} {}'.format(signal.Signals(signum).name, message))
        self.signum = signum


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a request to save and stop after the current step."""

    def __init__(self):
        self.signal = None
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def handle(self, signum, _frame):
        self.signal = signum
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)  # a second Ctrl-C stops at once

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# ----------------------------------------------------------------------------- hooks

class Hook:
    """A side effect of training, called by the Trainer; subclasses override what they need."""

    def on_train_begin(self, trainer):
        """Once, after the models are restored or started, before the first step."""

    def on_epoch_begin(self, trainer, epoch):
        """Before the first (or first remaining) step of epoch (0-based)."""

    def on_train_batch_end(self, trainer, step, values):
        """After each loop of --steps_per_loop steps, ending at global step step (1-based), with
        the last step's [Real_P, Fake_P, Gen_loss, Dis_loss]."""

    def on_epoch_end(self, trainer, epoch, means):
        """After the last step of epoch, before its checkpoint, with the epoch's mean metrics."""

    def on_train_end(self, trainer):
        """Once, however the run ends (also on errors and stops)."""


class ProgressBar(Hook):
    """A tqdm bar per epoch: step, images/s, ETA and the running metrics."""

    def __init__(self):
        self.bar = None

    def on_epoch_begin(self, trainer, epoch):
        self.bar = tqdm(total=trainer.steps_per_epoch, initial=int(trainer.step_in_epoch),
                        unit='step', dynamic_ncols=True,
                        desc='epoch {}/{}'.format(epoch + 1, trainer.config.epochs))

    def on_train_batch_end(self, trainer, step, values):
        self.bar.update(int(trainer.step_in_epoch) - self.bar.n)
        rate = self.bar.format_dict['rate']
        self.bar.set_postfix(
            img_s='{:.0f}'.format(rate * trainer.config.BATCH_SIZE) if rate else '?',
            refresh=False, **{name: '{:.3f}'.format(value) for name, value
                              in zip(utils.CSV_COLUMNS[1:], trainer.metric_means())})

    def on_epoch_end(self, trainer, epoch, means):
        self.on_train_end(trainer)

    def on_train_end(self, trainer):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class CsvLogger(Hook):
    """The seed's loss CSV: one row per finished epoch; rows past a resumed epoch are dropped."""

    def __init__(self, path):
        self.path = path

    def on_train_begin(self, trainer):
        utils.start_csv(self.path, int(trainer.epoch))

    def on_epoch_end(self, trainer, epoch, means):
        utils.append_csv(self.path, epoch, means)


class SampleGrids(Hook):
    """The seed's per-epoch 4x4 grid of the fixed noise, also sent to TensorBoard."""

    def __init__(self, plot_dir, writer=None):
        self.plot_dir = plot_dir
        self.writer = writer
        self.last = None

    def on_epoch_end(self, trainer, epoch, means):
        self.last, grid = utils.generate_and_save_images(
            trainer.Generator(trainer.NOISE, training=False), epoch + 1, self.plot_dir)
        if self.writer:
            with self.writer.as_default(step=int(trainer.step)):
                tf.summary.image('samples', grid[None], description='epoch {}'.format(epoch + 1))
            self.writer.flush()


class TensorBoardScalars(Hook):
    """The running metrics, learning rate and images/s every log_every steps."""

    def __init__(self, writer, log_every):
        self.writer = writer
        self.log_every = log_every
        self.window = self.last = None

    def on_epoch_begin(self, trainer, epoch):
        self.window, self.last = time.time(), int(trainer.step)

    def on_train_batch_end(self, trainer, step, values):
        if step // self.log_every == self.last // self.log_every:
            return  # no multiple of log_every passed in this loop
        now = time.time()
        with self.writer.as_default(step=step):
            for name, value in zip(utils.CSV_COLUMNS[1:], trainer.metric_means()):
                tf.summary.scalar(name, value)
            tf.summary.scalar('learning_rate', trainer.epoch_lr)
            tf.summary.scalar('images_per_second',
                              (step - self.last) * trainer.config.BATCH_SIZE / (now - self.window))
        self.window, self.last = now, step


class WeightSaver(Hook):
    """The seed's .weights.h5 files every save_every epochs, and after the last epoch."""

    def __init__(self, model_dir, save_every, epochs):
        self.model_dir, self.save_every, self.epochs = model_dir, save_every, epochs

    def on_epoch_end(self, trainer, epoch, means):
        if (epoch + 1) % self.save_every == 0 or epoch + 1 == self.epochs:
            trainer.Generator.save_weights(os.path.join(self.model_dir, 'Generator.weights.h5'))
            trainer.Discriminator.save_weights(os.path.join(self.model_dir,
                                                            'Discriminator.weights.h5'))


class Evaluation(Hook):
    """FID, KID, precision/recall and IS every `every` epochs: a row of the eval CSV, TensorBoard
    scalars, and best/generator.keras whenever the FID improves."""

    def __init__(self, config, csv_path, best_dir, writer=None):
        self.config, self.csv_path, self.best_dir, self.writer = config, csv_path, best_dir, writer
        self.extractor = self.reference = None
        self.best = float('inf')

    def on_train_begin(self, trainer):
        c = self.config
        self.extractor = metrics.FeatureExtractor(*metrics.load_feature_model(
            c.feature_model, c.inception_weights))
        self.reference = metrics.reference_features(
            self.extractor, trainer.source_images, min(c.ref_samples, trainer.n_images),
            data_source(c), default_stats_dir(c))
        utils.start_csv(self.csv_path, int(trainer.epoch), utils.EVAL_COLUMNS)
        if os.path.isfile(self.csv_path):  # the best FID of the epochs kept
            self.best = min(utils.read_csv(self.csv_path, utils.EVAL_COLUMNS)['FID'],
                            default=float('inf'))

    def on_epoch_end(self, trainer, epoch, means):
        if (epoch + 1) % self.config.eval_every:
            return
        result = metrics.evaluate(trainer.Generator, self.extractor, self.reference,
                                  self.config.eval_samples, seed=trainer.seed)
        values = [result['fid'], result['kid_mean'], result['precision'], result['recall'],
                  result['is_mean'], result['seconds']]
        utils.append_csv(self.csv_path, epoch, values)
        if self.writer:
            with self.writer.as_default(step=int(trainer.step)):
                for name, value in zip(utils.EVAL_COLUMNS[1:-1], values):
                    tf.summary.scalar('eval/' + name, value)
        logging.info('Epoch %d: FID %.4f, KID %.5f, precision %.3f, recall %.3f, IS %.3f (%d '
                     'samples, %.0f s)', epoch + 1, *values[:5], self.config.eval_samples,
                     result['seconds'])
        if result['fid'] < self.best:
            self.best = result['fid']
            os.makedirs(self.best_dir, exist_ok=True)
            trainer.Generator.save(os.path.join(self.best_dir, 'generator.keras'))
            with open(os.path.join(self.best_dir, 'best.json'), 'w') as f:
                json.dump(dict(result, epoch=epoch), f, indent=1)
            logging.info('Best FID so far: saved %s', os.path.join(self.best_dir,
                                                                  'generator.keras'))


class EpochSummary(Hook):
    """One log line per epoch, and a warning when the discriminator wins completely."""

    def __init__(self, plot_dir):
        self.plot_dir = plot_dir
        self.start = None

    def on_epoch_begin(self, trainer, epoch):
        self.start = time.time()

    def on_epoch_end(self, trainer, epoch, means):
        logging.info('Epoch %d/%d in %.1f s: Real_P %.4f, Fake_P %.4f, Gen_loss %.4f, '
                     'Dis_loss %.4f, lr %.2e', epoch + 1, trainer.config.epochs,
                     time.time() - self.start, *means, trainer.epoch_lr)
        if means[1] < 0.01 and means[0] > 0.99:
            logging.warning('Epoch %d: the discriminator wins completely (Real_P %.4f, Fake_P '
                            '%.4f): training has probably collapsed; look at the grids in %s',
                            epoch + 1, means[0], means[1], self.plot_dir)


# ----------------------------------------------------------------------------- trainer

class Trainer:
    """The seed's training loop: build, restore or start, train and end epochs, export.

    Side effects other than the checkpoint are hooks: the defaults made from the config, then
    extra_hooks, all called in that order.
    """

    def __init__(self, config, extra_hooks=()):
        self.config = config
        self.extra_hooks = list(extra_hooks)
        self.hooks = []
        self.stop = StopRequest()
        self.train_step = None

    # --------------------------------------------------------------- build
    def build(self):
        """Data, strategy, models, optimizers and the checkpoint; nothing is written yet."""
        c = self.config
        try:
            model.check_filters(c.filters, c.DisInSize)
        except ValueError as e:
            raise UsageError('--{}'.format(e))
        if c.ImageType not in dataset.IMAGE_TYPES:
            raise UsageError('--ImageType={} is not one of {}.'.format(
                c.ImageType, ', '.join(dataset.IMAGE_TYPES)))
        # fresh layer names and seed generators for each run (its gc.collect: 0.25 s in a test)
        keras.backend.clear_session(free_memory=False)
        self.precision = c.mixed_precision
        if c.mixed_precision == 'auto':
            self.precision, reason = auto_precision()
            logging.info('--mixed_precision=auto chose %s: %s', self.precision, reason)
        keras.mixed_precision.set_global_policy(POLICIES[self.precision])
        self.strategy = make_strategy(c.strategy)
        self.chief = is_chief(self.strategy)
        replicas = self.strategy.num_replicas_in_sync
        if c.BATCH_SIZE % replicas:
            raise UsageError('--BATCH_SIZE={} does not split over {} replicas: use a multiple of '
                             '{}.'.format(c.BATCH_SIZE, replicas, replicas))
        self.model_dir = os.path.join(c.MODEL_PATH, c.save_name)
        self.flags_path = os.path.join(self.model_dir, 'flags.json')
        self.current = dataclasses.asdict(c)
        self.saved = read_saved_flags(self.flags_path, self.current) if c.resume else None
        seed = c.seed
        if seed is None:
            seed = self.saved['seed'] if self.saved else int(np.random.default_rng().integers(
                0, 2 ** 31 - 1))
        self.seed = self.current['seed'] = seed
        keras.utils.set_random_seed(seed)

        for folder in (c.LOG_PATH, c.MODEL_PATH, c.PLOT_PATH):
            utils.check_writable(folder)
        images, self.n_images = create_dataset(c, uint8=True)
        # uncached float32 images, for the reference statistics of --eval_every
        self.source_images = (dataset.to_unit_range(images)
                              if images.element_spec.dtype == tf.uint8 else images)
        full_epoch = (self.n_images // c.BATCH_SIZE if c.jit
                      else math.ceil(self.n_images / c.BATCH_SIZE))
        if full_epoch == 0:
            raise UsageError('{} images make no full batch of --BATCH_SIZE={} (--jit drops partial '
                             'batches): use a smaller batch.'.format(self.n_images, c.BATCH_SIZE))
        self.steps_per_epoch = min(c.steps_per_epoch or full_epoch, full_epoch)
        if c.cache:
            if self.steps_per_epoch < full_epoch:
                raise UsageError('--cache needs whole epochs: with --steps_per_epoch={} of {} '
                                 'batches, tf.data drops the unfinished cache every epoch. Drop '
                                 '--steps_per_epoch or --cache.'.format(c.steps_per_epoch,
                                                                        full_epoch))
            # preresized records are cached as uint8: a quarter of the memory, the same images
            images = images.cache()
        self.images = images  # uint8 ones become float32 a batch at a time, in make_batches
        # run bookkeeping, the same on every worker: plain local variables
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='global_step')
        with self.strategy.scope():
            self.Generator, self.Discriminator, self.G_opt, self.D_opt = setup_model(
                dataset.channels(c.ImageType), c.DisInSize, c.noise_dim, c.lr,
                self.steps_per_epoch, c.sync_bn, self.precision == 'fp16', step=self.step,
                filters=c.filters)
        self.NOISE = tf.Variable(tf.random.stateless_normal([16, c.noise_dim], seed=[seed, -1]),
                                 trainable=False, name='fixed_noise')
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name='epoch')
        self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name='step_in_epoch')
        self.sums = tf.Variable(tf.zeros([4], tf.float64), trainable=False, name='metric_sums')
        models = [self.Generator, self.Discriminator]
        self.ckpt = tf.train.Checkpoint(
            generator=self.Generator, discriminator=self.Discriminator, G_opt=self.G_opt,
            D_opt=self.D_opt, fixed_noise=self.NOISE, epoch=self.epoch,
            step_in_epoch=self.step_in_epoch, metric_sums=self.sums, global_step=self.step,
            rng=rng_variables(models))
        self.ckpt_dir = os.path.join(self.model_dir, 'checkpoints')
        # other workers must save too (collectives), but into a scratch folder
        self.manager = tf.train.CheckpointManager(
            self.ckpt, self.ckpt_dir if self.chief else tempfile.mkdtemp(prefix='dcgan-worker-'),
            max_to_keep=c.keep_checkpoints)

    def restore_or_start(self):
        """Continue from the latest checkpoint, or move an old run aside and start fresh."""
        c = self.config
        latest = tf.train.latest_checkpoint(self.ckpt_dir)
        if c.resume and latest:
            try:
                self.ckpt.restore(latest).assert_existing_objects_matched()
            except (ValueError, AssertionError, tf.errors.OpError) as e:
                raise UsageError('cannot restore {} with these flags ({}): rerun with the flags in '
                                 '{}, or add --noresume to start fresh.'.format(
                                     latest, str(e).splitlines()[0], self.flags_path))
            if int(self.step) == 0:  # a checkpoint from before the global step was kept
                self.step.assign(self.G_opt.iterations)
            logging.info('Resuming from %s: epoch %d, step %d of it, global step %d', latest,
                         int(self.epoch), int(self.step_in_epoch), int(self.step))
            for line in flag_differences(self.saved or {}, self.current):
                logging.warning('flag changed since the checkpoint: %s', line)
        elif c.export_only:
            raise UsageError('no checkpoint in {} to export: train first.'.format(self.ckpt_dir))
        elif self.chief:
            for path in move_aside(run_outputs(c)):
                logging.warning('Moved the previous run aside to %s', path)
        self.latest = latest
        if self.chief:
            os.makedirs(self.model_dir, exist_ok=True)
            with open(self.flags_path, 'w') as f:
                json.dump(self.current, f, indent=1, sort_keys=True)

    def default_hooks(self):
        """The seed's side effects and this tool's additions, as configured."""
        c = self.config
        if not self.chief:
            return []
        plot_dir = os.path.join(c.PLOT_PATH, c.save_name)
        self.csv_path = os.path.join(c.LOG_PATH, '{}-loss.csv'.format(c.save_name))
        writer = None
        if c.tensorboard:
            writer = tf.summary.create_file_writer(os.path.join(c.LOG_PATH, 'tensorboard',
                                                                c.save_name))
        hooks = [ProgressBar(), CsvLogger(self.csv_path), SampleGrids(plot_dir, writer)]
        if writer:
            hooks.append(TensorBoardScalars(writer, c.log_every))
        if c.eval_every:
            hooks.append(Evaluation(c, os.path.join(c.LOG_PATH, '{}-eval.csv'.format(c.save_name)),
                                    os.path.join(self.model_dir, 'best'), writer))
        return hooks + [WeightSaver(self.model_dir, c.save_every, c.epochs), EpochSummary(plot_dir)]

    # --------------------------------------------------------------- train
    def metric_means(self):
        """The four metrics averaged over the steps of this epoch so far."""
        return self.sums.numpy() / max(1, int(self.step_in_epoch))

    def call_hooks(self, method, *args):
        """Call method on every hook, in order."""
        for hook in self.hooks:
            getattr(hook, method)(self, *args)

    def train_epoch(self, epoch):
        """Train the (remaining) steps of epoch; raise Stopped, after saving, on SIGINT/SIGTERM."""
        c = self.config
        done = int(self.step_in_epoch)
        batches = dataset.make_batches(self.images, c.BATCH_SIZE, c.shuffle_buffer,
                                       self.seed * 1000 + epoch, c.jit, skip_batches=done)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.DATA
        batches = batches.take(self.steps_per_epoch - done).with_options(options)
        batches = self.strategy.experimental_distribute_dataset(batches)
        if self.train_step is None:
            self.train_step = make_train_step(
                [self.Generator, self.Discriminator], [self.G_opt, self.D_opt], self.strategy,
                c.noise_dim, c.BATCH_SIZE, self.seed, batches.element_spec, c.jit)
            self.train_loop = make_train_loop(self.train_step, self.step, self.step_in_epoch,
                                              self.sums)
        self.epoch_lr = float(self.G_opt.learning_rate)  # boundaries fall between epochs
        self.call_hooks('on_epoch_begin', epoch)
        iterator, source = iter(batches), c.array_path or c.TFRecordPath
        while int(self.step_in_epoch) < self.steps_per_epoch and self.stop.signal is None:
            k = min(c.steps_per_loop, self.steps_per_epoch - int(self.step_in_epoch))
            try:
                values, first_bad = self.train_loop(iterator, tf.constant(k, tf.int64))
            except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
                raise UsageError('cannot read a training image from {} ({}): run python '
                                 'convert_tfrecord.py --verify --TFRecordPath={} and reconvert '
                                 'what it reports.'.format(source, e.message.splitlines()[0][:200],
                                                           source))
            values = values.numpy()
            if int(first_bad) >= 0:
                raise UsageError('non-finite loss at global step {} (epoch {}, Gen_loss {}, '
                                 'Dis_loss {}); the last good checkpoint in {} is kept: lower --lr '
                                 'or use --mixed_precision=none, then rerun to resume from '
                                 'it.'.format(int(first_bad), epoch + 1, values[2], values[3],
                                              self.ckpt_dir))
            self.call_hooks('on_train_batch_end', int(self.step), values)
        if self.stop.signal is not None and int(self.step_in_epoch) < self.steps_per_epoch:
            path = self.manager.save(checkpoint_number=int(self.step))
            raise Stopped(self.stop.signal, 'at epoch {}, step {} of {}; saved {}. Run the same '
                          'command again to continue from there.'.format(
                              epoch + 1, int(self.step_in_epoch), self.steps_per_epoch, path))

    def end_epoch(self, epoch):
        """The epoch's hooks (CSV row, grid, ...), then its checkpoint."""
        means = self.metric_means()
        self.call_hooks('on_epoch_end', epoch, means)
        self.epoch.assign(epoch + 1)
        self.step_in_epoch.assign(0)
        self.sums.assign(tf.zeros([4], tf.float64))
        self.manager.save(checkpoint_number=int(self.step))
        if self.stop.signal is not None:
            raise Stopped(self.stop.signal, 'after epoch {}; checkpoint saved. Run the same '
                          'command again to continue.'.format(epoch + 1))

    def export(self):
        """Write the whole generator to generator.keras (loadable without this code)."""
        path = os.path.join(self.model_dir, 'generator.keras')
        if self.chief:
            self.Generator.save(path)
        return path

    def run(self):
        """The whole run; returns the path of the exported generator."""
        c = self.config
        self.build()
        lock = RunLock(os.path.join(c.MODEL_PATH, c.save_name + '.lock')) if self.chief else None
        with lock or contextlib.nullcontext(), self.stop:
            self.restore_or_start()
            if c.export_only:
                path = self.export()
                print('Exported the generator of {} to {}'.format(self.latest, path))
                return path
            self.hooks = self.default_hooks() + self.extra_hooks
            start_epoch = int(self.epoch)
            logging.info('%s: %d images, %d steps of %d per epoch, %d replica(s), precision %s%s',
                         c.save_name, self.n_images, self.steps_per_epoch, c.BATCH_SIZE,
                         self.strategy.num_replicas_in_sync, POLICIES[self.precision],
                         ', XLA' if c.jit else '')
            if start_epoch >= c.epochs:
                logging.warning('%s has already trained %d epochs: raise --epochs to train on.',
                                c.save_name, start_epoch)
            try:
                self.call_hooks('on_train_begin')
                for epoch in range(start_epoch, c.epochs):
                    self.train_epoch(epoch)
                    self.end_epoch(epoch)
            finally:
                self.call_hooks('on_train_end')
            path = self.export()
        if self.chief:
            logging.info('Done: loss log %s, sample grids %s/, generator %s. Plot them with: '
                         'python plot_logs.py %s --gif; sample with: python generate.py --model=%s',
                         self.csv_path, os.path.join(c.PLOT_PATH, c.save_name), path,
                         self.csv_path, path)
        if self.train_step is not None:
            logging.info('train_step was traced %d time(s)',
                         self.train_step.experimental_get_tracing_count())
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
        return path


def train(config, extra_hooks=()):
    """Train as config says (flax's train_and_evaluate): the entry point for main.py and tests."""
    return Trainer(config, extra_hooks).run()
