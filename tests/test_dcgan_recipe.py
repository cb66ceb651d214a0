"""pytorch/examples' differences from the seed, behind flags: its networks (--arch=dcgan) and its
update order (--update_order=alternating), against what they must compute."""
import keras
import numpy as np
import tensorflow as tf

import gan
import model

NOISE, SIZE, FILTERS, BATCH, SEED = 8, 32, 32, 8, 7


def layer_kinds(net):
    return [type(layer).__name__ for layer in net.layers]


def test_dcgan_networks():
    keras.utils.set_random_seed(0)
    G = model.Gen_Net(1, 100, SIZE, filters=256, arch='dcgan')
    D = model.Dis_Net(SIZE, 1, filters=256, arch='dcgan')
    # ReLU in G, LeakyReLU 0.2 in D, no Dropout and no Dense layer in D, no biases anywhere
    assert layer_kinds(G).count('ReLU') == 3 and 'LeakyReLU' not in layer_kinds(G)
    assert not {'Dropout', 'Dense'} & set(layer_kinds(D))
    assert {layer.negative_slope for layer in D.layers
            if isinstance(layer, keras.layers.LeakyReLU)} == {0.2}
    assert not [v for net in (G, D) for v in net.trainable_variables if 'bias' in v.name]
    # N(0, 0.02) kernels, BatchNorm scales N(1, 0.02)
    kernels = np.concatenate([v.numpy().ravel()
                              for v in G.trainable_variables + D.trainable_variables
                              if 'kernel' in v.name])
    assert abs(kernels.std() - 0.02) < 0.001 and abs(kernels.mean()) < 0.001
    scales = np.concatenate([v.numpy() for v in D.trainable_variables if 'gamma' in v.name])
    assert abs(scales.mean() - 1) < 0.005 and 0.01 < scales.std() < 0.03
    probability = D(G(np.zeros([2, 100], np.float32)))
    assert probability.shape == (2, 1) and np.all((0 < probability) & (probability < 1))
    # with spectral normalization: its 4 convolutions, no BatchNorm
    normalized = model.Dis_Net(SIZE, 1, filters=256, arch='dcgan', spectral_norm=True)
    assert len(model.spectral_layers(normalized)) == 4
    assert 'BatchNormalization' not in layer_kinds(normalized)
    # the seed's networks are as they were: LeakyReLU 0.3, Dropout, a Dense layer, biases
    seed = model.Dis_Net(SIZE, 1, filters=256)
    assert layer_kinds(seed).count('Dropout') == 3 and layer_kinds(seed).count('Dense') == 1
    assert layer_kinds(model.Gen_Net(1, 100, SIZE, filters=256)).count('LeakyReLU') == 3


def one_step(weights, alternating):
    """G and D (dcgan networks, given weights) after one train step of the given order."""
    strategy = tf.distribute.get_strategy()
    images = np.random.default_rng(0).uniform(-1, 1, (BATCH, SIZE, SIZE, 1)).astype('float32')
    dist = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(images).batch(BATCH))
    G, D, G_opt, D_opt = gan.setup_model(1, SIZE, NOISE, 1e-3, 10, filters=FILTERS, decay_epochs=(),
                                         arch='dcgan')
    G.set_weights(weights[0])
    D.set_weights(weights[1])
    step = gan.make_train_step([G, D], [G_opt, D_opt], strategy, NOISE, BATCH, SEED,
                               dist.element_spec, alternating=alternating)
    values = step(next(iter(dist)), tf.constant(0, tf.int64)).numpy()
    return G, D, values


def test_alternating_order_steps_g_against_the_updated_discriminator():
    keras.utils.set_random_seed(1)
    start = [model.Gen_Net(1, NOISE, SIZE, filters=FILTERS, arch='dcgan').get_weights(),
             model.Dis_Net(SIZE, 1, filters=FILTERS, arch='dcgan').get_weights()]
    G_alt, D_alt, alt = one_step(start, True)
    G_sim, D_sim, sim = one_step(start, False)
    # D's step is the same in both orders, and so are Real_P, Fake_P and Dis_loss (taken before it)
    for a, b in zip(D_alt.trainable_variables, D_sim.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    np.testing.assert_allclose(alt[[0, 1, 3]], sim[[0, 1, 3]], rtol=1e-5)
    # G's step: Adam's first step on the gradient of BCE(1, D'(G(z))), D' the updated D
    G = model.Gen_Net(1, NOISE, SIZE, filters=FILTERS, arch='dcgan')
    G.set_weights(start[0])
    noise = tf.random.stateless_normal([BATCH, NOISE], seed=tf.constant([SEED, 0], tf.int64))
    with tf.GradientTape() as tape:
        loss = gan.generator_loss(D_alt(G(noise, training=True), training=True), BATCH)
    opt = keras.optimizers.Adam(1e-3, beta_1=0.5)
    opt.apply_gradients(zip(tape.gradient(loss, G.trainable_variables), G.trainable_variables))
    np.testing.assert_allclose(alt[2], loss.numpy(), rtol=1e-5)
    for expected, a in zip(G.trainable_variables, G_alt.trainable_variables):
        np.testing.assert_allclose(a.numpy(), expected.numpy(), atol=1e-6)
    # ... which the simultaneous order does not take
    assert alt[2] != sim[2]
    assert any(not np.allclose(a.numpy(), s.numpy(), atol=1e-6)
               for a, s in zip(G_alt.trainable_variables, G_sim.trainable_variables))
