"""Train the seed's DCGAN on MNIST or CelebA TFRecords: python main.py [flags]."""
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ info lines off by default
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from tqdm import tqdm  # noqa: E402

import dataset  # noqa: E402
import model  # noqa: E402
import utils  # noqa: E402
from utils import UsageError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string('DatasetPath', 'YourDatasetPath',
                    'CelebA root; used by convert_tfrecord.py, accepted here as in the seed')
flags.DEFINE_enum('Partition', 'all', ['train', 'val', 'test', 'all'],
                  'CelebA partition to train on; all = train, val and test together (default all)')
flags.DEFINE_enum('ImageType', 'img_celeba',
                  ['img_celeba', 'img_align_celeba', 'img_align_celeba_png', 'MNIST'],
                  'CelebA image type to train on, or MNIST (default img_celeba)')
flags.DEFINE_boolean('bbox', True, 'crop img_celeba faces by their bounding box; ignored (reported '
                     'False) for every other type (default True)')
flags.DEFINE_string('TFRecordPath', 'TFRecordFilePath', 'folder of the converted CelebA records')
flags.DEFINE_string('LOG_PATH', 'logs/', 'folder for the CSV loss logs and TensorBoard (default logs/)')
flags.DEFINE_string('MODEL_PATH', 'models/', 'folder for weights and checkpoints (default models/)')
flags.DEFINE_string('PLOT_PATH', 'plot/', 'folder for the per-epoch sample grids (default plot/)')
flags.DEFINE_integer('DisInSize', 64, 'image side in pixels fed to D and made by G: 32, 64 or 128 '
                     '(default 64)')
flags.DEFINE_integer('noise_dim', 100, 'latent size (default 100)')
flags.DEFINE_integer('BATCH_SIZE', 128, 'global batch size in images, over all replicas (default 128)')
flags.DEFINE_float('lr', 2e-4, 'Adam learning rate (beta_1 0.5), divided by 10 after epochs 10, 20 '
                   'and 25 (default 2e-4)')
flags.DEFINE_integer('epochs', 35, 'number of epochs (default 35)')

flags.DEFINE_string('mnist_path', '', 'local mnist.npz in Keras\' layout; empty (default) = Keras\' '
                    'download')
flags.DEFINE_integer('steps_per_epoch', 0, 'batches per epoch; 0 (default) = the whole dataset')
flags.DEFINE_integer('save_every', 15, 'save .weights.h5 files every N epochs and after the last '
                     '(default 15)')
flags.DEFINE_boolean('resume', True, 'continue from the latest checkpoint of this SaveName '
                     '(default True); --noresume moves the old run aside and starts fresh')
flags.DEFINE_integer('seed', None, 'random seed for weights, data order and noise; default: a '
                     'random one, recorded in flags.json and reused on resume')
flags.DEFINE_integer('keep_checkpoints', 3, 'how many end-of-epoch checkpoints to keep (default 3)')
flags.DEFINE_boolean('tensorboard', True, 'write TensorBoard logs to {LOG_PATH}/tensorboard/{SaveName} '
                     '(default True)')
flags.DEFINE_integer('log_every', 50, 'steps between TensorBoard scalar points (default 50)')
flags.DEFINE_boolean('export_only', False, 'export the latest checkpoint\'s generator to '
                     'generator.keras and exit, without training (default False)')
flags.DEFINE_boolean('jit', False, 'compile train_step with XLA; drops the last partial batch so '
                     'shapes stay static (default False)')
flags.DEFINE_enum('mixed_precision', 'none', ['none', 'bf16', 'fp16'],
                  'Keras mixed-precision policy; fp16 adds loss scaling (default none)')
flags.DEFINE_boolean('cache', False, 'keep the decoded images in memory after the first epoch '
                     '(default False)')
flags.DEFINE_integer('shuffle_buffer', 1000, 'shuffle buffer in images (default 1000; the seed used 300)')
flags.DEFINE_enum('strategy', 'default', ['default', 'mirrored', 'multi_worker'],
                  'tf.distribute strategy: default (one device), mirrored (all GPUs of this '
                  'machine), multi_worker (machines named by TF_CONFIG) (default default)')
