"""The training run: one Config in; data, the networks and steps of gan.py, stop handling,
checkpoints and the Trainer that calls the hooks (hooks.py) and writes the files (run_files.py)."""
import contextlib
import dataclasses
import math
import shutil
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

import augment as augment_lib
import checkpoints
import dataset
import devices
import ema as ema_lib
import gan
import hooks as hooks_lib
import interrupts
from interrupts import StopRequest, Stopped  # noqa: F401 (Stopped: for main.py and tests)
import model
import run_files
import errors
import files
import utils
from errors import UsageError

SHAPE_FLAGS = model.SHAPE_FLAGS


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything one training run depends on; field names and defaults are main.py's flags."""
    DatasetPath: str = 'YourDatasetPath'
    Partition: str = 'all'
    ImageType: str = 'img_celeba'
    bbox: bool = True
    TFRecordPath: str = dataset.PLACEHOLDER_RECORDS
    LOG_PATH: str = 'logs/'
    MODEL_PATH: str = 'models/'
    PLOT_PATH: str = 'plot/'
    DisInSize: int = 64
    noise_dim: int = 100
    filters: int = 1024
    BATCH_SIZE: int = 128
    lr: float = 2e-4
    epochs: int = 35
    lr_G: Optional[float] = None
    lr_D: Optional[float] = None
    lr_decay_epochs: str = '10,20,25'
    dropout: float = 0.3
    ema: float = 0.0
    standing_stats: bool = False
    augment: str = ''
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
    inception_graph: str = ''
    reference_stats: str = ''
    stats_dir: str = ''

    @property
    def source(self):
        """The real images this run trains on."""
        return dataset.DataSource.of(self)

    @property
    def decay_epochs(self):
        """--lr_decay_epochs as a tuple of epochs; () = a constant learning rate."""
        return utils.parse_epochs(self.lr_decay_epochs, '--lr_decay_epochs')

    @property
    def save_name(self):
        """The seed's SaveName, e.g. MNIST-False or img_celeba-True (a folder's: its name)."""
        return self.source.name


