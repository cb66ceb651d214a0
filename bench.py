"""Measure input-pipeline and train_step throughput against a seed-faithful reference, in one process."""
import json
import os
import tempfile
import time

import interrupts  # noqa: E402

interrupts.guard_start_up()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ info lines off by default
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app  # noqa: E402

import arrays  # noqa: E402
import config  # noqa: E402
import convert_tfrecord  # noqa: E402
import dataset  # noqa: E402
import devices  # noqa: E402
import errors  # noqa: E402
import files  # noqa: E402
import gan  # noqa: E402
import metrics  # noqa: E402
import records  # noqa: E402
from tools import synthetic  # noqa: E402

config.define_flags(config.BenchConfig, __name__)

MODES = {'fp32': ('none', False), 'bf16': ('bf16', False), 'fp16': ('fp16', False),
         'jit': ('none', True), 'jit_bf16': ('bf16', True), 'jit_fp16': ('fp16', True)}


def forward_flops(net):
    """Multiply-adds x 2 of one image through a Gen_Net or Dis_Net, from the layer shapes."""
    total = 0
    for layer in net.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            kh, kw, cout, cin = layer.kernel.shape
            total += 2 * layer.input.shape[1] * layer.input.shape[2] * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            total += 2 * layer.output.shape[1] * layer.output.shape[2] * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return total


def step_flops(G, D, batch):
    """FLOPs of one train_step: forward + backward (2x) of G, of D on real and on fake images,
    plus the input-gradient pass back through D(fake) that the generator's tape needs."""
    return batch * (3 * forward_flops(G) + 7 * forward_flops(D))


def matmul_peak(dtype, n=2048, reps=10):
    """Achieved GFLOP/s of a large matmul: the practical peak of this device for dtype."""
    a = tf.random.normal([n, n], dtype=tf.float32)
    a = tf.cast(a, dtype)
    f = tf.function(lambda x: tf.matmul(x, x))
    f(a).numpy()
    start = time.perf_counter()
    for _ in range(reps):
        out = f(a)
    out.numpy()
    return 2 * n ** 3 * reps / (time.perf_counter() - start) / 1e9


def time_batches(batches, count, batch, skip=3):
    """images/s of iterating count batches after skip untimed ones."""
    iterator = iter(batches)
    for _ in range(skip):
        next(iterator)
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count * batch / (time.perf_counter() - start)


def seed_mnist_pipeline(path, size, batch):
    """The seed's MNIST input: a sequential map of resize_with_pad, shuffle(300), prefetch(20)."""
    x = arrays.read_mnist_npz(path)
    x = (x.reshape(-1, 28, 28, 1).astype('float32') - 127.5) / 127.5
    ds = tf.data.Dataset.from_tensor_slices(x).repeat()
    ds = ds.map(lambda image: tf.image.resize_with_pad(image, size, size))
    return ds.shuffle(300).batch(batch).prefetch(20)


def seed_celeba_pipeline(record_dir, size, batch):
    """The seed's CelebA input: list_files, parse every feature, decode the whole JPEG, crop."""
    features = records.seed_features()

    def parse(raw):  # the seed's _your_dataset: image, landmarks and attributes
        data = tf.io.parse_single_example(raw, features)
        image = tf.io.decode_jpeg(data[records.encoded_key('img_celeba')], channels=3)
        x, y, w, h = tf.unstack(tf.cast(data[records.BBOX_KEY], tf.int32))
        image = tf.image.resize(tf.image.crop_to_bounding_box(image, y, x, h, w), [size, size])
        return ((image - 127.5) / 127.5, data[records.ANNOTATIONS['landmarks'][0]],
                data[records.ANNOTATIONS['attr'][0]])

    ds = tf.data.Dataset.list_files(records.record_pattern(record_dir, 'train')).repeat()
    ds = ds.flat_map(tf.data.TFRecordDataset).map(parse, num_parallel_calls=-1)
    return ds.shuffle(300).batch(batch).prefetch(20)


