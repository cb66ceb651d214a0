"""Recipe flags beyond the seed: --ema (and standing statistics), --augment (DiffAugment),
--lr_G / --lr_D / --lr_decay_epochs."""
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import augment
import config
import ema
from errors import UsageError
import gan
from helpers import StopAt, assert_same_checkpoints, quick_start_settings, train_in_process
import model
import trainer

# one worker runs this file's tests, which share expensive runs (pytest.ini: loadgroup)
pytestmark = pytest.mark.xdist_group('recipes')


def test_ema_after_k_steps_is_the_closed_form():
    keras.utils.set_random_seed(0)
    source = keras.Sequential([keras.Input([3]), keras.layers.Dense(2)])
    sampled = keras.Sequential([keras.Input([3]), keras.layers.Dense(2)])
    average = ema.SampledGenerator(source, sampled, 0.9, seed=1)
    kernel = source.layers[0].kernel
    weights = [kernel.numpy()]  # w_0, the weights the average starts from
    rng = np.random.default_rng(0)
    for t in range(6):
        kernel.assign(rng.normal(size=kernel.shape).astype(np.float32))
        weights.append(kernel.numpy())
        average.update(tf.constant(t, tf.int64))
    # avg_k = prod_j d_j * w_0 + sum_j (1 - d_j) prod_{i > j} d_i * w_j, d_t = min(0.9, (1+t)/(10+t))
    decays = [min(0.9, (1 + t) / (10 + t)) for t in range(6)]
    want = np.prod(decays) * weights[0]
    for j, d in enumerate(decays):
        want = want + (1 - d) * np.prod(decays[j + 1:]) * weights[j + 1]
    np.testing.assert_allclose(sampled.layers[0].kernel.numpy(), want, rtol=1e-5, atol=1e-6)


def test_standing_statistics_are_those_of_the_sampled_weights():
    keras.utils.set_random_seed(0)
    source = keras.Sequential([keras.Input([4]), keras.layers.Dense(3),
                               keras.layers.BatchNormalization()])
    sampled = keras.Sequential([keras.Input([4]), keras.layers.Dense(3),
                                keras.layers.BatchNormalization()])
    copy = ema.SampledGenerator(source, sampled, 0.0, seed=2)  # decay 0: a copy when sampled
    source.layers[0].kernel.assign(source.layers[0].kernel * 3 + 1)
    out = copy.generator(step=5)
    np.testing.assert_array_equal(out.layers[0].kernel.numpy(), source.layers[0].kernel.numpy())
    z = np.concatenate([tf.random.stateless_normal([ema.STATS_BATCH, 4], seed=[2, -2 - i])
                        for i in range(ema.STATS_BATCHES)])
    hidden = source.layers[0](z).numpy()  # the inputs of the BatchNorm layer
    norm = out.layers[1]
    np.testing.assert_allclose(norm.moving_mean.numpy(), hidden.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), hidden.reshape(
        ema.STATS_BATCHES, ema.STATS_BATCH, 3).var(1).mean(0), rtol=1e-4)
    norm.moving_mean.assign(tf.zeros(3))
    assert copy.generator(step=5) is out and not out.layers[1].moving_mean.numpy().any()


def checkpoint_names(folder):
    path = os.path.join(folder, 'models', 'digits-False', 'checkpoints')
    return tf.train.load_checkpoint(path), set(tf.train.load_checkpoint(
        path).get_variable_to_shape_map())