flags.DEFINE_boolean('sync_bn', False, 'synchronise BatchNorm statistics across replicas '
                     '(default False)')

# flags that shape the networks: a checkpoint made with other values cannot be restored
SHAPE_FLAGS = ('ImageType', 'DisInSize', 'noise_dim')
POLICIES = {'none': 'float32', 'bf16': 'mixed_bfloat16', 'fp16': 'mixed_float16'}


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


def create_dataset(image_type, bbox, size, mnist_path, tfrecord_path, partition):
    """The unbatched training images and how many there are."""
    if image_type == 'MNIST':
        images = dataset.load_mnist(mnist_path or None, size)
        return images, int(images.cardinality())
    logging.info('Reading CelebA %s records from %s', partition, tfrecord_path)
    files = dataset.partition_files(tfrecord_path, partition)
    images = dataset.load_celeba(tfrecord_path, partition, image_type, bbox, size, files=files)
    return images, dataset.celeba_size(tfrecord_path, partition)


def setup_model(channels, image_size, noise_dim, lr, steps_per_epoch, sync_bn=False, fp16=False):
    """Generator, Discriminator and their Adam optimizers (beta_1 0.5), built and ready to restore."""
    Generator = model.Gen_Net(channels, noise_dim, image_size, sync_bn=sync_bn)
    Discriminator = model.Dis_Net(image_size, channels, sync_bn=sync_bn)
    opts = []
    for net in (Generator, Discriminator):
        opt = keras.optimizers.Adam(utils.lr_schedule(lr, steps_per_epoch), beta_1=0.5)
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
    # TF 2.21's grappler remapper fails on this graph's LeakyReLU gradient, logs an error and
    # drops its rewrites anyway: switching it off changes no speed (measured) and no output
    tf.config.optimizer.set_experimental_options({'remapping': False})

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


def batches_or_fail(batches, source):
    """Iterate over batches, turning a record that cannot be read or decoded into a UsageError."""
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
            raise UsageError('cannot read a training image from {} ({}): run python '
                             'convert_tfrecord.py --verify --TFRecordPath={} and reconvert what it '
                             'reports.'.format(source, e.message.splitlines()[0][:200], source))
        yield batch


def rng_variables(models):
    """The Dropout layers' seed-generator states, which checkpoints do not track by themselves."""
    return [v for net in models for v in net.non_trainable_variables if 'seed_generator' in v.path]


def save_name(image_type, bbox):
    """The seed's SaveName, e.g. MNIST-False or img_celeba-True."""
    return '{}-{}'.format(image_type, bbox)


def run_outputs(name):
    """Every path one run writes for SaveName name."""
    return [os.path.join(FLAGS.MODEL_PATH, name), os.path.join(FLAGS.PLOT_PATH, name),
            os.path.join(FLAGS.LOG_PATH, name + '-loss.csv'),
            os.path.join(FLAGS.LOG_PATH, 'tensorboard', name)]


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
    with open(flags_path) as f:
        saved = json.load(f)
    wrong = [k for k in SHAPE_FLAGS if saved.get(k) != current.get(k)]
    if wrong:
        raise UsageError('the checkpoint in {} was made with {}, which shape the networks: rerun '
                         'with those values, or add --noresume to start a new run (the old one is '
                         'moved aside).'.format(os.path.dirname(flags_path), ', '.join(
                             '--{}={}'.format(k, saved[k]) for k in wrong)))
    return saved


def log_scalars(writer, step, means, lr, images_per_second):
    """TensorBoard points: the four CSV metrics so far this epoch, learning rate and speed."""
    with writer.as_default(step=step):
        for name, value in zip(utils.CSV_COLUMNS[1:], means):
            tf.summary.scalar(name, value)
        tf.summary.scalar('learning_rate', lr)
        tf.summary.scalar('images_per_second', images_per_second)


def flag_differences(saved, current):
    """Lines 'name: saved -> current' for flags whose values changed."""
    return ['{}: {} -> {}'.format(k, saved[k], current.get(k)) for k in sorted(saved)
            if k in current and saved[k] != current[k]]


