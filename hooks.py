"""Every side effect of a training run, as a hook the Trainer calls: the progress bar, the CSV loss
log, sample grids, TensorBoard, evaluation, weight files and the epoch summary."""
import contextlib
import errno
import os
import struct
import time

import numpy as np
import tensorflow as tf
from absl import logging
from tqdm import tqdm

import csv_log
import errors
import files
import metrics
import model
import utils


class Hook:
    """A side effect of training, called by the Trainer; subclasses override what they need.

    Each method gets the run's state, `run`: a trainer.RunState, whose fields say what a hook
    may read (the config and paths in run.config and run.files, the networks, the step
    variables, run.sampler(), run.metric_means(), ...). A hook's own settings are its arguments.
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
    nothing after."""
    kept = run.history[kind].numpy().decode()
    if kept and files.isfile(path):
        with files.open_file(path, errors='replace') as f:
            if not f.read().startswith(','.join(columns) + '\n' + kept):
                logging.warning('%s did not hold the %d rows its checkpoint keeps (a row cut off '
                                'by a crash or a full disk?): rewritten from the checkpoint',
                                path, kept.count('\n'))
    csv_log.start_csv(path, kept, columns)


def append_row(path, run, kind, epoch, values):
    """Append an epoch's row to a CSV log and to the rows the checkpoint keeps."""
    row = csv_log.csv_row(epoch, values)
    csv_log.append_csv(path, row)
    run.history[kind].assign(run.history[kind] + row)


class CsvLogger(Hook):
    """The seed's loss CSV: one row per finished epoch, rewritten from the checkpoint on resume,
    so that a row cut off by a crash or a full disk is never lost or doubled."""

    def on_train_begin(self, run):
        restart_csv(run.files.loss_csv, run, 'loss', csv_log.CSV_COLUMNS)

    def on_epoch_end(self, run, epoch, means):
        append_row(run.files.loss_csv, run, 'loss', epoch, means)


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
            mine = files.glob(os.path.join(self.folder, '*.{}.*'.format(os.getpid())))
            # the newest: by time, then by name, which holds the time made and a count (ram://
            # keeps no times)
            self.path = max(mine, key=lambda p: (files.getmtime(p), p), default=None)
        last = None
        with files.writing('TensorBoard events', self.folder), \
                files.open_file(self.path or '', 'rb') as f:
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


# a conditional run's grids: this many of the fixed latents, the same in the row of each class
CONDITIONAL_COLUMNS = 8


def conditional_grid_inputs(noise, condition):
    """The latents and conditions of a conditional grid: a row per class (or attribute
    combination, conditions.Condition.combinations), the first CONDITIONAL_COLUMNS latents in
    each; and the grid's rows and columns."""
    rows = condition.combinations()
    latents = np.tile(np.asarray(noise)[:CONDITIONAL_COLUMNS], (len(rows), 1))
    return latents, np.repeat(rows, CONDITIONAL_COLUMNS, axis=0), len(rows), CONDITIONAL_COLUMNS


class SampleGrids(Hook):
    """The seed's per-epoch 4x4 grid of the fixed noise, also sent to TensorBoard; conditional
    runs draw a row per class with the same latents across rows."""

    def __init__(self, events=None):
        self.events = events

    def on_epoch_end(self, run, epoch, means):
        if run.condition is None:
            images, rows, cols = run.sampler()(run.NOISE, training=False), 4, 4
        else:
            latents, vectors, rows, cols = conditional_grid_inputs(run.NOISE, run.condition)
            images = run.sampler()([latents, vectors], training=False)
        grid = utils.generate_and_save_images(images, epoch + 1, run.files, rows, cols)
        if self.events:
            with self.events.at(int(run.step)):
                tf.summary.image('samples', grid[None], description='epoch {}'.format(epoch + 1))
            self.events.flush()


# the real images a conditional real.png looks through for each row's class: spread evenly over
# data of up to 10 times as many (a folder's records come class by class), else the first ones
REAL_SEARCHED = 5000


def real_rows(batches, rows, cols):
    """cols real images of the condition of each row (exact matches) from labelled batches of
    images and condition vectors, row after row; tiles no image was found for stay black."""
    found = [[] for _ in rows]
    for images, vectors in batches:
        for image, vector in zip(images.numpy(), vectors.numpy()):
            for i, row in enumerate(rows):
                if len(found[i]) < cols and np.array_equal(vector, row):
                    found[i].append(image)
        if all(len(f) == cols for f in found):
            break
    shape = tuple(images.shape[1:])
    return np.stack([np.stack(f + [-np.ones(shape, np.float32)] * (cols - len(f)))
                     for f in found]).reshape((-1,) + shape)


