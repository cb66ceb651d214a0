"""Every side effect of a training run, as a hook the Trainer calls: the progress bar, the CSV loss
log, sample grids, TensorBoard, evaluation, weight files and the epoch summary."""
import contextlib
import errno
import glob
import os
import struct
import time

import numpy as np
import tensorflow as tf
from absl import logging
from tqdm import tqdm

import metrics
import model
import csv_log
import errors
import files
import utils


class Hook:
    """A side effect of training, called by the Trainer; subclasses override what they need.

    What a hook may read of the trainer (`run` below), and nothing else:
      run.config           the trainer.Config
      run.files            the run_files.RunFiles naming every path of the run
      run.step, run.epoch, run.step_in_epoch   global step, epochs done, steps done in this epoch
                           (tf.Variables; int() them)
      run.steps_per_epoch  steps in a full epoch
      run.n_images, run.source_images          how many training images, and those images
                           (unbatched, float32 in [-1, 1], uncached)
      run.seed             the run's seed
      run.NOISE            the 16 fixed latents of the sample grids
      run.Generator, run.Discriminator         the networks being trained
      run.sampler()        the generator to sample and evaluate (the averaged one with --ema)
      run.metric_means()   [Real_P, Fake_P, Gen_loss, Dis_loss] of this epoch so far
      run.epoch_lr         the generator's learning rate in this epoch
      run.history          {'loss', 'eval'}: the CSV rows the checkpoint keeps (string tf.Variables)
      run.best_fid         the lowest FID so far, kept in the checkpoint (a tf.Variable)
      run.stop             the StopRequest (its .signal is set by Ctrl-C)
    """

    def on_train_begin(self, run):
        """Once, after the models are restored or started, before the first step."""

    def on_epoch_begin(self, run, epoch):
        """Before the first (or first remaining) step of epoch (0-based)."""

    def on_train_batch_end(self, run, step, values):
        """After each loop of --steps_per_loop steps, ending at global step step (1-based), with
        the last step's [Real_P, Fake_P, Gen_loss, Dis_loss]."""

    def on_epoch_end(self, run, epoch, means):
        """After the last step of epoch, before its checkpoint, with the epoch's mean metrics."""

    def on_train_end(self, run):
        """Once, however the run ends (also on errors and stops)."""


class ProgressBar(Hook):
    """A tqdm bar per epoch: step, images/s, ETA and the running metrics."""

    def __init__(self):
        self.bar = None

    def on_epoch_begin(self, run, epoch):
        self.bar = tqdm(total=run.steps_per_epoch, initial=int(run.step_in_epoch),
                        unit='step', dynamic_ncols=True,
                        desc='epoch {}/{}'.format(epoch + 1, run.config.epochs))

    def on_train_batch_end(self, run, step, values):
        self.bar.update(int(run.step_in_epoch) - self.bar.n)
        rate = self.bar.format_dict['rate']
        self.bar.set_postfix(
            img_s='{:.0f}'.format(rate * run.config.BATCH_SIZE) if rate else '?',
            refresh=False, **{name: '{:.3f}'.format(value) for name, value
                              in zip(csv_log.CSV_COLUMNS[1:], run.metric_means())})

    def on_epoch_end(self, run, epoch, means):
        self.on_train_end(run)

    def on_train_end(self, run):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def restart_csv(path, run, kind, columns):
    """Rewrite a CSV log as the restored checkpoint has it: the rows of the epochs it finished,
    nothing after; True when they came from the file (a checkpoint from before it kept them)."""
    kept = run.history[kind].numpy().decode()
    from_file = not kept and int(run.epoch) > 0
    if kept and os.path.isfile(path):
        with open(path, errors='replace') as f:
            if not f.read().startswith(','.join(columns) + '\n' + kept):
                logging.warning('%s did not hold the %d rows its checkpoint keeps (a row cut off '
                                'by a crash or a full disk?): rewritten from the checkpoint',
                                path, kept.count('\n'))
    run.history[kind].assign(csv_log.start_csv(path, int(run.epoch), columns,
                                             None if from_file else kept))
    return from_file


def append_row(path, run, kind, epoch, values):
    """Append an epoch's row to a CSV log and to the rows the checkpoint keeps."""
    row = csv_log.csv_row(epoch, values)
    csv_log.append_csv(path, row)
    run.history[kind].assign(run.history[kind] + row)


class CsvLogger(Hook):
    """The seed's loss CSV: one row per finished epoch, rewritten from the checkpoint on resume,
    so that a row cut off by a crash or a full disk is never lost or doubled."""

    def __init__(self, path):
        self.path = path

    def on_train_begin(self, run):
        restart_csv(self.path, run, 'loss', csv_log.CSV_COLUMNS)

    def on_epoch_end(self, run, epoch, means):
        append_row(self.path, run, 'loss', epoch, means)