def epoch_batches(images, strategy, seed, epoch, done, steps_per_epoch):
    """One epoch's batches in its seeded order, from batch done on, distributed over the replicas."""
    batches = dataset.make_batches(images, FLAGS.BATCH_SIZE, FLAGS.shuffle_buffer,
                                   seed * 1000 + epoch, FLAGS.jit, skip_batches=done)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    batches = batches.take(steps_per_epoch - done).with_options(options)
    return strategy.experimental_distribute_dataset(batches)


def check_finite(values, step, epoch, ckpt_dir):
    """Stop the run at a non-finite loss, keeping the last good checkpoint."""
    if not np.all(np.isfinite(values)):
        raise UsageError('non-finite loss at global step {} (epoch {}, Gen_loss {}, Dis_loss {}); '
                         'the last good checkpoint in {} is kept: lower --lr or use '
                         '--mixed_precision=none, then rerun to resume from it.'.format(
                             step, epoch + 1, values[2], values[3], ckpt_dir))


def show_progress(bar, means):
    """The progress bar's postfix: images/s and the four metrics so far this epoch."""
    rate = bar.format_dict['rate']
    bar.set_postfix(img_s='{:.0f}'.format(rate * FLAGS.BATCH_SIZE) if rate else '?', refresh=False,
                    **{name: '{:.3f}'.format(value)
                       for name, value in zip(utils.CSV_COLUMNS[1:], means)})


def exit_stopped(signum, message):
    """Say where a SIGINT/SIGTERM stopped the run, then exit with status 128 + its number."""
    print('Stopped by {} {}'.format(signal.Signals(signum).name, message), flush=True)
    sys.exit(128 + signum)


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


def main(_argv):
    try:
        train()
    except UsageError as e:
        utils.fail(e)