class RealGrid(Hook):
    """A 4x4 grid of real training images as the networks see them (crop, size, colour), at the
    start of a run, to check the data against; a conditional run's has a row per class, as its
    sample grids."""

    def on_train_begin(self, run):
        try:
            if run.condition is None:
                images, rows, cols = next(iter(run.source_images.batch(16))).numpy(), 4, 4
            else:
                _, vectors, rows, cols = conditional_grid_inputs(run.NOISE, run.condition)
                stride = -(-run.n_images // REAL_SEARCHED) if run.n_images <= 10 * REAL_SEARCHED \
                    else 1
                images = real_rows(run.source_images.shard(stride, 0).take(REAL_SEARCHED)
                                   .batch(500), vectors[::cols], cols)
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
            raise run.config.source.read_error(e)
        if len(images) < rows * cols:  # fewer images than tiles: repeat them
            images = np.resize(images, (rows * cols,) + images.shape[1:])
        utils.write_png(run.files.real_grid, utils.viewable(utils.make_grid(
            utils.to_uint8(images), rows, cols)), 'the grid of real images')


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

    def __init__(self, save_every):
        self.save_every = save_every

    def on_epoch_end(self, run, epoch, means):
        if (epoch + 1) % self.save_every == 0 or epoch + 1 == run.config.epochs:
            for net, path in ((run.Generator, run.files.generator_weights),
                              (run.Discriminator, run.files.discriminator_weights)):
                model.save_network(net, path, 'the {} weights'.format(net.name))


class Evaluation(Hook):
    """FID, KID, precision/recall and IS every `every` epochs: a row of the eval CSV, TensorBoard
    scalars, and best/generator.keras whenever the FID improves.

    samples: generated images per evaluation; extractor and reference: a metrics.FeatureExtractor
    and metrics.Reference to compare with; by default the run's feature model (--feature_model,
    ...) on its training images (cached in the statistics folder). A conditional run also
    measures its conditional accuracy (judge: a metrics.LabelClassifier, by default one trained on
    its labelled images and cached beside the statistics), a column of its eval CSV."""

    def __init__(self, every, samples, events=None, reference=None, extractor=None, judge=None):
        self.every, self.samples, self.events = every, samples, events
        self.extractor, self.reference, self.judge = extractor, reference, judge

    def on_train_begin(self, run):
        c = run.config
        source = c.source
        if self.extractor is None:
            self.extractor = metrics.FeatureExtractor(*metrics.load_feature_model(
                c.feature_model, c.inception_weights, c.inception_graph))
        if self.reference is None and c.reference_stats:
            self.reference = metrics.load_stats(c.reference_stats)
        elif self.reference is None:
            self.reference = metrics.reference_features(
                self.extractor, run.source_images, min(c.ref_samples, run.n_images),
                source.identity(), source.stats_dir(c.stats_dir), condition=run.condition)
        if run.condition is not None and self.judge is None:
            self.judge = metrics.label_classifier(run.source_images, run.n_images, run.condition,
                                                  source.identity(), source.stats_dir(c.stats_dir))
        # the eval CSV's companion: how its numbers were measured
        files.write_json(run.files.eval_protocol, dict(
            self.extractor.protocol, reference=self.reference.origin,
            num_reference=None if self.reference.features is None
            else len(self.reference.features),
            num_samples=self.samples, latents='seeded by the run\'s seed, the same every '
            'evaluation', generator='the sampled one (averaged with --ema)'))
        restart_csv(run.files.eval_csv, run, 'eval', csv_log.eval_columns(run.condition))

    def on_epoch_end(self, run, epoch, means):
        if (epoch + 1) % self.every:
            return
        generator = run.sampler()
        result = metrics.evaluate(generator, self.extractor, self.reference, self.samples,
                                  seed=run.seed, condition=run.condition, judge=self.judge)
        values = [result['fid'], result['kid_mean'], result['precision'], result['recall'],
                  result['is_mean'], result['seconds']]
        if run.condition is not None:
            values.append(result['conditional_accuracy'])
        append_row(run.files.eval_csv, run, 'eval', epoch, values)
        if self.events:
            with self.events.at(int(run.step)):
                for name, value in zip(csv_log.eval_columns(run.condition)[1:], values):
                    if name != 'seconds':
                        tf.summary.scalar('eval/' + name, value)
        logging.info('Epoch %d: FID %.4f, KID %.5f, precision %.3f, recall %.3f, IS %.3f (%d '
                     'samples, %.0f s)%s', epoch + 1, *values[:5], self.samples,
                     result['seconds'], '' if run.condition is None else
                     ', conditional accuracy {:.3f} (its classifier: {:.3f} on real '
                     'images)'.format(result['conditional_accuracy'],
                                      result['classifier_accuracy']))
        if result['fid'] < float(run.best_fid):
            run.best_fid.assign(result['fid'])
            model.save_network(generator, run.files.best_generator, 'the best generator')
            if run.condition is not None:
                run.condition.save(run.files.best_dir)
            files.write_json(run.files.best_json, dict(result, epoch=epoch), 'best.json')
            logging.info('Best FID so far: saved %s', run.files.best_generator)


# a loss above this is no longer training: the seed's losses stay within a few units
EXPLODED = 1000.0


class EpochSummary(Hook):
    """One log line per epoch, and a warning when the losses explode or the discriminator wins
    completely."""

    def __init__(self):
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
                            epoch + 1, means[0], means[1], run.files.plot_dir)


def default_hooks(config, paths):
    """The seed's side effects and this tool's additions, as config asks, in the seed's order
    (paths: the run's run_files.RunFiles)."""
    events = Events(paths.tensorboard) if config.tensorboard else None
    hooks = [ProgressBar(), CsvLogger(), RealGrid(), SampleGrids(events)]
    if events:
        hooks.append(TensorBoardScalars(events, config.log_every))
    if config.eval_every:
        hooks.append(Evaluation(config.eval_every, config.eval_samples, events))
    return hooks + [WeightSaver(config.save_every), EpochSummary()]
