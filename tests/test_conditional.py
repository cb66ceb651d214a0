"""Conditional training (--conditional): labels with their images through every source, the
conditioning layers, grids by class, exact resume, evaluation, generate.py --class and bad names."""
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import arrays
import conditions
import config
import convert_tfrecord
import csv_log
import dataset
import generate
import metrics
import model
import records
import trainer
from errors import UsageError
from helpers import (StopAt, assert_same_checkpoints, error_line, run_script, small_config,
                     train_in_process)

DIGITS = conditions.Condition(conditions.CLASS, tuple('0123456789'))
ATTRIBUTES = conditions.Condition(conditions.ATTRIBUTES, ('Male', 'Smiling', 'Eyeglasses'))


def first_epoch(c):
    """The RunState of config c, and the (images, condition vectors) batches of its first epoch
    as the train step gets them."""
    run = trainer.build(c)
    batches = trainer.epoch_batches(c, run.strategy, run.images, run.seed, run.steps_per_epoch,
                                    0, 0)
    return run, [(x.numpy(), y.numpy()) for x, y in batches]


def assert_labels_follow_images(batches, images, vectors):
    """Every image of batches came with the condition vector that its source gives it (images
    and vectors: the source's, in its order, read without the pipeline's labels)."""
    truth = {}
    for image, vector in zip(images, vectors):
        truth.setdefault(np.asarray(image, np.float32).tobytes(), []).append(np.asarray(vector))
    seen = 0
    for x, y in batches:
        assert y.dtype == np.float32 and y.shape == (len(x), vectors.shape[1])
        for image, vector in zip(x, y):
            assert any(np.array_equal(vector, v) for v in truth[image.tobytes()])
            seen += 1
    assert seen >= 16


def folder_of_colours(root, per_class=6):
    """Pictures of three colours in a subfolder each (blue, green, red: labels 0, 1, 2)."""
    for channel, name in enumerate(('red', 'green', 'blue')):
        os.makedirs(os.path.join(root, name))
        for i in range(per_class):
            pixels = np.full((40, 40, 3), 30 + 5 * i, np.uint8)
            pixels[..., channel] = 250
            Image.fromarray(pixels).save(os.path.join(root, name, '{}.png'.format(i)))
    return root


def test_digits_labels_reach_the_train_step_with_cache(tmp_path):
    c = small_config(tmp_path, ImageType='digits', conditional=True, cache=True,
                     steps_per_epoch=0, BATCH_SIZE=300)
    run, batches = first_epoch(c)
    assert run.condition == DIGITS and sum(len(x) for x, _ in batches) == 1797
    images = list(dataset.load_digits(32).as_numpy_iterator())
    assert_labels_follow_images(batches, images,
                                DIGITS.vectors(arrays.read_digits(labels=True)[1]))


def test_mnist_and_cifar_npz_labels_reach_the_train_step(mnist_npz, tmp_path):
    run, batches = first_epoch(small_config(tmp_path / 'm', ImageType='MNIST',
                                            mnist_path=mnist_npz, conditional=True))
    data = np.load(mnist_npz)
    assert_labels_follow_images(batches, list(dataset.load_mnist(mnist_npz, 32)
                                              .as_numpy_iterator()),
                                DIGITS.vectors(data['y_train']))
    rng = np.random.default_rng(0)
    cifar = str(tmp_path / 'cifar.npz')
    x, y = rng.integers(0, 256, (40, 32, 32, 3), np.uint8), rng.integers(0, 10, (40, 1))
    np.savez(cifar, x_train=x, y_train=y, x_test=x[:1], y_test=y[:1])
    run, batches = first_epoch(small_config(tmp_path / 'c', ImageType='cifar10',
                                            cifar_path=cifar, conditional=True))
    assert run.condition.names == conditions.CIFAR10_CLASSES
    assert_labels_follow_images(batches, (x.astype(np.float32) - 127.5) / 127.5,
                                run.condition.vectors(y[:, 0]))


def test_folder_classes_reach_the_train_step_from_preresized_records(tmp_path):
    root = folder_of_colours(str(tmp_path / 'colours'))
    out = str(tmp_path / 'records' / 'colours')
    convert_tfrecord.convert(root, out, 'all', progress=False, image_size=32)
    c = small_config(tmp_path, ImageType='folder', TFRecordPath=out, conditional=True,
                     BATCH_SIZE=6)
    run, batches = first_epoch(c)
    assert run.condition.names == ('blue', 'green', 'red')
    for x, y in batches:  # the colour of each picture names its class
        colour = x.mean(axis=(1, 2)).argmax(axis=1)  # 0 red, 1 green, 2 blue
        np.testing.assert_array_equal(y.argmax(axis=1), 2 - colour)
    assert sum(len(x) for x, _ in batches) == 18