@pytest.mark.slow
def test_ema_variables_only_with_ema_and_exported(digits_run, tmp_path):
    # digits_run: the quick start's recipe, with --ema; the same run without
    train_in_process(tmp_path / 'off', **quick_start_settings(epochs=1, steps_per_epoch=4,
                                                              ema=0.0))
    _, off = checkpoint_names(str(tmp_path / 'off'))
    reader, on = checkpoint_names(digits_run[0])
    assert not any(n.startswith('generator_ema/') for n in off)
    extra = {n for n in on - off if not n.startswith('_CHECKPOINTABLE_OBJECT_GRAPH')}
    assert extra and all(n.startswith('generator_ema/') for n in extra)
    models = os.path.join(digits_run[0], 'models', 'digits-False')
    averaged = keras.models.load_model(os.path.join(models, 'generator.keras'))
    raw = keras.models.load_model(os.path.join(models, 'generator_raw.keras'))
    z = np.random.default_rng(0).normal(size=(2, 100)).astype(np.float32)
    assert not np.allclose(averaged(z), raw(z))
    # generator.keras holds the averaged weights the checkpoint keeps as generator_ema
    kernels = {int(re.match(r'generator_ema/_operations/(\d+)/kernel/', n).group(1)):
               reader.get_tensor(n) for n in extra
               if re.match(r'generator_ema/_operations/\d+/kernel/', n)}
    assert len(kernels) == 4  # Dense and 3 transposed convolutions at 32 px
    for index, kernel in kernels.items():
        np.testing.assert_array_equal(averaged.layers[index].kernel.numpy(), kernel)
        assert not np.array_equal(raw.layers[index].kernel.numpy(), kernel)
    assert not (tmp_path / 'off' / 'models' / 'digits-False' / 'generator_raw.keras').exists()


@pytest.mark.slow
def test_standing_stats_export_the_trained_weights_with_recomputed_statistics(mnist_npz, tmp_path):
    run = train_in_process(tmp_path, ImageType='MNIST', mnist_path=mnist_npz, epochs=1,
                           steps_per_epoch=2, seed=4, standing_stats=True)
    models = tmp_path / 'models' / 'MNIST-False'
    exported = keras.models.load_model(models / 'generator.keras')
    raw = keras.models.load_model(models / 'generator_raw.keras')
    norms = [i for i, layer in enumerate(raw.layers)
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 3
    for mine, theirs in zip(exported.trainable_variables, raw.trainable_variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())  # not averaged
    # the statistics: those of the trained weights' own activations on the fixed latents, not
    # the moving averages of training
    again = ema.SampledGenerator(raw, model.Gen_Net(1, 100, 32, filters=128), 0.0,
                                 run.seed).generator(step=1)
    for i in norms:
        np.testing.assert_allclose(exported.layers[i].moving_mean.numpy(),
                                   again.layers[i].moving_mean.numpy(), rtol=1e-5, atol=1e-6)
        assert not np.allclose(exported.layers[i].moving_mean.numpy(),
                               raw.layers[i].moving_mean.numpy())


RECIPE_RUN = dict(ImageType='MNIST', epochs=2, steps_per_epoch=5, seed=9, ema=0.99,
                  augment='color,translation,cutout')


@pytest.fixture(scope='session')
def whole_recipe_run(mnist_npz, tmp_path_factory):
    """An uninterrupted run with --ema and --augment, one step per device loop."""
    folder = tmp_path_factory.mktemp('whole')
    train_in_process(folder, mnist_path=mnist_npz, steps_per_loop=1, **RECIPE_RUN)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize('loop', [1, 4])
def test_stop_and_resume_with_ema_and_augment_is_exact(whole_recipe_run, mnist_npz, tmp_path,
                                                        loop):
    settings = dict(RECIPE_RUN, mnist_path=mnist_npz, steps_per_loop=loop)
    with pytest.raises(trainer.Stopped, match='at epoch 2'):
        train_in_process(tmp_path, [StopAt(7)], **settings)
    train_in_process(tmp_path, **settings)
    runs = (whole_recipe_run, tmp_path)
    csv = [open(k / 'logs' / 'MNIST-False-loss.csv').read() for k in runs]
    assert csv[0] == csv[1] and csv[0].count('\n') == 3
    # every tensor, the averaged generator's too, but the flags (they hold --steps_per_loop)
    assert_same_checkpoints(str(whole_recipe_run), str(tmp_path), ignore=('run_flags',))
    assert any(n.startswith('generator_ema/') for n in tf.train.load_checkpoint(str(
        tmp_path / 'models' / 'MNIST-False' / 'checkpoints')).get_variable_to_shape_map())
    assert (whole_recipe_run / 'plot' / 'MNIST-False' / '002.png').read_bytes() == \
        (tmp_path / 'plot' / 'MNIST-False' / '002.png').read_bytes()


def test_each_policy_changes_images_as_documented():
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0.2, 0.9, (6, 16, 16, 3)).astype(np.float32))
    seed = tf.constant([4, 5], tf.int64)
    moved = augment.translation(images, seed, 0, 6).numpy()
    x = images.numpy()
    for i in range(6):  # a shift of at most 2 (1/8 of 16) each way, zeros coming in
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(moved[i], shifted(x[i], dy, dx))]
        assert len(matches) == 1, i
    assert (moved == 0).any()
    cut = augment.cutout(images, seed, 0, 6).numpy()
    for i in range(6):  # a square of side 8, cut where it fits, the rest untouched
        zero = np.all(cut[i] == 0, axis=-1)
        rows, cols = np.where(zero)
        assert 0 < zero.sum() <= 64 and zero.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
        np.testing.assert_array_equal(cut[i][~zero], x[i][~zero])
    coloured = augment.color(images, seed, 0, 6).numpy()
    assert not np.allclose(coloured, x)
    # brightness moves the mean; saturation and contrast scale deviations about the means
    assert np.abs(coloured.mean(axis=(1, 2, 3)) - x.mean(axis=(1, 2, 3))).max() > 0.01
    grey = np.repeat(x[..., :1], 3, axis=-1)  # no colour: saturation changes nothing
    grey_out = augment.color(tf.constant(grey), seed, 0, 6).numpy()
    np.testing.assert_allclose(grey_out[..., 0], grey_out[..., 2], atol=1e-6)
    # a slice of the global batch gets the parameters of its rows: replicas agree
    part = augment.diff_augment(images[2:4], augment.POLICIES, seed, offset=2, total=6)
    whole = augment.diff_augment(images, augment.POLICIES, seed, total=6)
    np.testing.assert_allclose(part, whole[2:4], rtol=1e-6)