class Events:
    """The run's TensorBoard events file and its writer, checked after every flush: TensorFlow's
    writer drops the records it cannot write (a full disk) and its flush can still succeed, which
    left a third of the events file written with exit 0."""

    def __init__(self, folder):
        self.folder = folder
        self.writer = tf.summary.create_file_writer(folder)
        self.step = None  # the step of the last summary written (steps only grow)
        self.path, self.checked = None, 0  # the events file, and its bytes checked so far
        self.checked_step = None  # the step of the last record checked

    @contextlib.contextmanager
    def at(self, step):
        """Write summaries at step in the body; a failed write becomes an OutputError."""
        with files.writing('TensorBoard events', self.folder), self.writer.as_default(step=step):
            yield
        self.step = step

    def flush(self):
        """Flush the writer, then check that the file holds whole records up to the last step
        written; OutputError otherwise."""
        with files.writing('TensorBoard events', self.folder):
            self.writer.flush()
        if self.step is None:
            return
        if self.path is None:  # this process's: events.out.tfevents.{time}.{host}.{pid}.{n}.v2
            mine = glob.glob(os.path.join(self.folder, '*.{}.*'.format(os.getpid())))
            self.path = max(mine, key=os.path.getmtime, default=None)
        last = None
        with files.writing('TensorBoard events', self.folder), open(self.path or '', 'rb') as f:
            f.seek(self.checked)
            data = f.read()
        offset = 0
        while offset + 12 <= len(data):
            length = struct.unpack('<Q', data[offset:offset + 8])[0]
            if offset + 16 + length > len(data):
                break
            last = data[offset + 12:offset + 12 + length]
            offset += 16 + length
        step = tf.compat.v1.Event.FromString(last).step if last else self.checked_step
        if offset != len(data) or step != self.step:
            raise errors.OutputError('TensorBoard events', self.folder, OSError(
                errno.ENOSPC, 'the events file {} lacks what was written up to step {} (it ends '
                '{}): No space left?'.format(self.path, self.step, 'in a cut record'
                                             if offset != len(data) else 'at step {}'.format(step))))
        self.checked, self.checked_step = self.checked + offset, step


class SampleGrids(Hook):
    """The seed's per-epoch 4x4 grid of the fixed noise, also sent to TensorBoard."""

    def __init__(self, files, events=None):
        self.files = files
        self.events = events

    def on_epoch_end(self, run, epoch, means):
        grid = utils.generate_and_save_images(run.sampler()(run.NOISE, training=False),
                                              epoch + 1, self.files)
        if self.events:
            with self.events.at(int(run.step)):
                tf.summary.image('samples', grid[None], description='epoch {}'.format(epoch + 1))
            self.events.flush()


class RealGrid(Hook):
    """A 4x4 grid of real training images as the networks see them (crop, size, colour), at the
    start of a run, to check the data against."""

    def __init__(self, files):
        self.files = files

    def on_train_begin(self, run):
        try:
            images = next(iter(run.source_images.batch(16))).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
            raise run.config.source.read_error(e)
        if len(images) < 16:  # fewer images than tiles: repeat them
            images = np.resize(images, (16,) + images.shape[1:])
        utils.write_png(self.files.real_grid, utils.viewable(utils.make_grid(
            utils.to_uint8(images), 4, 4)), 'the grid of real images')


class TensorBoardScalars(Hook):
    """The running metrics, learning rate and images/s every log_every steps; the events are
    flushed at the end, so that a full disk is reported, not lost."""

    def __init__(self, events, log_every):
        self.events, self.log_every = events, log_every
        self.window = self.last = None

    def on_epoch_begin(self, run, epoch):
        self.window, self.last = time.time(), int(run.step)

    def on_train_batch_end(self, run, step, values):
        if step // self.log_every == self.last // self.log_every:
            return  # no multiple of log_every passed in this loop
        now = time.time()
        with self.events.at(step):
            for name, value in zip(csv_log.CSV_COLUMNS[1:], run.metric_means()):
                tf.summary.scalar(name, value)
            tf.summary.scalar('learning_rate', run.epoch_lr)
            tf.summary.scalar('images_per_second',
                              (step - self.last) * run.config.BATCH_SIZE / (now - self.window))
        self.window, self.last = now, step

    def on_train_end(self, run):
        self.events.flush()


class WeightSaver(Hook):
    """The seed's .weights.h5 files every save_every epochs, and after the last epoch."""

    def __init__(self, files, save_every, epochs):
        self.files, self.save_every, self.epochs = files, save_every, epochs

    def on_epoch_end(self, run, epoch, means):
        if (epoch + 1) % self.save_every == 0 or epoch + 1 == self.epochs:
            for net, path in ((run.Generator, self.files.generator_weights),
                              (run.Discriminator, self.files.discriminator_weights)):
                model.save_network(net, path, 'the {} weights'.format(net.name))


