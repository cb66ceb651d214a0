"""The discriminator recipes beyond the seed: --loss (bce, hinge, least squares), --spectral_norm
and --r1, against closed forms, and a run with all three on."""
import os

import keras
import numpy as np
import tensorflow as tf

import csv_log
import gan
from helpers import train_in_process
import model


def normalized_dense(kernel):
    """A built SpectralNorm(Dense) whose kernel is the given [fan_in, units] matrix."""
    layer = model.SpectralNorm(keras.layers.Dense(kernel.shape[1]))
    layer.build((None, kernel.shape[0]))
    layer.layer.kernel.assign(kernel)
    return layer


def test_spectral_norm_estimates_the_largest_singular_value():
    rng = np.random.default_rng(0)
    # singular values 3, 2, 1, 0.5 in random bases: the power method converges as (2 / 3)^k
    left, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    right, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    kernel = (left[:, :4] * [3.0, 2.0, 1.0, 0.5]) @ right.T
    layer = normalized_dense(kernel.astype(np.float32))
    errors = []
    for _ in range(30):
        layer.power_iteration()
        errors.append(abs(float(layer.sigma()) - 3.0))
    assert errors[-1] < 1e-5
    assert errors[1] > 1e-3 and errors[10] < errors[1] / 10  # one step at a time, not solved
    # the layer computes with kernel / sigma, and leaves the kernel as it was
    x = rng.normal(size=(5, 6)).astype(np.float32)
    np.testing.assert_allclose(layer(x).numpy(), x @ kernel / float(layer.sigma()), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(layer.layer.kernel.numpy(), kernel, rtol=1e-6)


def test_spectral_norm_gradient_flows_through_sigma():
    # at the top singular pair (u, v), d sigma / dW = v u^T, so d(sum(W / sigma x)) / dW is not
    # that of a constant 1 / sigma
    kernel = np.diag([2.0, 1.0]).astype(np.float32)
    layer = normalized_dense(kernel)
    for _ in range(20):
        layer.power_iteration()
    x = tf.constant([[1.0, 1.0]])
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(layer(x))
    gradient = tape.gradient(out, layer.layer.kernel).numpy()
    # out = (W11 + W22 + W12 + W21) / sigma, sigma = W11 here: d/dW11 = 1/2 - 3/4, others 1/2
    np.testing.assert_allclose(gradient, [[-0.25, 0.5], [0.5, 0.5]], atol=1e-5)


def test_discriminator_spectral_norm_has_no_batchnorm_and_its_vectors_in_a_checkpoint(tmp_path):
    D = model.Dis_Net(32, 1, filters=128, spectral_norm=True, logits=True)
    kinds = [type(layer).__name__ for layer in D.layers]
    assert 'BatchNormalization' not in kinds and kinds.count('SpectralNorm') == 5
    assert D.layers[-1].activation.__name__ == 'linear'
    prefix = tf.train.Checkpoint(D=D).write(str(tmp_path / 'ckpt'))
    names = [n for n, _ in tf.train.list_variables(prefix)]
    assert sum(n.endswith(('/u/.ATTRIBUTES/VARIABLE_VALUE', '/v/.ATTRIBUTES/VARIABLE_VALUE'))
               for n in names) == 10
    seed = model.Dis_Net(32, 1, filters=128)
    assert [type(layer).__name__ for layer in seed.layers].count('BatchNormalization') == 2
    assert seed.layers[-1].activation.__name__ == 'sigmoid'


def test_losses_against_closed_forms():
    real = tf.constant([[2.0], [-0.5], [0.3]])
    fake = tf.constant([[-1.5], [0.7], [1.2]])
    r, f = real.numpy()[:, 0], fake.numpy()[:, 0]
    np.testing.assert_allclose(gan.discriminator_losses(real, fake, 'hinge'),
                               np.maximum(0, 1 - r) + np.maximum(0, 1 + f), rtol=1e-6)
    np.testing.assert_allclose(gan.generator_losses(fake, 'hinge'), -f, rtol=1e-6)
    np.testing.assert_allclose(gan.discriminator_losses(real, fake, 'ls'),
                               ((r - 1) ** 2 + f ** 2) / 2, rtol=1e-6)
    np.testing.assert_allclose(gan.generator_losses(fake, 'ls'), (f - 1) ** 2 / 2, rtol=1e-6)
    # bce, the seed's, on probabilities
    p, q = 1 / (1 + np.exp(-r)), 1 / (1 + np.exp(-f))
    np.testing.assert_allclose(gan.discriminator_losses(tf.sigmoid(real), tf.sigmoid(fake)),
                               -np.log(p) - np.log(1 - q), rtol=1e-5)
    np.testing.assert_allclose(gan.generator_losses(tf.sigmoid(fake)), -np.log(q), rtol=1e-5)
    # averaged over the global batch, not the local one
    np.testing.assert_allclose(gan.generator_loss(fake, 6, 'ls'), ((f - 1) ** 2 / 2).sum() / 6,
                               rtol=1e-6)


def test_r1_is_the_gradient_norm_of_a_linear_discriminator():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4 * 4 * 2, 1)).astype(np.float32)
    D = keras.Sequential([keras.Input([4, 4, 2]), keras.layers.Flatten(), keras.layers.Dense(1)])
    D.layers[-1].kernel.assign(w)
    images = tf.constant(rng.normal(size=(3, 4, 4, 2)).astype(np.float32))
    output, penalty = gan.r1_penalties(D, images, 10.0)
    # D(x) = w . x + b: its gradient is w for every image, R1 = gamma / 2 |w|^2
    np.testing.assert_allclose(penalty, [5.0 * (w ** 2).sum()] * 3, rtol=1e-5)
    np.testing.assert_allclose(output, D(images), rtol=1e-6)
    # a quadratic D, D(x) = sum(x^2): gradient 2x, R1 = gamma / 2 * 4 |x|^2
    square = keras.Sequential([keras.Input([4, 4, 2]), keras.layers.Lambda(
        lambda x: tf.reduce_sum(x * x, axis=[1, 2, 3])[:, None])])
    _, penalty = gan.r1_penalties(square, images, 1.0)
    np.testing.assert_allclose(penalty, 2 * (images.numpy() ** 2).sum(axis=(1, 2, 3)), rtol=1e-5)


def test_a_run_with_every_discriminator_recipe(mnist_npz, tmp_path):
    # least squares here; the hinge loss runs in test_interrupt.py, resumed exactly
    run = train_in_process(str(tmp_path), ImageType='MNIST', mnist_path=mnist_npz, seed=3,
                           epochs=1, spectral_norm=True, r1=1.0, loss='ls', dropout=0.0)
    table = csv_log.read_csv(os.path.join(str(tmp_path), 'logs', 'MNIST-False-loss.csv'),
                             csv_log.CSV_COLUMNS)
    assert len(table['epoch']) == 1
    # Real_P and Fake_P are probabilities (the sigmoid of the logits); the losses finite
    assert 0 < table['Real_P'][0] < 1 and 0 < table['Fake_P'][0] < 1
    assert np.isfinite(table['Gen_loss'][0]) and np.isfinite(table['Dis_loss'][0])
    layers = model.spectral_layers(run.Discriminator)
    # u and v moved from their start: one power step at build, then one a step
    fresh = model.Dis_Net(32, 1, filters=128, spectral_norm=True, logits=True)
    assert not np.allclose(layers[1].u.numpy(), model.spectral_layers(fresh)[1].u.numpy())
