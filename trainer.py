"""The training run: one TrainConfig in; the run's state built once (RunState: data, the networks
and steps of gan.py, the checkpoint), then the Trainer's loop that calls the hooks (hooks.py),
handles stops and writes the checkpoints and files (run_files.py)."""
import contextlib
import dataclasses
import math
import signal
from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

import augment as augment_lib
import checkpoints
import conditions
import config as config_lib
import dataset
import devices
import ema as ema_lib
import errors
from errors import UsageError
import files
import gan
import hooks as hooks_lib
import interrupts
from interrupts import StopRequest, Stopped  # noqa: F401 (Stopped: for main.py and tests)
import model
import run_files
import utils


@dataclasses.dataclass(eq=False)
class RunState:
    """Everything one run is, built once by build(): what the Trainer's loop and the hooks read.
    Only the variables (tf.Variable: step, epoch, ...) and epoch_lr change while it trains."""
    config: config_lib.TrainConfig
    files: run_files.RunFiles       # every path of the run
    stop: StopRequest               # its .signal is set by Ctrl-C or SIGTERM
    strategy: tf.distribute.Strategy
    chief: bool                     # the worker that writes the run's files
    agree_stop: Any                 # with several workers: devices.stop_agreement's function
    precision: str                  # none, bf16 or fp16 (--mixed_precision=auto resolved)
    current: dict                   # the run's flags as it uses them (bbox False where ignored)
    saved: Optional[dict]           # the flags of the run resumed, if any
    seed: int                       # the run's seed (--seed, the saved one, or a random one)
    augment: tuple                  # DiffAugment policies
    condition: Optional[conditions.Condition]  # what --conditional draws (None: unconditional)
    images: tf.data.Dataset         # unbatched training images (uint8 ones: cast per batch), each
                                    # with its condition vector when conditional
    source_images: tf.data.Dataset  # the same, float32 in [-1, 1] and uncached (--eval_every)
    n_images: int
    steps_per_epoch: int            # steps in a full epoch
    Generator: keras.Model          # the networks being trained, and their optimizers
    Discriminator: keras.Model
    G_opt: Any
    D_opt: Any
    sampled: Optional[ema_lib.SampledGenerator]  # the averaged generator (--ema, --standing_stats)
    NOISE: tf.Variable              # the 16 fixed latents of the sample grids
    step: tf.Variable               # the global step (int64)
    epoch: tf.Variable              # epochs done
    step_in_epoch: tf.Variable      # steps done in this epoch
    sums: tf.Variable               # the four metrics summed over this epoch's steps (float64)
    checkpoint: checkpoints.RunCheckpoint
    train_step: Any                 # gan.make_train_step's traced step, and its device loop
    train_loop: Any
    epoch_lr: Optional[float] = None  # the generator's learning rate in this epoch

    @property
    def history(self):
        """{'loss', 'eval'}: the CSV rows the checkpoint keeps (string variables)."""
        return self.checkpoint.history

    @property
    def best_fid(self):
        """The lowest FID so far, kept in the checkpoint (a variable)."""
        return self.checkpoint.best_fid

    def sampler(self):
        """The generator whose samples the grids, evaluations and exports show: the averaged one
        with --ema, with standing BatchNorm statistics with --ema or --standing_stats."""
        return self.sampled.generator(int(self.step)) if self.sampled else self.Generator

    def metric_means(self):
        """The four metrics averaged over the steps of this epoch so far."""
        return self.sums.numpy() / max(1, int(self.step_in_epoch))


