"""TensorFlow's process settings, precision policies (and `auto`), and distribution strategies."""
import os
import time

import keras
import tensorflow as tf
from absl import logging

from config import POLICIES
from errors import UsageError



def configure_tensorflow():
    """Process-wide TensorFlow settings; entry points call this once in main().

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
            with open('/proc/cpuinfo') as f:  # this machine's own, no user's path
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


def set_precision(name):
    """Set Keras' global policy for --mixed_precision=name ('auto' is measured and logged);
    returns the precision used: 'none', 'bf16' or 'fp16'."""
    if name == 'auto':
        name, reason = auto_precision()
        logging.info('--mixed_precision=auto chose %s: %s', name, reason)
    keras.mixed_precision.set_global_policy(POLICIES[name])
    return name


def make_strategy(name):
    """The tf.distribute strategy for --strategy."""
    if name == 'mirrored':
        return tf.distribute.MirroredStrategy()
    if name == 'multi_worker':
        if 'TF_CONFIG' not in os.environ:
            raise UsageError('--strategy=multi_worker needs TF_CONFIG describing the cluster and '
                             'this worker\'s task (see docs/training.md).')
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def stop_agreement(strategy):
    """With several workers, the function that every one of them calls at the same points of the
    loop with whether it was asked to stop (a SIGTERM reaches one preempted machine), and that
    says whether any of them was: all then save the same step and stop, where the others used to
    wait in the next collective until it timed out. None for one process, whose own signal
    decides."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    tasks = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if sum(len(t) for t in tasks.values()) < 2:
        return None

    @tf.function
    def asked(flag):
        per_replica = strategy.run(lambda: tf.identity(flag))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return lambda stop: float(asked(tf.constant(float(stop)))) > 0


def is_chief(strategy):
    """Whether this process writes the run's files (always, except non-chief multi-worker tasks)."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == 'chief' or (task_type == 'worker' and task_id == 0
                                    and 'chief' not in resolver.cluster_spec().as_dict())
