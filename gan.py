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


def discriminator_losses(real_output, fake_output, loss='bce'):
    """D's loss per example. bce: the seed's BCE(1, D(x)) + BCE(0, D(G(z))) on probabilities;
    on logits: hinge, relu(1 - D(x)) + relu(1 + D(G(z))) (Lim & Ye 2017, Miyato et al. 2018);
    ls, ((D(x) - 1)^2 + D(G(z))^2) / 2 (least squares, Mao et al. 2017)."""
    if loss == 'hinge':
        return tf.nn.relu(1 - real_output[:, 0]) + tf.nn.relu(1 + fake_output[:, 0])
    if loss == 'ls':
        return (tf.square(real_output[:, 0] - 1) + tf.square(fake_output[:, 0])) / 2
    bce = cross_entropy()
    return (bce(tf.ones_like(real_output), real_output)
            + bce(tf.zeros_like(fake_output), fake_output))


def generator_losses(fake_output, loss='bce'):
    """G's loss per example: the seed's BCE(1, D(G(z))); hinge -D(G(z)); ls (D(G(z)) - 1)^2 / 2."""
    if loss == 'hinge':
        return -fake_output[:, 0]
    if loss == 'ls':
        return tf.square(fake_output[:, 0] - 1) / 2
    return cross_entropy()(tf.ones_like(fake_output), fake_output)


def discriminator_loss(real_output, fake_output, global_batch_size, loss='bce'):
    """D's loss averaged over the global batch."""
    return tf.nn.compute_average_loss(discriminator_losses(real_output, fake_output, loss),
                                      global_batch_size=global_batch_size)


def generator_loss(fake_output, global_batch_size, loss='bce'):
    """G's loss averaged over the global batch."""
    return tf.nn.compute_average_loss(generator_losses(fake_output, loss),
                                      global_batch_size=global_batch_size)


def needs_logits(loss, r1):
    """Whether D gives its logit rather than the seed's probability: for hinge, ls and R1."""
    return loss != 'bce' or r1 > 0


def r1_penalties(Discriminator, images, gamma, condition=None):
    """D's outputs on images (with their condition vectors, for a conditional D), and R1
    (Mescheder et al. 2018) per example: gamma / 2 times the squared norm of the gradient of D's
    logit with respect to its input image."""
    with tf.GradientTape() as tape:
        tape.watch(images)
        output = model.apply(Discriminator, images, condition, training=True)
        # with BatchNorm in D, an image's logit also depends on the others through the batch's
        # statistics, and so does its gradient
        total = tf.reduce_sum(output)
    gradient = tf.cast(tape.gradient(total, images), tf.float32)
    return output, gamma / 2 * tf.reduce_sum(tf.square(gradient), axis=[1, 2, 3])


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
                step=None, filters=1024, lr_D=None, decay_epochs=(10, 20, 25), dropout=0.3,
                spectral_norm=False, logits=False, arch='seed', condition_size=0,
                conditioning='concat'):
    """Generator, Discriminator and their Adam optimizers (beta_1 0.5), built and ready to restore;
    lr is G's learning rate and, unless lr_D is given, D's too; spectral_norm and logits shape D
    (model.Dis_Net), arch, condition_size (0: unconditional) and conditioning both.

    With a global step variable, the learning rate follows it rather than each optimizer's own
    update count, which a LossScaleOptimizer does not advance on the steps it skips.
    """
    Generator = model.Gen_Net(channels, noise_dim, image_size, sync_bn=sync_bn, filters=filters,
                              arch=arch, condition_size=condition_size, conditioning=conditioning)
    Discriminator = model.Dis_Net(image_size, channels, sync_bn=sync_bn, filters=filters,
                                  dropout=dropout, spectral_norm=spectral_norm, logits=logits,
                                  arch=arch, condition_size=condition_size,
                                  conditioning=conditioning)
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
                    augment=(), average=None, loss='bce', r1=0.0, alternating=False):
    """The distributed, traced-once train step: (batch, step) -> [Real_P, Fake_P, Gen_loss, Dis_loss].

    A batch is images, or (images, their condition vectors) for conditional networks: G draws
    the batch's conditions and D judges each image with its own.

    element_spec is the distributed dataset's; its unknown batch size keeps the last, partial
    batch from retracing. augment: DiffAugment policies applied to real and generated images
    before each discriminator call; average: an ema.SampledGenerator averaged after each step;
    loss: one of config.LOSSES; r1: R1's gamma (0: off), added to D's loss (and to Dis_loss).
    alternating: D steps first and G's loss is taken from the updated D on the same generated
    images (pytorch/examples' order); otherwise both step from the same D (the seed's).
    D's spectral normalizations take one power step before its first call. Real_P and Fake_P
    are D's mean probabilities (the sigmoid of its logits, where it gives logits) before its step.
    """
    Generator, Discriminator = models
    seed = tf.constant(seed, tf.int64)
    G_opt, D_opt = opts
    logits = needs_logits(loss, r1)
    normalized = model.spectral_layers(Discriminator)

    @tf.function(jit_compile=jit)
    def train_step(batch, step):
        images, condition = batch if isinstance(batch, tuple) else (batch, None)
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

        def for_loss(output):  # the seed's bce takes probabilities; hinge and ls take logits
            return tf.sigmoid(output) if logits and loss == 'bce' else output

        def judged(x):  # D's output on images x of the batch's conditions
            return model.apply(Discriminator, x, condition, training=True)

        for layer in normalized:
            layer.power_iteration()
        gen_tape = tf.GradientTape()
        with gen_tape, tf.GradientTape() as disc_tape:
            generated_images = model.apply(Generator, noise, condition, training=True)
            fake_images = augmented(generated_images, 2)
            if r1:
                real_output, penalty = r1_penalties(Discriminator, augmented(images, 1), r1,
                                                    condition)
            else:
                real_output = judged(augmented(images, 1))
            fake_output = judged(fake_images)
            probabilities = [tf.sigmoid(real_output), tf.sigmoid(fake_output)] if logits \
                else [real_output, fake_output]
            disc_loss = discriminator_loss(for_loss(real_output), for_loss(fake_output),
                                           global_batch, loss)
            if r1:
                disc_loss += tf.nn.compute_average_loss(penalty, global_batch_size=global_batch)
            # loss scaling under fp16 (LossScaleOptimizer), identity otherwise
            disc_scaled = D_opt.scale_loss(disc_loss)
            if not alternating:
                gen_loss = generator_loss(for_loss(fake_output), global_batch, loss)
                gen_scaled = G_opt.scale_loss(gen_loss)
        disc_grads = disc_tape.gradient(disc_scaled, Discriminator.trainable_variables)
        if alternating:
            D_opt.apply_gradients(zip(disc_grads, Discriminator.trainable_variables))
            with gen_tape:  # the same generated images, through the updated D
                gen_loss = generator_loss(for_loss(judged(fake_images)), global_batch, loss)
                gen_scaled = G_opt.scale_loss(gen_loss)
        gen_grads = gen_tape.gradient(gen_scaled, Generator.trainable_variables)
        G_opt.apply_gradients(zip(gen_grads, Generator.trainable_variables))
        if not alternating:
            D_opt.apply_gradients(zip(disc_grads, Discriminator.trainable_variables))
        return tf.stack([tf.reduce_sum(probabilities[0]) / batch_sum,
                         tf.reduce_sum(probabilities[1]) / batch_sum, gen_loss, disc_loss])

    @tf.function(input_signature=[element_spec, tf.TensorSpec([], tf.int64)])
    def distributed_train_step(batch, step):
        per_replica = strategy.run(train_step, args=(batch, step))
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