def test_celeba_attributes_reach_the_train_step(records, tmp_path):
    c = small_config(tmp_path, ImageType='img_align_celeba', TFRecordPath=records,
                     conditional=True, attributes='Male,Smiling,Eyeglasses', BATCH_SIZE=6)
    run, batches = first_epoch(c)
    assert run.condition == ATTRIBUTES
    files = dataset.partition_files(records, 'all')
    images = list(dataset.load_celeba(records, 'all', 'img_align_celeba', True, 32, files=files)
                  .as_numpy_iterator())
    spec = {'image/Attr': tf.io.FixedLenFeature([40], tf.float32)}
    rows = np.stack([tf.io.parse_single_example(r, spec)['image/Attr'].numpy()
                     for r in dataset.read_records(files)])
    chosen = [records_index(name) for name in ATTRIBUTES.names]
    assert_labels_follow_images(batches, images, rows[:, chosen])
    assert rows[:, chosen].std() > 0  # the synthetic attributes vary


def records_index(name):
    """The place of a CelebA attribute in image/Attr."""
    return records.CELEBA_ATTRIBUTES.index(name)


def test_data_without_labels_and_bad_attributes_are_refused(records, tmp_path):
    root = str(tmp_path / 'flat')
    os.makedirs(root)
    for i in range(4):
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(
            os.path.join(root, '{}.png'.format(i)))
    out = str(tmp_path / 'records' / 'flat')
    convert_tfrecord.convert(root, out, 'all', progress=False)
    with pytest.raises(UsageError, match='no classes to condition on.*subfolder'):
        trainer.build(small_config(tmp_path, ImageType='folder', TFRecordPath=out,
                                   conditional=True))
    celeba = dict(ImageType='img_align_celeba', TFRecordPath=records, conditional=True)
    with pytest.raises(UsageError, match='needs the attributes to draw.*Eyeglasses'):
        trainer.build(small_config(tmp_path, **celeba))
    with pytest.raises(UsageError, match='Smiley is not among them.*Smiling'):
        trainer.build(small_config(tmp_path, attributes='Male,Smiley', **celeba))
    with pytest.raises(UsageError, match='for CelebA'):
        trainer.build(small_config(tmp_path, ImageType='digits', conditional=True,
                                   attributes='Male'))
    with pytest.raises(UsageError, match='only with --conditional'):
        trainer.build(small_config(tmp_path, ImageType='digits', attributes='Male'))