def our_pipeline(images, batch, cache=False):
    """This project's input: parallel interleave and decode, crop-decode, AUTOTUNE prefetch."""
    if cache:
        images = images.cache()
    return dataset.make_batches(images.repeat(), batch, 1000, 0, False)


def time_train(mode, batch, size, steps, warmup, filters=1024):
    """images/s and the model of train_step in one mode, on fixed data."""
    policy, jit = MODES[mode]
    keras.backend.clear_session()
    devices.set_precision(policy)
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.get_strategy()
    G, D, G_opt, D_opt = gan.setup_model(3, size, 100, 2e-4, 1000, fp16=policy == 'fp16',
                                             filters=filters)
    images = tf.random.uniform([batch, size, size, 3], -1, 1)
    spec = tf.TensorSpec([batch if jit else None, size, size, 3], tf.float32)
    step = gan.make_train_step([G, D], [G_opt, D_opt], strategy, 100, batch, 0, spec, jit)
    for i in range(warmup):
        step(images, tf.constant(i, tf.int64)).numpy()
    start = time.perf_counter()
    for i in range(steps):
        values = step(images, tf.constant(warmup + i, tf.int64))
    values.numpy()
    rate = steps * batch / (time.perf_counter() - start)
    keras.mixed_precision.set_global_policy('float32')
    return rate, G, D


def time_loops(loops, steps, batch=16, size=32, filters=1024):
    """images/s and seconds per step of the device loop for each steps-per-loop value, fp32."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.get_strategy()
    step = tf.Variable(0, dtype=tf.int64)
    in_epoch = tf.Variable(0, dtype=tf.int64)
    sums = tf.Variable(tf.zeros([4], tf.float64))
    G, D, G_opt, D_opt = gan.setup_model(3, size, 100, 2e-4, 1000, step=step, filters=filters)
    images = tf.data.Dataset.from_tensors(tf.random.uniform([batch, size, size, 3], -1, 1))
    batches = strategy.experimental_distribute_dataset(images.repeat())
    train_step = gan.make_train_step([G, D], [G_opt, D_opt], strategy, 100, batch, 0,
                                         batches.element_spec)
    loop = gan.make_train_loop(train_step, step, in_epoch, sums)
    iterator = iter(batches)
    result = {}
    for k in loops:
        for _ in range(2):  # warm-up: tracing, and a first loop of this length
            loop(iterator, tf.constant(k, tf.int64))[0].numpy()
        start = time.perf_counter()
        for _ in range(max(1, steps // k)):
            loop(iterator, tf.constant(k, tf.int64))[0].numpy()
        seconds = (time.perf_counter() - start) / (max(1, steps // k) * k)
        result[k] = {'img_s': batch / seconds, 'ms_per_step': 1000 * seconds}
    return result


def time_inception(count, batch=16):
    """InceptionV3 feature extraction at 299x299 (random weights: the same speed), images/s."""
    keras.backend.clear_session()
    extractor = metrics.FeatureExtractor(metrics.inception_v3(None), 'inception_v3')
    batch = min(batch, count)
    images = tf.random.uniform([batch, 64, 64, 3], -1, 1)
    extractor(iter([images]), batch, 'warm-up')
    start = time.perf_counter()
    extractor(iter([images] * (count // batch)), count, 'InceptionV3')
    return count // batch * batch / (time.perf_counter() - start)


def convert(root, out, **options):
    """A CelebA folder's train partition to records, in this process (its speed is not timed)."""
    convert_tfrecord.convert(root, out, 'train', shard_mb=8, progress=False, **options)