def build(c):
    """The RunState of config c: data, strategy, networks, optimizers and the checkpoint; nothing
    is written yet."""
    try:
        model.check_filters(c.filters, c.DisInSize)
    except ValueError as e:
        raise UsageError('--{}'.format(e))
    source = c.source  # an unknown --ImageType is refused here
    try:
        augment = augment_lib.parse_policy(c.augment)
    except ValueError as e:
        raise UsageError('--{}.'.format(e))
    decay_epochs = c.decay_epochs  # checked before anything is built
    condition = c.condition  # a --conditional run on data without labels is refused here
    # fresh layer names and seed generators for each run (its gc.collect: 0.25 s in a test)
    keras.backend.clear_session(free_memory=False)
    precision = devices.set_precision(c.mixed_precision)
    strategy = devices.make_strategy(c.strategy)
    chief = devices.is_chief(strategy)
    agree_stop = devices.stop_agreement(strategy)
    replicas = strategy.num_replicas_in_sync
    if c.BATCH_SIZE % replicas:
        raise UsageError('--BATCH_SIZE={} does not split over {} replicas: use a multiple of '
                         '{}.'.format(c.BATCH_SIZE, replicas, replicas))
    run_paths = run_files.RunFiles.of(c)
    # remote stores first: one out of reach leaves nothing made; the other workers write nothing
    for folder in sorted((c.LOG_PATH, c.MODEL_PATH, c.PLOT_PATH) if chief else (),
                         key=lambda f: not files.is_remote(f)):
        files.check_writable(folder)
    # the run's flags as it uses them: --bbox is reported False where it is ignored
    current = dict(dataclasses.asdict(c), bbox=source.crop_bbox)
    saved = run_files.saved_run_flags(run_paths, current, config_lib.RUN_SHAPE_FLAGS) \
        if c.resume else None
    seed = c.seed if c.seed is not None else (saved or {}).get('seed')
    seed = current['seed'] = int(np.random.default_rng().integers(0, 2 ** 31 - 1)) \
        if seed is None else seed
    keras.utils.set_random_seed(seed)
    images, source_images, n_images, steps_per_epoch = load_data(c, source, condition)

    # run bookkeeping, the same on every worker: plain local variables
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name='global_step')
    channels = source.channels
    with strategy.scope():
        try:
            G, D, G_opt, D_opt = gan.setup_model(
                channels, c.DisInSize, c.noise_dim, c.lr if c.lr_G is None else c.lr_G,
                steps_per_epoch, c.sync_bn, precision == 'fp16', step=step, filters=c.filters,
                lr_D=c.lr_D, decay_epochs=decay_epochs, dropout=c.dropout,
                spectral_norm=c.spectral_norm, logits=gan.needs_logits(c.loss, c.r1),
                arch=c.arch, condition_size=condition.size if condition else 0,
                conditioning=c.conditioning)
        except tf.errors.ResourceExhaustedError as e:
            raise UsageError('the networks\' weights do not fit in memory at --filters={} and '
                             '--noise_dim={} ({}): use smaller ones (the original\'s: 1024 and '
                             '100).'.format(c.filters, c.noise_dim, errors.short_text(e, 100)))
        sampled = ema_lib.SampledGenerator(
            G, model.Gen_Net(channels, c.noise_dim, c.DisInSize, filters=c.filters, arch=c.arch,
                             condition_size=condition.size if condition else 0,
                             conditioning=c.conditioning),
            c.ema, seed, condition) if c.ema or c.standing_stats else None
    noise = tf.Variable(tf.random.stateless_normal([16, c.noise_dim], seed=[seed, -1]),
                        trainable=False, name='fixed_noise')
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name='epoch')
    step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name='step_in_epoch')
    sums = tf.Variable(tf.zeros([4], tf.float64), trainable=False, name='metric_sums')
    extra = {'generator_ema': sampled.sampled} if c.ema else {}
    checkpoint = checkpoints.RunCheckpoint(
        run_paths.checkpoints, c.keep_checkpoints, chief, generator=G, discriminator=D,
        G_opt=G_opt, D_opt=D_opt, fixed_noise=noise, epoch=epoch, step_in_epoch=step_in_epoch,
        metric_sums=sums, global_step=step, rng=model.rng_variables([G, D]), **extra)
    element_spec = epoch_batches(c, strategy, images, seed, steps_per_epoch, 0, 0).element_spec
    train_step = gan.make_train_step([G, D], [G_opt, D_opt], strategy, c.noise_dim, c.BATCH_SIZE,
                                     seed, element_spec, c.jit, augment,
                                     sampled if c.ema else None, c.loss, c.r1,
                                     c.update_order == 'alternating')
    return RunState(
        config=c, files=run_paths, stop=StopRequest(), strategy=strategy, chief=chief,
        agree_stop=agree_stop,
        precision=precision, current=current, saved=saved, seed=seed, augment=augment,
        condition=condition, images=images, source_images=source_images, n_images=n_images,
        steps_per_epoch=steps_per_epoch, Generator=G, Discriminator=D, G_opt=G_opt, D_opt=D_opt,
        sampled=sampled, NOISE=noise, step=step, epoch=epoch, step_in_epoch=step_in_epoch,
        sums=sums, checkpoint=checkpoint, train_step=train_step,
        train_loop=gan.make_train_loop(train_step, step, step_in_epoch, sums))