def train():
    """The whole run: data, models, resume, epoch loop, logs, checkpoints and export."""
    bbox = FLAGS.bbox and FLAGS.ImageType == 'img_celeba'
    SaveName = save_name(FLAGS.ImageType, bbox)
    channels = 1 if FLAGS.ImageType == 'MNIST' else 3
    try:
        model.num_blocks(FLAGS.DisInSize)
    except ValueError as e:
        raise UsageError('--{}'.format(e))
    keras.mixed_precision.set_global_policy(POLICIES[FLAGS.mixed_precision])
    strategy = make_strategy(FLAGS.strategy)
    chief = is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    if FLAGS.BATCH_SIZE % replicas:
        raise UsageError('--BATCH_SIZE={} does not split over {} replicas: use a multiple of '
                         '{}.'.format(FLAGS.BATCH_SIZE, replicas, replicas))

    model_dir = os.path.join(FLAGS.MODEL_PATH, SaveName)
    flags_path = os.path.join(model_dir, 'flags.json')
    current = {f.name: f.value for f in FLAGS.get_flags_for_module(sys.argv[0])}
    saved = read_saved_flags(flags_path, current) if FLAGS.resume else None
    seed = FLAGS.seed
    if seed is None:
        seed = saved['seed'] if saved else int(np.random.default_rng().integers(0, 2 ** 31 - 1))
    current['seed'] = seed
    keras.utils.set_random_seed(seed)

    for folder in (FLAGS.LOG_PATH, FLAGS.MODEL_PATH, FLAGS.PLOT_PATH):
        utils.check_writable(folder)
    images, n_images = create_dataset(FLAGS.ImageType, bbox, FLAGS.DisInSize, FLAGS.mnist_path,
                                      FLAGS.TFRecordPath, FLAGS.Partition)
    full_epoch = (n_images // FLAGS.BATCH_SIZE if FLAGS.jit
                  else math.ceil(n_images / FLAGS.BATCH_SIZE))
    if full_epoch == 0:
        raise UsageError('{} images make no full batch of --BATCH_SIZE={} (--jit drops partial '
                         'batches): use a smaller batch.'.format(n_images, FLAGS.BATCH_SIZE))
    steps_per_epoch = min(FLAGS.steps_per_epoch, full_epoch) if FLAGS.steps_per_epoch else full_epoch
    if FLAGS.cache:
        images = images.cache()

    with strategy.scope():
        Generator, Discriminator, G_opt, D_opt = setup_model(
            channels, FLAGS.DisInSize, FLAGS.noise_dim, FLAGS.lr, steps_per_epoch, FLAGS.sync_bn,
            FLAGS.mixed_precision == 'fp16')
    # run bookkeeping, the same on every worker: plain local variables
    NOISE = tf.Variable(tf.random.stateless_normal([16, FLAGS.noise_dim], seed=[seed, -1]),
                        trainable=False, name='fixed_noise')
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name='epoch')
    step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name='step_in_epoch')
    sums = tf.Variable(tf.zeros([4], tf.float64), trainable=False, name='metric_sums')
    models = [Generator, Discriminator]
    ckpt = tf.train.Checkpoint(generator=Generator, discriminator=Discriminator, G_opt=G_opt,
                               D_opt=D_opt, fixed_noise=NOISE, epoch=epoch_var,
                               step_in_epoch=step_in_epoch, metric_sums=sums,
                               rng=rng_variables(models))
    ckpt_dir = os.path.join(model_dir, 'checkpoints')
    latest = tf.train.latest_checkpoint(ckpt_dir)
    # other workers must save too (collectives), but into a scratch folder
    manager = tf.train.CheckpointManager(
        ckpt, ckpt_dir if chief else tempfile.mkdtemp(prefix='dcgan-worker-'),
        max_to_keep=FLAGS.keep_checkpoints)

    if FLAGS.resume and latest:
        try:
            ckpt.restore(latest).assert_existing_objects_matched()
        except (ValueError, AssertionError, tf.errors.OpError) as e:
            raise UsageError('cannot restore {} with these flags ({}): rerun with the flags in {}, '
                             'or add --noresume to start fresh.'.format(
                                 latest, str(e).splitlines()[0], flags_path))
        logging.info('Resuming from %s: epoch %d, step %d of it, global step %d',
                     latest, int(epoch_var), int(step_in_epoch), int(G_opt.iterations.numpy()))
        for line in flag_differences(saved or {}, current):
            logging.warning('flag changed since the checkpoint: %s', line)
    elif FLAGS.export_only:
        raise UsageError('no checkpoint in {} to export: train first.'.format(ckpt_dir))
    elif chief:
        moved = move_aside(run_outputs(SaveName))
        for path in moved:
            logging.warning('Moved the previous run aside to %s', path)
    if chief:
        os.makedirs(model_dir, exist_ok=True)
        with open(flags_path, 'w') as f:
            json.dump(current, f, indent=1, sort_keys=True)

    export_path = os.path.join(model_dir, 'generator.keras')
    if FLAGS.export_only:
        Generator.save(export_path)
        print('Exported the generator of {} to {}'.format(latest, export_path))
        return

    csv_path = os.path.join(FLAGS.LOG_PATH, '{}-loss.csv'.format(SaveName))
    plot_dir = os.path.join(FLAGS.PLOT_PATH, SaveName)
    start_epoch = int(epoch_var)
    if chief:
        utils.start_csv(csv_path, start_epoch)
    writer = None
    if chief and FLAGS.tensorboard:
        writer = tf.summary.create_file_writer(os.path.join(FLAGS.LOG_PATH, 'tensorboard', SaveName))
    logging.info('%s: %d images, %d steps of %d per epoch, %d replica(s), precision %s%s',
                 SaveName, n_images, steps_per_epoch, FLAGS.BATCH_SIZE, replicas,
                 POLICIES[FLAGS.mixed_precision], ', XLA' if FLAGS.jit else '')

    if start_epoch >= FLAGS.epochs:
        logging.warning('%s has already trained %d epochs: raise --epochs to train on.',
                        SaveName, start_epoch)
    with StopRequest() as stop:
        for epoch in range(start_epoch, FLAGS.epochs):
            start = time.time()
            done = int(step_in_epoch)
            batches = epoch_batches(images, strategy, seed, epoch, done, steps_per_epoch)
            if epoch == start_epoch:
                train_step = make_train_step(models, [G_opt, D_opt], strategy, FLAGS.noise_dim,
                                             FLAGS.BATCH_SIZE, seed, batches.element_spec, FLAGS.jit)
            progress = dict(total=steps_per_epoch, initial=done, unit='step', disable=not chief,
                            desc='epoch {}/{}'.format(epoch + 1, FLAGS.epochs), dynamic_ncols=True)
            with tqdm(**progress) as bar:
                window = time.time()
                epoch_lr = float(G_opt.learning_rate)  # boundaries fall between epochs
                for image_batch in batches_or_fail(batches, FLAGS.mnist_path or FLAGS.TFRecordPath):
                    step = int(G_opt.iterations.numpy())
                    values = train_step(image_batch, tf.constant(step, tf.int64)).numpy()
                    check_finite(values, step, epoch, ckpt_dir)
                    sums.assign_add(values.astype(np.float64))
                    step_in_epoch.assign_add(1)
                    bar.update(1)
                    means = sums.numpy() / float(step_in_epoch)
                    show_progress(bar, means)
                    if writer and (step + 1) % FLAGS.log_every == 0:
                        now = time.time()
                        log_scalars(writer, step + 1, means, epoch_lr,
                                    FLAGS.log_every * FLAGS.BATCH_SIZE / (now - window))
                        window = now
                    if stop.signal is not None:
                        break
            if stop.signal is not None and int(step_in_epoch) < steps_per_epoch:
                path = manager.save(checkpoint_number=int(G_opt.iterations.numpy()))
                exit_stopped(stop.signal, 'at epoch {}, step {} of {}; saved {}. Run the same '
                             'command again to continue from there.'.format(
                                 epoch + 1, int(step_in_epoch), steps_per_epoch, path))

            # Record Loss
            means = sums.numpy() / max(1, int(step_in_epoch))
            if chief:
                utils.append_csv(csv_path, epoch, means)
            # Each Epoch Save Image
            if chief:
                grid_path, grid = utils.generate_and_save_images(
                    Generator(NOISE, training=False), epoch + 1, plot_dir)
                if writer:
                    with writer.as_default(step=int(G_opt.iterations.numpy())):
                        tf.summary.image('samples', grid[None], description='epoch {}'.format(epoch + 1))
                    writer.flush()
            epoch_var.assign(epoch + 1)
            step_in_epoch.assign(0)
            sums.assign(tf.zeros([4], tf.float64))
            manager.save(checkpoint_number=int(G_opt.iterations.numpy()))
            # Save the weights every save_every epochs and after the last one
            if chief and ((epoch + 1) % FLAGS.save_every == 0 or epoch + 1 == FLAGS.epochs):
                Generator.save_weights(os.path.join(model_dir, 'Generator.weights.h5'))
                Discriminator.save_weights(os.path.join(model_dir, 'Discriminator.weights.h5'))
            logging.info('Epoch %d/%d in %.1f s: Real_P %.4f, Fake_P %.4f, Gen_loss %.4f, '
                         'Dis_loss %.4f, lr %.2e', epoch + 1, FLAGS.epochs, time.time() - start,
                         means[0], means[1], means[2], means[3], epoch_lr)
            if means[1] < 0.01 and means[0] > 0.99:
                logging.warning('Epoch %d: the discriminator wins completely (Real_P %.4f, Fake_P '
                                '%.4f): training has probably collapsed; look at %s', epoch + 1,
                                means[0], means[1], grid_path if chief else plot_dir)
            if stop.signal is not None:
                exit_stopped(stop.signal, 'after epoch {}; checkpoint saved. Run the same command '
                             'again to continue.'.format(epoch + 1))

    if chief:
        Generator.save(export_path)
        logging.info('Done: loss log %s, sample grids %s/, generator %s. Plot them with: python '
                     'plot_logs.py %s --gif; sample with: python generate.py --model=%s',
                     csv_path, plot_dir, export_path, csv_path, export_path)
    if start_epoch < FLAGS.epochs:
        logging.info('train_step was traced %d time(s)', train_step.experimental_get_tracing_count())
    if not chief:
        shutil.rmtree(manager.directory, ignore_errors=True)


if __name__ == '__main__':
    app.run(main)
