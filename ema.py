"""The generator that is sampled: with --ema an exponential moving average of the generator's
weights, updated inside the train step; with --ema or --standing_stats its BatchNorm statistics
recomputed for its current weights before it is sampled (BigGAN's "standing statistics")."""
import keras
import tensorflow as tf

# batches of noise, of STATS_BATCH latents each, that the BatchNorm statistics are averaged over
STATS_BATCHES = 8
STATS_BATCH = 64


class SampledGenerator:
    """A second generator for sampling, beside the one being trained (source).

    decay > 0: after every step, average = decay_t * average + (1 - decay_t) * weights, with the
    decay ramped up as TensorFlow's ExponentialMovingAverage(num_updates) does, decay_t =
    min(decay, (1 + t) / (10 + t)), so that short runs do not keep the untrained weights in the
    average. decay 0: a copy of the weights, taken when it is sampled.
    """

    def __init__(self, source, sampled, decay, seed, condition=None):
        self.source, self.sampled, self.decay, self.seed = source, sampled, decay, seed
        # a conditional generator's statistics: as many latents of each class as can be
        self.conditions = None if condition is None else condition.balanced(STATS_BATCH)
        self.pairs = list(zip(sampled.trainable_variables, source.trainable_variables))
        for mine, theirs in zip(sampled.variables, source.variables):
            mine.assign(theirs)
        self.norms = [layer for layer in sampled.layers
                      if isinstance(layer, keras.layers.BatchNormalization)]
        # the inputs of every BatchNormalization layer, with batch statistics all the way
        probe = keras.Model(sampled.inputs, [layer.input for layer in self.norms]) \
            if self.norms else None
        self.probe = tf.function(lambda z: tf.nest.flatten(probe(z, training=True)))
        self.fresh_at = None  # the global step whose weights the statistics describe

    def update(self, step):
        """Move the average toward the generator's weights after global step step (a tensor)."""
        t = tf.cast(step, tf.float32)
        decay = tf.minimum(tf.constant(self.decay, tf.float32), (1 + t) / (10 + t))
        for average, weights in self.pairs:
            average.assign(decay * average + (1 - decay) * tf.cast(weights, average.dtype))

    def generator(self, step):
        """The generator to sample at global step step, its BatchNorm statistics those of its
        own activations on fixed noise (recomputed when step has moved on)."""
        if self.fresh_at == step:
            return self.sampled
        if not self.decay:
            for mine, theirs in self.pairs:
                mine.assign(theirs)
        self.fresh_at = step
        if not self.norms:
            return self.sampled
        noise_dim = self.sampled.inputs[0].shape[-1]
        sums = [(0.0, 0.0)] * len(self.norms)
        for i in range(STATS_BATCHES):
            z = tf.random.stateless_normal([STATS_BATCH, noise_dim], seed=[self.seed, -2 - i])
            inputs = z if self.conditions is None else [z, self.conditions]
            moments = [tf.nn.moments(tf.cast(x, tf.float32), axes=list(range(len(x.shape) - 1)))
                       for x in self.probe(inputs)]
            sums = [(m + ms, v + vs) for (m, v), (ms, vs) in zip(moments, sums)]
        for layer, (mean, variance) in zip(self.norms, sums):
            layer.moving_mean.assign(mean / STATS_BATCHES)
            layer.moving_variance.assign(variance / STATS_BATCHES)
        return self.sampled