def shifted(image, dy, dx):
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = \
        image[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    return out


def test_gradients_flow_through_the_augmentation_to_the_generator():
    keras.utils.set_random_seed(1)
    generator = keras.Sequential([keras.Input([8]), keras.layers.Dense(8 * 8 * 3),
                                  keras.layers.Reshape([8, 8, 3])])
    with tf.GradientTape() as tape:
        images = augment.diff_augment(generator(tf.ones([4, 8])), augment.POLICIES,
                                      tf.constant([1, 2], tf.int64))
        loss = tf.reduce_sum(images ** 2)
    grads = tape.gradient(loss, generator.trainable_variables)
    assert all(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)


def test_bad_policy_or_decay_epochs(tmp_path):
    with pytest.raises(UsageError, match='--augment policy zoom is not one of color,translation,'
                       'cutout'):
        train_in_process(tmp_path, ImageType='digits', augment='color,zoom')
    with pytest.raises(UsageError, match='--lr_decay_epochs=20,10 is not a rising list'):
        train_in_process(tmp_path, ImageType='digits', lr_decay_epochs='20,10')


def test_separate_learning_rates_and_constant_decay(tmp_path):
    run = trainer.build(config.TrainConfig(ImageType='digits', DisInSize=32, filters=128,
                                           BATCH_SIZE=8, steps_per_epoch=3, lr_G=1e-4, lr_D=4e-4,
                                           lr_decay_epochs='2', LOG_PATH=str(tmp_path)))
    run.step.assign(5)  # the last step of epoch 2
    assert (float(run.G_opt.learning_rate), float(run.D_opt.learning_rate)) == pytest.approx(
        (1e-4, 4e-4))
    run.step.assign(6)
    assert (float(run.G_opt.learning_rate), float(run.D_opt.learning_rate)) == pytest.approx(
        (1e-5, 4e-5))
    constant = gan.lr_schedule(3e-4, 10, ())
    assert float(constant(0)) == float(constant(10 ** 6)) == pytest.approx(3e-4)