class Evaluation(Hook):
    """FID, KID, precision/recall and IS every `every` epochs: a row of the eval CSV, TensorBoard
    scalars, and best/generator.keras whenever the FID improves.

    reference: a metrics.Reference to compare with; by default the config's feature model on the
    training images (cached in the statistics folder)."""

    def __init__(self, config, files, events=None, reference=None, extractor=None):
        self.config, self.files, self.events = config, files, events
        self.extractor, self.reference = extractor, reference

    def on_train_begin(self, run):
        c = self.config
        if self.extractor is None:
            self.extractor = metrics.FeatureExtractor(*metrics.load_feature_model(
                c.feature_model, c.inception_weights, c.inception_graph))
        if self.reference is None and c.reference_stats:
            self.reference = metrics.load_stats(c.reference_stats)
        elif self.reference is None:
            source = c.source
            self.reference = metrics.reference_features(
                self.extractor, run.source_images, min(c.ref_samples, run.n_images),
                source.identity(), source.stats_dir(c.stats_dir))
        # the eval CSV's companion: how its numbers were measured
        files.write_json(self.files.eval_protocol, dict(
            self.extractor.protocol, reference=self.reference.origin,
            num_reference=None if self.reference.features is None
            else len(self.reference.features),
            num_samples=c.eval_samples, latents='seeded by the run\'s seed, the same every '
            'evaluation', generator='the sampled one (averaged with --ema)'))
        if restart_csv(self.files.eval_csv, run, 'eval', csv_log.EVAL_COLUMNS):
            run.best_fid.assign(min(csv_log.read_csv(self.files.eval_csv, csv_log.EVAL_COLUMNS)['FID'],
                                    default=float('inf')))

    def on_epoch_end(self, run, epoch, means):
        if (epoch + 1) % self.config.eval_every:
            return
        generator = run.sampler()
        result = metrics.evaluate(generator, self.extractor, self.reference,
                                  self.config.eval_samples, seed=run.seed)
        values = [result['fid'], result['kid_mean'], result['precision'], result['recall'],
                  result['is_mean'], result['seconds']]
        append_row(self.files.eval_csv, run, 'eval', epoch, values)
        if self.events:
            with self.events.at(int(run.step)):
                for name, value in zip(csv_log.EVAL_COLUMNS[1:-1], values):
                    tf.summary.scalar('eval/' + name, value)
        logging.info('Epoch %d: FID %.4f, KID %.5f, precision %.3f, recall %.3f, IS %.3f (%d '
                     'samples, %.0f s)', epoch + 1, *values[:5], self.config.eval_samples,
                     result['seconds'])
        if result['fid'] < float(run.best_fid):
            run.best_fid.assign(result['fid'])
            model.save_network(generator, self.files.best_generator, 'the best generator')
            files.write_json(self.files.best_json, dict(result, epoch=epoch), 'best.json')
            logging.info('Best FID so far: saved %s', self.files.best_generator)


# a loss above this is no longer training: the seed's losses stay within a few units
EXPLODED = 1000.0


class EpochSummary(Hook):
    """One log line per epoch, and a warning when the losses explode or the discriminator wins
    completely."""

    def __init__(self, files):
        self.files = files
        self.start = None

    def on_epoch_begin(self, run, epoch):
        self.start = time.time()

    def on_epoch_end(self, run, epoch, means):
        logging.info('Epoch %d/%d in %.1f s: Real_P %.4f, Fake_P %.4f, Gen_loss %.4f, '
                     'Dis_loss %.4f, lr %.2e', epoch + 1, run.config.epochs,
                     time.time() - self.start, *means, run.epoch_lr)
        if max(abs(means[2]), abs(means[3])) > EXPLODED:
            logging.warning('Epoch %d: the losses exploded (Gen_loss %.3g, Dis_loss %.3g; a few '
                            'is usual): the learning rate (%.3g) is probably far too high. Stop '
                            'with Ctrl-C and start again with a lower --lr (the original\'s is '
                            '2e-4) and --noresume', epoch + 1, means[2], means[3], run.epoch_lr)
        if means[1] < 0.01 and means[0] > 0.99:
            logging.warning('Epoch %d: the discriminator wins completely (Real_P %.4f, Fake_P '
                            '%.4f): training has probably collapsed; look at the grids in %s',
                            epoch + 1, means[0], means[1], self.files.plot_dir)


def default_hooks(config, files):
    """The seed's side effects and this tool's additions, as config asks, in the seed's order."""
    events = Events(files.tensorboard) if config.tensorboard else None
    hooks = [ProgressBar(), CsvLogger(files.loss_csv), RealGrid(files), SampleGrids(files, events)]
    if events:
        hooks.append(TensorBoardScalars(events, config.log_every))
    if config.eval_every:
        hooks.append(Evaluation(config, files, events))
    return hooks + [WeightSaver(files, config.save_every, config.epochs), EpochSummary(files)]
