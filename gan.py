"""The GAN's maths: the original script's losses and learning-rate schedule, the networks and
their optimizers built, the distributed train step and the device loop that runs K of them."""
import functools

import keras
import tensorflow as tf

import augment as augment_lib
import model


# ----------------------------------------------------------------------------- losses

@functools.cache
def cross_entropy():
    """Per-example BCE on probabilities, as the seed's BinaryCrossentropy (averaged below)."""
    return keras.losses.BinaryCrossentropy(reduction=None)


def discriminator_loss(real_output, fake_output, global_batch_size):
    """The seed's D loss, BCE(1, D(x)) + BCE(0, D(G(z))), averaged over the global batch."""
    bce = cross_entropy()
    per_example = (bce(tf.ones_like(real_output), real_output)
                   + bce(tf.zeros_like(fake_output), fake_output))
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def generator_loss(fake_output, global_batch_size):
    """The seed's G loss, BCE(1, D(G(z))), averaged over the global batch."""
    per_example = cross_entropy()(tf.ones_like(fake_output), fake_output)
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def lr_schedule(lr, steps_per_epoch, decay_epochs=(10, 20, 25)):
    """The seed's piecewise-constant decay: lr, then /10 after each of decay_epochs (none: lr).

    The optimizer evaluates the schedule at its update count before incrementing it, and
    PiecewiseConstantDecay keeps a value up to and including its boundary, hence the -1.
    """
    if not decay_epochs:  # a decay rate of 1: the same rate at every step
        return keras.optimizers.schedules.ExponentialDecay(lr, 1, 1.0)
    boundaries = [steps_per_epoch * e - 1 for e in decay_epochs]
    values = [lr / 10 ** i for i in range(len(decay_epochs) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


# ----------------------------------------------------------------------------- steps

def setup_model(channels, image_size, noise_dim, lr, steps_per_epoch, sync_bn=False, fp16=False,
                step=None, filters=1024, lr_D=None, decay_epochs=(10, 20, 25), dropout=0.3):
    """Generator, Discriminator and their Adam optimizers (beta_1 0.5), built and ready to restore;
    lr is G's learning rate and, unless lr_D is given, D's too.

    With a global step variable, the learning rate follows it rather than each optimizer's own
    update count, which a LossScaleOptimizer does not advance on the steps it skips.
    """
    Generator = model.Gen_Net(channels, noise_dim, image_size, sync_bn=sync_bn, filters=filters)
    Discriminator = model.Dis_Net(image_size, channels, sync_bn=sync_bn, filters=filters,
                                  dropout=dropout)
    opts = []
    for net, rate in ((Generator, lr), (Discriminator, lr if lr_D is None else lr_D)):
        schedule = lr_schedule(rate, steps_per_epoch, decay_epochs)
        opt = keras.optimizers.Adam(schedule if step is None else (lambda s=schedule: s(step)),
                                    beta_1=0.5)
        if fp16:
            opt = keras.mixed_precision.LossScaleOptimizer(opt)
        opt.build(net.trainable_variables)
        opts.append(opt)
    return Generator, Discriminator, opts[0], opts[1]


def make_train_step(models, opts, strategy, noise_dim, batch_size, seed, element_spec, jit=False,
                    augment=(), average=None):
    """The distributed, traced-once train step: (images, step) -> [Real_P, Fake_P, Gen_loss, Dis_loss].

    element_spec is the distributed dataset's; its unknown batch size keeps the last, partial
    batch from retracing. augment: DiffAugment policies applied to real and generated images
    before each discriminator call; average: an ema.SampledGenerator averaged after each step.
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
        offset = ctx.replica_id_in_sync_group * local
        noise = noise[offset:][:local]

        def augmented(x, kind):  # kind 1: real images, 2: generated ones
            if not augment:
                return x
            kind_seed = tf.random.experimental.stateless_fold_in(tf.stack([seed, step]), kind)
            return augment_lib.diff_augment(x, augment, kind_seed, offset, batch_size)

        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated_images = Generator(noise, training=True)
            real_output = Discriminator(augmented(images, 1), training=True)
            fake_output = Discriminator(augmented(generated_images, 2), training=True)
            gen_loss = generator_loss(fake_output, global_batch)
            disc_loss = discriminator_loss(real_output, fake_output, global_batch)
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
        if average is not None:
            average.update(step)
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