class Trainer:
    """The seed's training loop: build, restore or start, train and end epochs, export.

    Side effects other than the checkpoint are hooks (hooks.py): the defaults made from the
    config, then extra_hooks, all called in that order.
    """

    def __init__(self, config, extra_hooks=()):
        self.config = config
        self.files = run_files.RunFiles.of(config)
        self.extra_hooks = list(extra_hooks)
        self.hooks = []
        self.stop = StopRequest()
        self.train_step = self.train_loop = None
        self.epoch_lr = None  # the generator's learning rate in the epoch being trained
        self.latest = None  # the checkpoint restored, if any

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
        try:
            self.augment = augment_lib.parse_policy(c.augment)
        except ValueError as e:
            raise UsageError('--{}.'.format(e))
        utils.parse_epochs(c.lr_decay_epochs, '--lr_decay_epochs')  # before anything is built
        # fresh layer names and seed generators for each run (its gc.collect: 0.25 s in a test)
        keras.backend.clear_session(free_memory=False)
        self.precision = devices.set_precision(c.mixed_precision)
        self.strategy = devices.make_strategy(c.strategy)
        self.chief = devices.is_chief(self.strategy)
        replicas = self.strategy.num_replicas_in_sync
        if c.BATCH_SIZE % replicas:
            raise UsageError('--BATCH_SIZE={} does not split over {} replicas: use a multiple of '
                             '{}.'.format(c.BATCH_SIZE, replicas, replicas))
        # the run's flags as it uses them: --bbox is reported False where it is ignored
        self.current = dict(dataclasses.asdict(c), bbox=c.source.crop_bbox)
        self.saved = run_files.saved_run_flags(
            self.files, self.current, SHAPE_FLAGS,
            {k: getattr(Config, k) for k in SHAPE_FLAGS}) if c.resume else None
        seed = c.seed if c.seed is not None else (self.saved or {}).get('seed')
        self.seed = self.current['seed'] = int(np.random.default_rng().integers(
            0, 2 ** 31 - 1)) if seed is None else seed
        keras.utils.set_random_seed(self.seed)
        for folder in (c.LOG_PATH, c.MODEL_PATH, c.PLOT_PATH):
            files.check_writable(folder)
        self.load_data()
        self.build_models()

    def load_data(self):
        """The training images, their count and the steps of an epoch."""
        c = self.config
        images, self.n_images = c.source.load(uint8=True)
        # uncached float32 images, for the reference statistics of --eval_every
        self.source_images = (dataset.to_unit_range(images)
                              if images.element_spec.dtype == tf.uint8 else images)
        full_epoch = (self.n_images // c.BATCH_SIZE if c.jit
                      else math.ceil(self.n_images / c.BATCH_SIZE))
        if full_epoch == 0:
            raise UsageError('{} images make no full batch of --BATCH_SIZE={} (--jit drops partial '
                             'batches): use a smaller batch.'.format(self.n_images, c.BATCH_SIZE))
        self.steps_per_epoch = min(c.steps_per_epoch or full_epoch, full_epoch)
        if c.BATCH_SIZE > self.n_images or c.steps_per_epoch > full_epoch:
            logging.warning('%d images make %d batches of --BATCH_SIZE=%d: an epoch is %d steps%s',
                            self.n_images, full_epoch, c.BATCH_SIZE, self.steps_per_epoch,
                            ', not --steps_per_epoch={}'.format(c.steps_per_epoch)
                            if c.steps_per_epoch > full_epoch else ' of all the images')
        if c.cache:
            if self.steps_per_epoch < full_epoch:
                raise UsageError('--cache needs whole epochs: with --steps_per_epoch={} of {} '
                                 'batches, tf.data drops the unfinished cache every epoch. Drop '
                                 '--steps_per_epoch or --cache.'.format(c.steps_per_epoch,
                                                                        full_epoch))
            # preresized records are cached as uint8: a quarter of the memory, the same images
            images = images.cache()
        self.images = images  # uint8 ones become float32 a batch at a time, in make_batches

    def build_models(self):
        """Networks, optimizers, the run's bookkeeping variables and the checkpoint manager."""
        c = self.config
        # run bookkeeping, the same on every worker: plain local variables
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='global_step')
        with self.strategy.scope():
            try:
                self.Generator, self.Discriminator, self.G_opt, self.D_opt = gan.setup_model(
                    dataset.channels(c.ImageType), c.DisInSize, c.noise_dim,
                    c.lr if c.lr_G is None else c.lr_G, self.steps_per_epoch, c.sync_bn,
                    self.precision == 'fp16', step=self.step, filters=c.filters, lr_D=c.lr_D,
                    decay_epochs=c.decay_epochs, dropout=c.dropout)
            except tf.errors.ResourceExhaustedError as e:
                raise UsageError('the networks\' weights do not fit in memory at --filters={} and '
                                 '--noise_dim={} ({}): use smaller ones (the original\'s: 1024 '
                                 'and 100).'.format(c.filters, c.noise_dim,
                                                    errors.short_text(e, 100)))
            self.sampled = ema_lib.SampledGenerator(
                self.Generator, model.Gen_Net(dataset.channels(c.ImageType), c.noise_dim,
                                              c.DisInSize, filters=c.filters),
                c.ema, self.seed) if c.ema or c.standing_stats else None
        self.NOISE = tf.Variable(tf.random.stateless_normal([16, c.noise_dim],
                                                            seed=[self.seed, -1]),
                                 trainable=False, name='fixed_noise')
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name='epoch')
        self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name='step_in_epoch')
        self.sums = tf.Variable(tf.zeros([4], tf.float64), trainable=False, name='metric_sums')
        models = [self.Generator, self.Discriminator]
        extra = {'generator_ema': self.sampled.sampled} if c.ema else {}
        self.checkpoint = checkpoints.RunCheckpoint(
            self.files.checkpoints, c.keep_checkpoints, self.chief, generator=self.Generator,
            discriminator=self.Discriminator, G_opt=self.G_opt, D_opt=self.D_opt,
            fixed_noise=self.NOISE, epoch=self.epoch, step_in_epoch=self.step_in_epoch,
            metric_sums=self.sums, global_step=self.step, rng=model.rng_variables(models), **extra)
        self.history, self.best_fid = self.checkpoint.history, self.checkpoint.best_fid

    def restore_or_start(self):
        """Continue from the latest checkpoint, or move an old run aside and start fresh."""
        c = self.config
        latest = self.checkpoint.restore(self.current) if c.resume else None
        if latest:
            if int(self.step) == 0:  # a checkpoint from before the global step was kept
                self.step.assign(self.G_opt.iterations)
            logging.info('Resuming from %s: epoch %d of %d, after step %d of %d (global step %d)',
                         latest, int(self.epoch) + 1, c.epochs, int(self.step_in_epoch),
                         self.steps_per_epoch, int(self.step))
            for line in run_files.flag_differences(self.saved or {}, self.current):
                logging.warning('flag changed since the checkpoint: %s', line)
        elif c.export_only:
            raise UsageError('no checkpoint in {} to export: train first.'.format(
                self.files.checkpoints))
        elif self.chief:
            for path in run_files.move_aside(self.files.outputs()):
                logging.warning('Moved the previous run aside to %s', path)
        if not latest:
            self.checkpoint.open([])
        self.latest = latest
        if self.chief:
            files.write_json(self.files.flags, self.current, 'the run\'s flags')

    # --------------------------------------------------------------- train
    def sampler(self):
        """The generator whose samples the grids, evaluations and exports show: the averaged one
        with --ema, with standing BatchNorm statistics with --ema or --standing_stats."""
        return self.sampled.generator(int(self.step)) if self.sampled else self.Generator

    def metric_means(self):
        """The four metrics averaged over the steps of this epoch so far."""
        return self.sums.numpy() / max(1, int(self.step_in_epoch))

    def call_hooks(self, method, *args):
        """Call method on every hook, in order."""
        for hook in self.hooks:
            getattr(hook, method)(self, *args)

    def epoch_batches(self, epoch):
        """The distributed batches of the (remaining) steps of epoch, in the run's seeded order."""
        c = self.config
        done = int(self.step_in_epoch)
        batches = dataset.make_batches(self.images, c.BATCH_SIZE, c.shuffle_buffer,
                                       self.seed * 1000 + epoch, c.jit, skip_batches=done)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.DATA
        batches = batches.take(self.steps_per_epoch - done).with_options(options)
        return self.strategy.experimental_distribute_dataset(batches)

    def train_epoch(self, epoch):
        """Train the (remaining) steps of epoch; raise Stopped, after saving, on SIGINT/SIGTERM."""
        c = self.config
        batches = self.epoch_batches(epoch)
        if self.train_step is None:
            self.train_step = gan.make_train_step(
                [self.Generator, self.Discriminator], [self.G_opt, self.D_opt], self.strategy,
                c.noise_dim, c.BATCH_SIZE, self.seed, batches.element_spec, c.jit, self.augment,
                self.sampled if c.ema else None)
            self.train_loop = gan.make_train_loop(self.train_step, self.step, self.step_in_epoch,
                                              self.sums)
        self.epoch_lr = float(self.G_opt.learning_rate)  # boundaries fall between epochs
        self.call_hooks('on_epoch_begin', epoch)
        iterator = iter(batches)
        while int(self.step_in_epoch) < self.steps_per_epoch and self.stop.signal is None:
            k = min(c.steps_per_loop, self.steps_per_epoch - int(self.step_in_epoch))
            try:
                values, first_bad = self.train_loop(iterator, tf.constant(k, tf.int64))
            except (tf.errors.InvalidArgumentError, tf.errors.DataLossError,
                    tf.errors.OutOfRangeError) as e:
                raise c.source.read_error(e)
            except tf.errors.ResourceExhaustedError as e:
                raise UsageError('out of memory at --BATCH_SIZE={} ({}): use a smaller batch, '
                                 'e.g. --BATCH_SIZE={}; {}.'.format(
                                     c.BATCH_SIZE, e.message.splitlines()[0][:100],
                                     max(1, c.BATCH_SIZE // 2), self.checkpoint.kept()))
            values = values.numpy()
            if int(first_bad) >= 0:
                raise UsageError('non-finite loss at global step {} (epoch {}, Gen_loss {}, '
                                 'Dis_loss {}); {}: lower --lr or use --mixed_precision=none, '
                                 'then run again.'.format(int(first_bad), epoch + 1, values[2],
                                                          values[3], self.checkpoint.kept()))
            self.call_hooks('on_train_batch_end', int(self.step), values)
        if self.stop.signal is not None and int(self.step_in_epoch) < self.steps_per_epoch:
            path = self.save()
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
        self.save()
        if self.stop.signal is not None:
            raise Stopped(self.stop.signal, 'after epoch {}; checkpoint saved. Run the same '
                          'command again to continue.'.format(epoch + 1))

    def save(self):
        """Save the checkpoint of the current step; signals wait until it is complete."""
        self.stop.saving = True
        try:
            return self.checkpoint.save(int(self.step), self.current)
        finally:
            self.stop.saving = False

    def export(self):
        """Write the whole generator to generator.keras (loadable without this code): the one
        sampled (see sampler()); the trained one goes to generator_raw.keras when they differ."""
        if self.chief:
            model.save_network(self.sampler(), self.files.generator, 'the generator')
            if self.sampled:
                model.save_network(self.Generator, self.files.generator_raw, 'the raw generator')
        return self.files.generator

    def run(self):
        """The whole run; returns the path of the exported generator."""
        c = self.config
        self.build()
        lock = run_files.lock_outputs(self.files) if self.chief else contextlib.nullcontext()
        with lock, self.stop:
            interrupts.kept = 'the last complete checkpoint and the records it holds are kept'
            self.restore_or_start()
            if c.export_only:
                path = self.export()
                print('Exported the generator of {} to {}'.format(self.latest, path))
                return path
            if self.chief:
                self.hooks = hooks_lib.default_hooks(c, self.files)
            self.hooks += self.extra_hooks
            start_epoch = int(self.epoch)
            logging.info('%s: %d images, %d steps of %d per epoch, %d replica(s), precision %s%s',
                         c.save_name, self.n_images, self.steps_per_epoch, c.BATCH_SIZE,
                         self.strategy.num_replicas_in_sync, devices.POLICIES[self.precision],
                         ', XLA' if c.jit else '')
            if start_epoch >= c.epochs:
                logging.warning('%s has already trained %d epochs: raise --epochs to train on.',
                                c.save_name, start_epoch)
            try:
                self.call_hooks('on_train_begin')
                for epoch in range(start_epoch, c.epochs):
                    self.train_epoch(epoch)
                    self.end_epoch(epoch)
                path = self.export()
                self.call_hooks('on_train_end')
            except BaseException as e:
                if isinstance(e, errors.OutputError):
                    e.note = e.note or self.checkpoint.kept()
                for hook in self.hooks:  # each ends, and a second error does not hide the first
                    with contextlib.suppress(Exception):
                        hook.on_train_end(self)
                raise
        if self.chief:
            logging.info('Done: loss log %s, sample grids %s/, generator %s. Plot them with: %s; '
                         'sample with: %s', self.files.loss_csv, self.files.plot_dir, path,
                         utils.command('plot_logs.py', self.files.loss_csv, '--gif'),
                         utils.command('generate.py', '--model=' + path))
        if self.train_step is not None:
            logging.info('train_step was traced %d time(s)',
                         self.train_step.experimental_get_tracing_count())
        if not self.chief:
            shutil.rmtree(self.checkpoint.scratch, ignore_errors=True)
        return path


def train(config, extra_hooks=()):
    """Train as config says (flax's train_and_evaluate): the entry point for main.py and tests."""
    return Trainer(config, extra_hooks).run()