@errors.entry_point
def main(_argv):
    settings = config.from_flags(config.BenchConfig)
    devices.configure_tensorflow()
    gpus = tf.config.list_physical_devices('GPU')
    device = tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU') \
        if gpus else 'CPU, {} cores'.format(os.cpu_count())
    modes = settings.modes or [m for m in MODES if gpus or m != 'fp16']
    work = tempfile.mkdtemp(prefix='dcgan-bench-')
    mnist = settings.bench_mnist or synthetic.write_mnist(os.path.join(work, 'mnist.npz'), 8192, 16)
    root = settings.bench_celeba
    if not root:
        root = os.path.join(work, 'celeba')
        synthetic.write_celeba(root, n=settings.celeba_images, wild_size=(400, 480),
                               align_size=(178, 218), split=(1.0, 0.0), grain=3, wild_quality=90)
    # every image type (the seed's pipeline parses them all); and in-the-wild images alone, as
    # JPEGs and preresized to the face crops the bbox pipelines read, for the record sizes
    full, wild, preresized = [os.path.join(work, d) for d in ('records', 'wild', 'preresized')]
    convert(root, full)
    convert(root, wild, image_types=['img_celeba'])
    convert(root, preresized, image_types=['img_celeba'], image_size=settings.size)
    record_mb = {name: sum(files.getsize(f) for f in files.glob(records.record_pattern(path, '*')))
                 / 1e6 for name, path in (('full', wild), ('preresized', preresized))}
    print('device: {}; batch {}, {}x{} images'.format(device, settings.batch, settings.size, settings.size))

    B, S, n = settings.batch, settings.size, settings.pipeline_batches
    faces = dataset.load_celeba(full, 'train', 'img_celeba', True, S)
    # uint8 as the trainer reads them: brought to float a batch at a time
    small_faces = dataset.load_celeba(preresized, 'train', 'img_celeba', True, S, uint8=True)
    digits = dataset.load_mnist(mnist, S)
    # cached: time the second epoch on, once the first has filled the cache
    counts = {name: int(ds.reduce(0, lambda k, _: k + 1))
              for name, ds in (('mnist', digits), ('faces', faces))}
    epoch = {name: -(-count // B) + 3 for name, count in counts.items()}
    ours = {
        'mnist': lambda: time_batches(our_pipeline(digits, B), n, B),
        'mnist_cache': lambda: time_batches(our_pipeline(digits, B, True), n, B, epoch['mnist']),
        'celeba_bbox': lambda: time_batches(our_pipeline(faces, B), n, B),
        'celeba_bbox_cache': lambda: time_batches(our_pipeline(faces, B, True), n, B,
                                                  epoch['faces']),
        'celeba_bbox_preresized': lambda: time_batches(our_pipeline(small_faces, B), n, B),
    }
    seeds = {
        'mnist': lambda: time_batches(seed_mnist_pipeline(mnist, S, B), n, B),
        'celeba_bbox': lambda: time_batches(seed_celeba_pipeline(full, S, B), n, B),
    }
    pipeline, reference_pipeline = dict.fromkeys(ours, 0.0), dict.fromkeys(seeds, 0.0)
    for _ in range(settings.repeats):  # interleaved, best of each: background work only slows a run
        for rates, runs in ((pipeline, ours), (reference_pipeline, seeds)):
            for name, run in runs.items():
                rates[name] = max(rates[name], run())
    print('\n{:<20s} {:>14s} {:>14s} {:>7s}'.format('input pipeline', 'seed img/s', 'ours img/s',
                                                    'ratio'))
    for name, rate in pipeline.items():
        ref = reference_pipeline[name.replace('_cache', '').replace('_preresized', '')]
        print('{:<20s} {:14.0f} {:14.0f} {:6.1f}x'.format(name, ref, rate, rate / ref))

    print('img_celeba records of {} images: {:.1f} MB of JPEGs, {:.1f} MB preresized to {} px '
          '({:.1f}x smaller)'.format(counts['faces'], record_mb['full'], record_mb['preresized'], S,
                            record_mb['full'] / record_mb['preresized']))

    F = settings.filters
    reference, G, D = time_train('fp32', B, S, settings.steps, settings.warmup, F)
    flop = step_flops(G, D, B)
    train = {}
    for mode in modes:
        train[mode] = reference if mode == 'fp32' else \
            time_train(mode, B, S, settings.steps, settings.warmup, F)[0]
    seed_width = reference if F == 1024 else time_train('fp32', B, S, settings.steps,
                                                         settings.warmup)[0]
    peak = {'fp32': matmul_peak(tf.float32), 'bf16': matmul_peak(tf.bfloat16),
            'fp16': matmul_peak(tf.float16) if gpus else None}
    print('\n{:<10s} {:>10s} {:>9s} {:>9s} {:>12s}'.format('train mode', 'images/s', 'vs fp32',
                                                          'GFLOP/s', 'of peak'))
    for mode, rate in train.items():
        gflops = rate / B * flop / 1e9
        dtype = 'bf16' if 'bf16' in mode else 'fp16' if 'fp16' in mode else 'fp32'
        share = '{:.0%} {}'.format(gflops / peak[dtype], dtype) if peak[dtype] else '-'
        print('{:<10s} {:10.1f} {:8.2f}x {:9.0f} {:>12s}'.format(mode, rate, rate / reference,
                                                                gflops, share))
    if F != 1024:
        print('--filters={}: {:.1f} images/s in fp32, {:.2f}x the original 1024 ({:.1f} images/s)'
              .format(F, reference, reference / seed_width, seed_width))
    best = max(train, key=train.get)
    # auto picks a precision, not XLA: it is right if no other precision without XLA was faster
    auto_mode, auto_reason = devices.auto_precision()
    auto_key = {'none': 'fp32', 'bf16': 'bf16', 'fp16': 'fp16'}[auto_mode]
    fastest = max((m for m in ('fp32', 'bf16', 'fp16') if m in train), key=train.get)
    print('\n--mixed_precision=auto picks {} here ({}); the fastest precision measured is {}'
          '{}'.format(auto_key, auto_reason, fastest, '' if auto_key == fastest else
                      ': auto is WRONG on this machine'))

    loops = time_loops([int(k) for k in settings.loops], settings.loop_steps, filters=F)
    print('\n{:<16s} {:>10s} {:>12s}'.format('steps per loop', 'images/s', 'ms per step'))
    for k, row in loops.items():
        print('{:<16d} {:10.1f} {:12.1f}'.format(k, row['img_s'], row['ms_per_step']))
    most = max(loops)
    host_ms = loops[min(loops)]['ms_per_step'] - loops[most]['ms_per_step']
    print('host time per step saved by {} steps per loop: {:.1f} ms (DisInSize 32, batch 16, '
          'fp32, --filters={})'.format(most, host_ms, F))
    inception = time_inception(settings.inception_images)
    print('InceptionV3 features at 299x299: {:.1f} images/s'.format(inception))
    print('\nmodel: {:.1f} GFLOP per step at batch {} ({:.2f} per image: forward+backward); '
          'matmul peak measured here: {}'.format(
              flop / 1e9, B, flop / B / 1e9,
              ', '.join('{} {:.0f} GFLOP/s'.format(k, v) for k, v in peak.items() if v)))
    print(json.dumps({
        'device': device, 'batch': B, 'size': S, 'filters': F,
        'train_img_s': {k: round(v, 2) for k, v in train.items()},
        'reference_train_img_s': round(reference, 2),
        'seed_width_train_img_s': round(seed_width, 2),
        'pipeline_img_s': {k: round(v, 1) for k, v in pipeline.items()},
        'reference_pipeline_img_s': {k: round(v, 1) for k, v in reference_pipeline.items()},
        'gflop_per_step': round(flop / 1e9, 3),
        'best_mode': best,
        'best_gflop_s': round(train[best] / B * flop / 1e9, 1),
        'matmul_peak_gflop_s': {k: round(v, 1) for k, v in peak.items() if v},
        'auto_mode': auto_key,
        'auto_is_fastest': auto_key == fastest,
        'dispatch': {str(k): {'img_s': round(v['img_s'], 2),
                              'ms_per_step': round(v['ms_per_step'], 2)} for k, v in loops.items()},
        'dispatch_host_ms_per_step': round(host_ms, 2),
        'inception_img_s': round(inception, 1),
        'preresized_pipeline_img_s': round(pipeline['celeba_bbox_preresized'], 1),
        'preresized_vs_seed': round(pipeline['celeba_bbox_preresized']
                                    / reference_pipeline['celeba_bbox'], 2),
        'record_mb': {k: round(v, 2) for k, v in record_mb.items()},
    }))
    files.rmtree(work)


if __name__ == '__main__':
    app.run(main)