@pytest.mark.parametrize('conditioning', ['concat', 'projection'])
@pytest.mark.parametrize('condition', [DIGITS, ATTRIBUTES], ids=['one-hot', 'attributes'])
def test_conditioning_layers(condition, conditioning):
    G = model.Gen_Net(3, 16, 32, filters=64, arch='dcgan', condition_size=condition.size,
                      conditioning=conditioning)
    D = model.Dis_Net(32, 3, filters=64, arch='dcgan', condition_size=condition.size,
                      conditioning=conditioning, logits=True)
    assert G.input_shape == [(None, 16), (None, condition.size)]
    assert D.input_shape == [(None, 32, 32, 3), (None, condition.size)]
    z = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
    rows = condition.combinations()[:4]
    other = condition.combinations()[4:8]
    images = G([z, rows], training=False).numpy()
    assert images.shape == (4, 32, 32, 3) and np.abs(images).max() <= 1
    # the condition changes what both networks compute
    assert np.abs(images - G([z, other], training=False).numpy()).max() > 1e-4
    assert D([images, rows]).shape == (4, 1)
    assert np.abs(D([images, rows]).numpy() - D([images, other]).numpy()).max() > 1e-6
    # conditional BatchNorm: every BatchNorm of G without its own scale and offset
    norms = [layer for layer in G.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    assert all(n.scale == (conditioning == 'concat') for n in norms) and len(norms) == 3


def test_condition_vectors_and_names():
    np.testing.assert_array_equal(DIGITS.vectors([2, 0]), np.eye(10)[[2, 0]])
    np.testing.assert_array_equal(DIGITS.balanced(12).argmax(1), np.arange(12) % 10)
    assert ATTRIBUTES.row_names(ATTRIBUTES.combinations()[:5]) == [
        'none', 'Male', 'Smiling', 'Eyeglasses', 'Male+Smiling']
    assert len({v.tobytes() for v in ATTRIBUTES.balanced(8)}) == 8  # every combination
    assert DIGITS.parse_class('7') == 7
    assert conditions.Condition(conditions.CLASS, ('cat', 'ship')).parse_class('ship') == 1
    on = ATTRIBUTES.parse_attributes('Male,-Smiling', 50, 0)
    assert (on[:, 0] == 1).all() and (on[:, 1] == 0).all() and 0 < on[:, 2].mean() < 1
    with pytest.raises(UsageError, match='not one of its classes: 0, 1, 2'):
        DIGITS.parse_class('11')
    with pytest.raises(UsageError, match='Beard is not one of its attributes: Male, Smiling'):
        ATTRIBUTES.parse_attributes('Male,-Beard', 1, 0)


@pytest.fixture(scope='module')
def conditional_run(tmp_path_factory):
    """A conditional digits run of 2 epochs of 3 steps, evaluated after each with a feature
    model and a label classifier trained on the run's own 64 MNIST-like images."""
    folder = tmp_path_factory.mktemp('conditional')
    from tools import synthetic
    npz = synthetic.write_mnist(str(folder / 'mnist.npz'))
    run = train_in_process(folder, ImageType='MNIST', mnist_path=npz, conditional=True,
                           conditioning='concat', epochs=2, eval_every=1, eval_samples=40,
                           feature_model=feature_model(folder), stats_dir=str(folder / 'stats'),
                           ema=0.9, seed=3)
    return folder, run


def feature_model(folder):
    """A small random feature model (images -> 8 features), saved as a --feature_model."""
    import keras
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input([32, 32, 1])
    x = keras.layers.Conv2D(8, 3, strides=4)(x)
    net = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    path = str(folder / 'features.keras')
    net.save(path)
    return path


def test_conditional_run_grids_eval_and_exports(conditional_run):
    folder, run = conditional_run
    plots = folder / 'plot' / 'MNIST-False'
    # a row of 8 per class, 32 px tiles, 2 px apart, enlarged to be seen
    grid = np.asarray(Image.open(plots / '002.png'))
    rows, cols = 10 * 34 + 2, 8 * 34 + 2
    assert grid.shape[0] % rows == 0 and grid.shape[0] // rows == grid.shape[1] // cols
    real = np.asarray(Image.open(plots / 'real.png'))
    assert real.shape == grid.shape
    table = csv_log.read_csv(str(folder / 'logs' / 'MNIST-False-eval.csv'), csv_log.EVAL_COLUMNS)
    assert list(table) == list(csv_log.CONDITIONAL_EVAL_COLUMNS)
    assert len(table['accuracy']) == 2 and all(0 <= a <= 1 for a in table['accuracy'])
    models = folder / 'models' / 'MNIST-False'
    assert conditions.load(str(models / 'generator.keras')) == DIGITS
    assert conditions.load(str(models / 'best' / 'generator.keras')) == DIGITS
    G = model.load_generator(str(models / 'generator.keras'), 1, 32, 100)
    assert G.input_shape == [(None, 100), (None, 10)]
    from_weights = model.load_generator(str(models / 'Generator.weights.h5'), 1, 32, 100,
                                        given=[])  # shape and classes from the run's files
    z = np.random.default_rng(0).standard_normal((3, 100)).astype(np.float32)
    np.testing.assert_array_equal(model.apply(from_weights, z, DIGITS.vectors([1, 2, 3])),
                                  model.apply(run.Generator, z, DIGITS.vectors([1, 2, 3])))


def test_evaluation_reports_accuracy_and_the_fid_of_each_class(conditional_run):
    folder, run = conditional_run
    extractor = metrics.FeatureExtractor(*metrics.load_feature_model(feature_model(folder)))
    images, count = run.config.source.load(condition=DIGITS)
    reference = metrics.reference_features(extractor, images, count, 'test', str(folder / 's'),
                                           condition=DIGITS)
    assert reference.labels.shape == (64, 10)
    judge = metrics.label_classifier(images, count, DIGITS, 'test', str(folder / 's'))
    assert 0 <= judge.ceiling[0] <= 1
    result = metrics.evaluate(run.sampler(), extractor, reference, 50, condition=DIGITS,
                              judge=judge)
    assert set(result['class_fid']) == set(DIGITS.names)
    assert 0 <= result['conditional_accuracy'] <= 1
    # a judge that reads every image as a 3 is right on the 3s alone: a tenth
    judge.predict = lambda images: DIGITS.vectors(np.full(len(images), 3))
    assert metrics.evaluate(run.sampler(), extractor, reference, 50, condition=DIGITS,
                            judge=judge)['conditional_accuracy'] == 0.1
    # cached: the second call does not train again
    again = metrics.label_classifier(images, count, DIGITS, 'test', str(folder / 's'))
    assert again.ceiling == judge.ceiling


def test_generate_class_draws_only_that_class(conditional_run):
    folder, run = conditional_run
    G = run.Generator
    asked = generate.Asked(DIGITS, '7')
    images, latents, (rows, cols), title, _ = generate.draw(G, 2, 3, 5, asked=asked)
    assert (rows, cols) == (2, 3) and 'class 7' in title
    np.testing.assert_array_equal(images, generate.generate(G, latents, DIGITS.vectors([7] * 6)))
    assert not np.array_equal(images, generate.generate(G, latents, DIGITS.vectors([1] * 6)))
    # every class: a row each, the same latents in every row
    images, latents, (rows, cols), _, labels = generate.draw(G, 2, 3, 5, asked=generate.Asked(
        DIGITS))
    assert (rows, cols) == (10, 3) and labels[:4] == ['0', '', '', '1']
    np.testing.assert_array_equal(latents[:3], latents[27:])
    # from one class to another at fixed latents: the ends are those classes
    images, latents, (rows, cols), _, _ = generate.draw(
        G, 2, 3, 5, interpolate=True, steps=4, asked=generate.Asked(DIGITS, '3,8'))
    assert (rows, cols) == (2, 4)
    np.testing.assert_array_equal(images[3], generate.generate(G, latents[0, 3:], DIGITS.vectors(
        [8]))[0])
    with pytest.raises(UsageError, match='only with --interpolate'):
        generate.draw(G, 2, 3, 5, asked=generate.Asked(DIGITS, '3,8'))


@pytest.mark.slow
def test_resume_and_steps_per_loop_with_the_condition(tmp_path):
    # stopped as Ctrl-C stops it mid-epoch, with loops of 4 steps, and resumed: the same CSV,
    # checkpoint and grids as a plain run of single steps
    settings = dict(ImageType='digits', conditional=True, epochs=2, steps_per_epoch=5, seed=8,
                    BATCH_SIZE=4, ema=0.9, r1=0.01, arch='dcgan')
    train_in_process(tmp_path / 'k1', **settings)
    with pytest.raises(trainer.Stopped, match='SIGINT at epoch 2, step 4 of 5'):
        train_in_process(tmp_path / 'k2', [StopAt(9)], steps_per_loop=4, **settings)
    train_in_process(tmp_path / 'k2', steps_per_loop=4, **settings)
    name = 'digits-False'
    for path in ('logs/digits-False-loss.csv', 'plot/digits-False/002.png'):
        assert (tmp_path / 'k1' / path).read_bytes() == (tmp_path / 'k2' / path).read_bytes()
    assert_same_checkpoints(str(tmp_path / 'k1'), str(tmp_path / 'k2'), save_name=name,
                            ignore=('run_flags',))


@pytest.mark.slow
def test_generate_bad_class_is_one_line(conditional_run, tmp_path):
    folder, _ = conditional_run
    model_file = str(folder / 'models' / 'MNIST-False' / 'generator.keras')
    line = error_line(run_script('generate.py', ['--model=' + model_file, '--class=ship'],
                                 tmp_path))
    assert 'ship is not one of its classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9' in line
    # the other refusals, in this process: attributes of a class generator, and an unconditional
    # generator asked for a class
    out = str(tmp_path / 'samples.png')
    with pytest.raises(UsageError, match='conditioned on classes'):
        generate.run(config.SampleConfig(model=model_file, attributes='Male', out=out))
    plain = str(tmp_path / 'plain' / 'generator.keras')
    model.save_network(model.Gen_Net(1, 100, 32, filters=64), plain, 'a generator')
    with pytest.raises(UsageError, match='is not a conditional generator.*drop --class'):
        generate.run(config.SampleConfig(model=plain, class_name='7', out=out))
    assert not os.path.exists(out)


def test_attribute_run_grids_and_sampling(records, tmp_path):
    train_in_process(tmp_path, ImageType='img_align_celeba', TFRecordPath=records,
                     conditional=True, attributes='Male,Smiling,Eyeglasses', epochs=1,
                     BATCH_SIZE=6, conditioning='projection')
    plots = tmp_path / 'plot' / 'img_align_celeba-False'
    grid = np.asarray(Image.open(plots / '001.png'))
    # every combination of the 3 attributes, a row each: none, each alone, the pairs, all three
    assert grid.shape[0] == grid.shape[1] and grid.shape[2] == 3  # 8 rows of 8
    assert np.asarray(Image.open(plots / 'real.png')).shape == grid.shape
    saved = str(tmp_path / 'models' / 'img_align_celeba-False' / 'generator.keras')
    assert conditions.load(saved) == ATTRIBUTES
    G = model.load_generator(saved, 3, 32, 100)
    images, latents, (rows, cols), title, _ = generate.draw(
        G, 2, 4, 0, asked=generate.Asked(ATTRIBUTES, attributes='Male,-Smiling'))
    assert images.shape == (8, 32, 32, 3) and 'Male,-Smiling' in title
    with pytest.raises(UsageError, match='conditioned on the attributes Male, Smiling'):
        generate.Asked(ATTRIBUTES, '7')
