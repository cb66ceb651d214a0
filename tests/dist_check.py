"""One train_step of gan.py under tf.distribute strategies on CPU; prints each one's results
as one JSON list, in the order asked.

python tests/dist_check.py VARIANT [VARIANT ...], each VARIANT a strategy (single or mirrored)
with any of +sync_bn, +no_dropout, +recipe (DiffAugment and the generator average of --ema),
+disc (--spectral_norm --r1=1 --loss=hinge), +cond (--conditional on 10 classes, each of the two
conditionings: concat, or with +projection), e.g.
mirrored+sync_bn+no_dropout (test_distribute.py runs main.py itself as two workers)
"""
import functools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import augment  # noqa: E402
import conditions  # noqa: E402
import devices  # noqa: E402
import ema  # noqa: E402
import gan  # noqa: E402
import model  # noqa: E402

BATCH, SIZE, NOISE, FILTERS = 8, 32, 100, 128


@functools.cache
def make_strategy(mode):
    """The strategy of mode, one per process (a second MirroredStrategy's all-reduce fails);
    mirrored runs on the two logical CPU devices made in main."""
    if mode == 'mirrored':
        return tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
    return devices.make_strategy('default')


def run(variant):
    """One step of variant (e.g. mirrored+sync_bn): the step's results and weight sums."""
    mode, *options = variant.split('+')
    strategy = make_strategy(mode)
    images = np.random.default_rng(0).uniform(-1, 1, (BATCH, SIZE, SIZE, 1)).astype('float32')
    condition = conditions.Condition(conditions.CLASS, tuple('0123456789')) \
        if 'cond' in options else None
    conditioning = 'projection' if 'projection' in options else 'concat'
    ds = tf.data.Dataset.from_tensor_slices(images if condition is None else (
        images, condition.vectors(np.arange(BATCH) * 3 % 10))).batch(BATCH)
    shard = tf.data.Options()
    shard.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dist = strategy.experimental_distribute_dataset(ds.with_options(shard))
    keras.utils.set_random_seed(0)
    recipe, disc = 'recipe' in options, 'disc' in options
    with strategy.scope():
        size = condition.size if condition else 0
        G, D, G_opt, D_opt = gan.setup_model(1, SIZE, NOISE, 2e-4, 10, filters=FILTERS,
                                             sync_bn='sync_bn' in options, spectral_norm=disc,
                                             logits=disc, condition_size=size,
                                             conditioning=conditioning)
        average = ema.SampledGenerator(
            G, model.Gen_Net(1, NOISE, SIZE, filters=FILTERS, condition_size=size,
                             conditioning=conditioning), 0.9, 7, condition) if recipe else None
    if 'no_dropout' in options:  # masks depend on the per-replica batch shape
        for layer in D.layers:
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
    step = gan.make_train_step([G, D], [G_opt, D_opt], strategy, NOISE, BATCH, 7,
                               dist.element_spec, augment=augment.POLICIES if recipe else (),
                               average=average, loss='hinge' if disc else 'bce',
                               r1=1.0 if disc else 0.0)
    results = [step(batch, tf.constant(0, tf.int64)).numpy().tolist() for batch in dist]
    return {'replicas': strategy.num_replicas_in_sync, 'results': results,
            'iterations': int(G_opt.iterations.numpy()),
            'g_kernel_sum': float(tf.reduce_sum(G.trainable_variables[0])),
            'ema_kernel_sum': float(tf.reduce_sum(average.sampled.trainable_variables[0]))
            if recipe else None,
            'd_kernel_sum': float(tf.reduce_sum(D.trainable_variables[0])),
            'sn_u': [layer.u.numpy().tolist() for layer in model.spectral_layers(D)]}


def main(variants):
    if any(v.startswith('mirrored') for v in variants):  # two logical CPUs stand in for two GPUs
        cpu = tf.config.list_physical_devices('CPU')[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    print(json.dumps([run(v) for v in variants]))


if __name__ == '__main__':
    main(sys.argv[1:])
