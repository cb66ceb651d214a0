"""Gen_Net / Dis_Net: the seed's shapes, layer placement and output ranges."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import model


@pytest.mark.parametrize('size', [32, 64, 128])
@pytest.mark.parametrize('channels', [1, 3])
def test_shapes_and_ranges(size, channels):
    G = model.Gen_Net(channels, noise_dim=100, image_size=size)
    D = model.Dis_Net([size, size], channels)
    noise = tf.random.normal([4, 100], seed=1)
    images = G(noise, training=True)
    assert images.shape == (4, size, size, channels)
    assert float(tf.reduce_min(images)) >= -1.0 and float(tf.reduce_max(images)) <= 1.0
    probs = D(images, training=False)
    assert probs.shape == (4, 1)
    assert np.all((probs.numpy() > 0) & (probs.numpy() < 1))


def test_seed_architecture_at_64():
    D = model.Dis_Net([64, 64], 3)
    convs = [l for l in D.layers if isinstance(l, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [128, 256, 512, 1024, 1]
    assert all(c.kernel_size == (4, 4) for c in convs)
    assert [c.strides for c in convs] == [(2, 2)] * 4 + [(1, 1)]
    kinds = [type(l).__name__ for l in D.layers]
    # first block: conv + LeakyReLU only; then conv, BN, LeakyReLU, Dropout(0.3)
    assert kinds[1:3] == ['Conv2D', 'LeakyReLU']
    assert kinds[3:7] == ['Conv2D', 'BatchNormalization', 'LeakyReLU', 'Dropout']
    assert kinds[-5:] == ['Conv2D', 'Dropout', 'Flatten', 'Dense', 'Activation']
    assert all(l.rate == 0.3 for l in D.layers if isinstance(l, keras.layers.Dropout))

    G = model.Gen_Net(3)
    deconvs = [l for l in G.layers if isinstance(l, keras.layers.Conv2DTranspose)]
    assert [d.filters for d in deconvs] == [1024, 512, 256, 128, 3]
    assert [d.output.shape[1] for d in deconvs] == [4, 8, 16, 32, 64]
    assert all(d.kernel_size == (4, 4) for d in deconvs)
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in G.layers) == 4


def test_block_added_or_removed():
    assert [l.filters for l in model.Gen_Net(1, image_size=32).layers
            if isinstance(l, keras.layers.Conv2DTranspose)] == [1024, 512, 256, 1]
    assert [l.filters for l in model.Dis_Net(128, 3).layers
            if isinstance(l, keras.layers.Conv2D)] == [64, 128, 256, 512, 1024, 1]


def test_filters_set_the_widths():
    assert [l.filters for l in model.Gen_Net(3, image_size=64, filters=256).layers
            if isinstance(l, keras.layers.Conv2DTranspose)] == [256, 128, 64, 32, 3]
    assert [l.filters for l in model.Dis_Net(64, 3, filters=256).layers
            if isinstance(l, keras.layers.Conv2D)] == [32, 64, 128, 256, 1]
    for filters in (4, 100):  # 64 px halves it three times: a multiple of 8
        with pytest.raises(ValueError, match='filters must be a multiple of 8 at DisInSize 64'):
            model.Gen_Net(3, image_size=64, filters=filters)


@pytest.mark.parametrize('size', [16, 48, 96, 256])
def test_unsupported_size(size):
    with pytest.raises(ValueError, match='DisInSize must be one of 32, 64, 128'):
        model.Gen_Net(3, image_size=size)
    with pytest.raises(ValueError, match='DisInSize must be one of'):
        model.Dis_Net(size, 3)


def test_float32_outputs_under_mixed_precision():
    keras.mixed_precision.set_global_policy('mixed_bfloat16')
    try:
        G, D = model.Gen_Net(3, image_size=32), model.Dis_Net(32, 3)
        images = G(tf.zeros([2, 100]))
        assert images.dtype == tf.float32 and D(images).dtype == tf.float32
        assert G.layers[2].compute_dtype == 'bfloat16'
    finally:
        keras.mixed_precision.set_global_policy('float32')