def load_data(c, source, condition=None):
    """The training images (uint8 ones cast a batch at a time; each with its condition vector
    when conditional), the same uncached in float32 for the reference statistics of
    --eval_every, their count and the steps of an epoch."""
    images, n_images = source.load(uint8=True, condition=condition)
    source_images = (dataset.to_unit_range(images)
                     if tf.nest.flatten(images.element_spec)[0].dtype == tf.uint8 else images)
    full_epoch = n_images // c.BATCH_SIZE if c.jit else math.ceil(n_images / c.BATCH_SIZE)
    if full_epoch == 0:
        raise UsageError('{} images make no full batch of --BATCH_SIZE={} (--jit drops partial '
                         'batches): use a smaller batch.'.format(n_images, c.BATCH_SIZE))
    steps_per_epoch = min(c.steps_per_epoch or full_epoch, full_epoch)
    if c.BATCH_SIZE > n_images or c.steps_per_epoch > full_epoch:
        logging.warning('%d images make %d batches of --BATCH_SIZE=%d: an epoch is %d steps%s',
                        n_images, full_epoch, c.BATCH_SIZE, steps_per_epoch,
                        ', not --steps_per_epoch={}'.format(c.steps_per_epoch)
                        if c.steps_per_epoch > full_epoch else ' of all the images')
    if c.cache:
        if steps_per_epoch < full_epoch:
            raise UsageError('--cache needs whole epochs: with --steps_per_epoch={} of {} '
                             'batches, tf.data drops the unfinished cache every epoch. Drop '
                             '--steps_per_epoch or --cache.'.format(c.steps_per_epoch, full_epoch))
        # preresized records are cached as uint8: a quarter of the memory, the same images
        images = images.cache()
    return images, source_images, n_images, steps_per_epoch


def epoch_batches(c, strategy, images, seed, steps_per_epoch, epoch, done):
    """The distributed batches of the steps of epoch after the done ones, in the run's seeded
    order."""
    batches = dataset.make_batches(images, c.BATCH_SIZE, c.shuffle_buffer, seed * 1000 + epoch,
                                   c.jit, skip_batches=done)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    batches = batches.take(steps_per_epoch - done).with_options(options)
    return strategy.experimental_distribute_dataset(batches)


class Trainer:
    """The seed's training loop over a RunState: restore or start, train and end epochs, export.

    Side effects other than the checkpoint are hooks (hooks.py): the defaults made from the
    config, then extra_hooks, all called in that order with the RunState.
    """

    def __init__(self, run, extra_hooks=()):
        self.state = run
        self.extra_hooks = list(extra_hooks)
        self.hooks = []

    def restore_or_start(self):
        """Continue from the latest checkpoint, or move an old run aside and start fresh;
        returns the checkpoint restored, if any."""
        run = self.state
        c = run.config
        latest = run.checkpoint.restore(run.current) if c.resume else None
        if latest:
            logging.info('Resuming from %s: epoch %d of %d, after step %d of %d (global step %d)',
                         latest, int(run.epoch) + 1, c.epochs, int(run.step_in_epoch),
                         run.steps_per_epoch, int(run.step))
            for line in run_files.flag_differences(run.saved or {}, run.current):
                logging.warning('flag changed since the checkpoint: %s', line)
        elif c.export_only:
            raise UsageError('no checkpoint in {} to export: train first.'.format(
                run.files.checkpoints))
        elif run.chief:
            for path in run_files.move_aside(run.files.outputs()):
                logging.warning('Moved the previous run aside to %s', path)
        if not latest:
            run.checkpoint.start_manager([])
        if run.chief:
            files.write_json(run.files.flags, run.current, 'the run\'s flags')
            if run.condition:  # beside generator.keras: what its condition input means
                run.condition.save(run.files.model_dir)
        return latest

    def stop_signal(self):
        """The signal that stops the run now, or None: this process's, or with several workers
        whenever any of them got one (its own, else SIGTERM, as the preempted one got), so that
        all of them stop at the same step. Every worker calls it at the same points."""
        run = self.state
        signum = run.stop.signal  # read once: a signal during the agreement counts at the next
        if run.agree_stop is None:
            return signum
        if not run.agree_stop(signum is not None):
            return None
        return signum or signal.SIGTERM

    def call_hooks(self, method, *args):
        """Call method on every hook, in order, with the run's state."""
        for hook in self.hooks:
            getattr(hook, method)(self.state, *args)

    def train_epoch(self, epoch):
        """Train the (remaining) steps of epoch; raise Stopped, after saving, on SIGINT/SIGTERM."""
        run = self.state
        c = run.config
        batches = epoch_batches(c, run.strategy, run.images, run.seed, run.steps_per_epoch, epoch,
                                int(run.step_in_epoch))
        run.epoch_lr = float(run.G_opt.learning_rate)  # boundaries fall between epochs
        self.call_hooks('on_epoch_begin', epoch)
        iterator = iter(batches)
        stop = None
        while int(run.step_in_epoch) < run.steps_per_epoch:
            stop = self.stop_signal()
            if stop is not None:
                break
            k = min(c.steps_per_loop, run.steps_per_epoch - int(run.step_in_epoch))
            try:
                values, first_bad = run.train_loop(iterator, tf.constant(k, tf.int64))
            except (tf.errors.InvalidArgumentError, tf.errors.DataLossError,
                    tf.errors.OutOfRangeError) as e:
                raise c.source.read_error(e)
            except tf.errors.ResourceExhaustedError as e:
                raise UsageError('out of memory at --BATCH_SIZE={} ({}): use a smaller batch, '
                                 'e.g. --BATCH_SIZE={}; {}.'.format(
                                     c.BATCH_SIZE, e.message.splitlines()[0][:100],
                                     max(1, c.BATCH_SIZE // 2), run.checkpoint.kept()))
            values = values.numpy()
            if int(first_bad) >= 0:
                raise UsageError('non-finite loss at global step {} (epoch {}, Gen_loss {}, '
                                 'Dis_loss {}); {}: lower --lr or use --mixed_precision=none, '
                                 'then run again.'.format(int(first_bad), epoch + 1, values[2],
                                                          values[3], run.checkpoint.kept()))
            self.call_hooks('on_train_batch_end', int(run.step), values)
        if stop is not None:
            path = self.save()
            raise Stopped(stop, 'at epoch {}, step {} of {}; saved {}. Run the same '
                          'command again to continue from there.'.format(
                              epoch + 1, int(run.step_in_epoch), run.steps_per_epoch, path))

    def end_epoch(self, epoch):
        """The epoch's hooks (CSV row, grid, ...), then its checkpoint."""
        run = self.state
        self.call_hooks('on_epoch_end', epoch, run.metric_means())
        run.epoch.assign(epoch + 1)
        run.step_in_epoch.assign(0)
        run.sums.assign(tf.zeros([4], tf.float64))
        self.save()
        stop = self.stop_signal()
        if stop is not None:
            raise Stopped(stop, 'after epoch {}; checkpoint saved. Run the same '
                          'command again to continue.'.format(epoch + 1))

    def save(self):
        """Save the checkpoint of the current step; signals wait until it is complete."""
        run = self.state
        run.stop.saving = True
        try:
            return run.checkpoint.save(int(run.step), run.current)
        finally:
            run.stop.saving = False

    def export(self):
        """Write the whole generator to generator.keras (loadable without this code): the one
        sampled (see RunState.sampler); the trained one goes to generator_raw.keras when they
        differ."""
        run = self.state
        if run.chief:
            model.save_network(run.sampler(), run.files.generator, 'the generator')
            if run.sampled:
                model.save_network(run.Generator, run.files.generator_raw, 'the raw generator')
        return run.files.generator

    def run(self):
        """The whole run; returns the path of the exported generator."""
        run = self.state
        c = run.config
        lock = run_files.lock_outputs(run.files) if run.chief else contextlib.nullcontext()
        with lock, run.stop:
            interrupts.kept = 'the last complete checkpoint and the records it holds are kept'
            latest = self.restore_or_start()
            if c.export_only:
                path = self.export()
                print('Exported the generator of {} to {}'.format(latest, path))
                return path
            if run.chief:
                self.hooks = hooks_lib.default_hooks(c, run.files)
            self.hooks += self.extra_hooks
            start_epoch = int(run.epoch)
            logging.info('%s: %d images, %d steps of %d per epoch, %d replica(s), precision %s%s',
                         c.save_name, run.n_images, run.steps_per_epoch, c.BATCH_SIZE,
                         run.strategy.num_replicas_in_sync, config_lib.POLICIES[run.precision],
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
                    e.note = e.note or run.checkpoint.kept()
                for hook in self.hooks:  # each ends, and a second error does not hide the first
                    with contextlib.suppress(Exception):
                        hook.on_train_end(run)
                raise
        if run.chief:
            logging.info('Done: loss log %s, sample grids %s/, generator %s. Plot them with: %s; '
                         'sample with: %s', run.files.loss_csv, run.files.plot_dir, path,
                         utils.command('plot_logs.py', run.files.loss_csv, '--gif'),
                         utils.command('generate.py', '--model=' + path))
        if run.train_step.experimental_get_tracing_count():
            logging.info('train_step was traced %d time(s)',
                         run.train_step.experimental_get_tracing_count())
        if not run.chief:
            files.rmtree(run.checkpoint.scratch)
        return path


def train(config, extra_hooks=()):
    """Train as config says (flax's train_and_evaluate): the entry point for main.py and tests;
    returns the RunState, trained."""
    run = build(config)
    Trainer(run, extra_hooks).run()
    return run
