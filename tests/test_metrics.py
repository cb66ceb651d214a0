"""FID, KID, precision/recall and IS against known answers; feature models; evaluation in training."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import dataset
import metrics
import trainer
import utils
from plot_logs import plot_logs
from helpers import StopAt, error_line, run_script, script_env, train_in_process
from utils import UsageError


def test_fid_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    d = 6
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    s1, s2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    # covariances with the same eigenvectors: FID = |mu1-mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2
    sigma1, sigma2 = [rotation @ np.diag(s) @ rotation.T for s in (s1, s2)]
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert metrics.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(want, rel=1e-9)
    assert metrics.frechet_distance(mu2, sigma2, mu1, sigma1) == pytest.approx(want, rel=1e-9)


def test_fid_of_a_set_with_itself_is_zero_and_symmetric():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(500, 8)), rng.normal(0.5, 1.5, size=(400, 8))
    assert metrics.fid(x, x) == pytest.approx(0, abs=1e-8)
    assert metrics.fid(x, y) == pytest.approx(metrics.fid(y, x), rel=1e-9)
    assert metrics.fid(x, y) > 1


def brute_force_mmd(x, y):
    d = x.shape[1]
    k = lambda a, b: (np.dot(a, b) / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_brute_force_and_is_unbiased():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(20, 5)), rng.normal(0.3, 1, size=(20, 5))
    mean, std = metrics.kid(x, y, subsets=1, subset_size=20)
    assert mean == pytest.approx(brute_force_mmd(x, y), rel=1e-9) and std == 0
    # one distribution: the unbiased estimate averages to about 0 (it is often negative)
    draws = [metrics.kid(rng.normal(size=(50, 4)), rng.normal(size=(50, 4)), subsets=1)[0]
             for _ in range(200)]
    assert abs(np.mean(draws)) < 3 * np.std(draws) / np.sqrt(len(draws))
    assert min(draws) < 0
    assert metrics.kid(x, y + 3, subsets=5)[0] > 10 * abs(np.mean(draws))


def test_precision_and_recall_on_known_sets():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 4))
    assert metrics.precision_recall(x, x.copy()) == (1.0, 1.0)
    assert metrics.precision_recall(x, x + 100) == (0.0, 0.0)
    # real images in 4 far apart modes; generated ones cover 2 of them
    modes = np.eye(4) * 50
    real = np.concatenate([m + rng.normal(size=(200, 4)) for m in modes])
    fake = np.concatenate([m + rng.normal(size=(400, 4)) for m in modes[:2]])
    precision, recall = metrics.precision_recall(real, fake)
    assert precision > 0.85 and recall == pytest.approx(0.5, abs=0.05)


def test_inception_score_bounds():
    one_hot = np.eye(10)[np.arange(1000) % 10]
    assert metrics.inception_score(one_hot)[0] == pytest.approx(10, rel=1e-6)
    assert metrics.inception_score(np.tile(np.eye(10)[3], (1000, 1)))[0] == pytest.approx(1)
    assert metrics.inception_score(np.full((1000, 10), 0.1))[0] == pytest.approx(1)


def test_inception_v3_builds_offline_from_random_weights_or_a_local_file(tmp_path):
    net = metrics.inception_v3(None)  # random weights: nothing is downloaded
    extractor = metrics.FeatureExtractor(net, 'random inception')
    images = tf.random.uniform([3, 32, 32, 1], -1, 1)  # grayscale, resized to 299 and coloured
    features, probabilities = extractor(iter([images]), 3, 'test')
    assert features.shape == (3, 2048) and probabilities.shape == (3, 1000)
    np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-4)
    path = str(tmp_path / 'inception.weights.h5')
    net.save_weights(path)
    loaded, name = metrics.load_feature_model(inception_weights=path)
    assert name.startswith('inception_v3 ' + os.path.abspath(path))
    again, _ = metrics.FeatureExtractor(loaded, name)(iter([images]), 3, 'test')
    np.testing.assert_allclose(again, features, rtol=1e-4, atol=1e-5)
    with pytest.raises(UsageError, match='--inception_weights nope.h5 does not exist'):
        metrics.load_feature_model(inception_weights='nope.h5')


def tiny_feature_model(path, channels=1):
    """A small untrained .keras model: images -> [16 features, 10 class probabilities]."""
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input([16, 16, channels])
    x = keras.layers.Conv2D(8, 3, strides=2, activation='relu')(x)
    features = keras.layers.Dense(16, activation='tanh')(keras.layers.GlobalAveragePooling2D()(x))
    probabilities = keras.layers.Dense(10, activation='softmax')(features)
    keras.Model(inputs, [features, probabilities]).save(path)
    return path


@pytest.fixture(scope='module')
def feature_model(tmp_path_factory):
    return tiny_feature_model(str(tmp_path_factory.mktemp('features') / 'tiny.keras'))


def eval_settings(mnist_npz, feature_model, stats_dir):
    return dict(ImageType='MNIST', mnist_path=mnist_npz, epochs=2, steps_per_epoch=2, seed=6,
                eval_every=1, eval_samples=40, feature_model=feature_model,
                stats_dir=str(stats_dir), tensorboard=True)


def eval_rows(folder):
    table = utils.read_csv(os.path.join(folder, 'logs', 'MNIST-False-eval.csv'),
                           utils.EVAL_COLUMNS)
    return {k: v for k, v in table.items() if k != 'seconds'}  # all but the timing


def test_evaluation_during_training_and_after_a_stop(mnist_npz, feature_model, tmp_path):
    settings = eval_settings(mnist_npz, feature_model, tmp_path / 'stats')
    train_in_process(tmp_path / 'reference', **settings)
    reference = str(tmp_path / 'reference')
    rows = eval_rows(reference)
    assert list(rows['epoch']) == [0, 1]
    assert np.all(rows['FID'] > 0) and np.all((rows['precision'] >= 0) & (rows['recall'] <= 1))
    assert np.all((rows['IS'] >= 1) & (rows['IS'] <= 10))
    best = json.load(open(os.path.join(reference, 'models', 'MNIST-False', 'best', 'best.json')))
    assert best['fid'] == pytest.approx(rows['FID'].min(), abs=1e-6)
    assert best['epoch'] == int(rows['epoch'][np.argmin(rows['FID'])])
    assert keras.models.load_model(os.path.join(reference, 'models', 'MNIST-False', 'best',
                                                'generator.keras')).output_shape == (None, 32, 32, 1)
    tags = set()
    for path in tf.io.gfile.glob(os.path.join(reference, 'logs', 'tensorboard', 'MNIST-False',
                                              'events.*')):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert {'eval/FID', 'eval/KID', 'eval/precision', 'eval/recall', 'eval/IS'} <= tags
    assert len(os.listdir(tmp_path / 'stats')) == 1  # the reference statistics, cached once
    written = plot_logs([os.path.join(reference, 'logs', 'MNIST-False-loss.csv')],
                        str(tmp_path / 'plots'))
    assert written[-1] == str(tmp_path / 'plots' / 'MNIST-False-eval.png')
    with Image.open(written[-1]) as img:
        assert img.size == (900, 800)

    run = str(tmp_path / 'run')
    with pytest.raises(trainer.Stopped):
        train_in_process(run, [StopAt(3)], **settings)
    train_in_process(run, **settings)
    resumed = eval_rows(run)
    for column in rows:  # each evaluated epoch once, with the uninterrupted run's numbers
        np.testing.assert_array_equal(resumed[column], rows[column])
    best_run = json.load(open(os.path.join(run, 'models', 'MNIST-False', 'best', 'best.json')))
    assert (best_run['epoch'], best_run['fid']) == (best['epoch'], best['fid'])


def test_reference_statistics_follow_their_source(mnist_npz, feature_model, tmp_path):
    from tools import synthetic
    extractor = metrics.FeatureExtractor(*metrics.load_feature_model(feature_model))
    npz = synthetic.write_mnist(str(tmp_path / 'mnist.npz'))
    source = dataset.DataSource('MNIST', 32, array_path=npz)
    images, _ = source.load()
    first = metrics.reference_features(extractor, images, 64, source.identity(),
                                       str(tmp_path / 'stats'))
    again = metrics.reference_features(extractor, images, 64, source.identity(),
                                       str(tmp_path / 'stats'))
    np.testing.assert_array_equal(first.features, again.features)
    # the npz is written again with other digits: the cached statistics are not reused
    os.remove(npz)
    synthetic.write_mnist(npz, seed=1)
    images, _ = source.load()
    changed = metrics.reference_features(extractor, images, 64, source.identity(),
                                         str(tmp_path / 'stats'))
    assert not np.array_equal(changed.features, first.features)


@pytest.mark.slow
def test_evaluate_cli_writes_json(mnist_npz, feature_model, tmp_path):
    train_in_process(tmp_path, ImageType='MNIST', mnist_path=mnist_npz, epochs=1,
                     steps_per_epoch=1, seed=1)
    result = run_script('evaluate.py', ['--model=models/MNIST-False/generator.keras',
                                        '--ImageType=MNIST', '--mnist_path=' + mnist_npz,
                                        '--feature_model=' + feature_model, '--num_samples=30',
                                        '--out=eval.json'], str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.load(open(tmp_path / 'eval.json'))
    assert {'fid', 'kid_mean', 'kid_std', 'precision', 'recall', 'is_mean', 'is_std',
            'num_samples', 'feature_model'} <= set(report)
    assert report['num_samples'] == 30 and report['num_reference'] == 64
    assert 'FID' in result.stdout


@pytest.mark.slow
def test_offline_without_weights_is_one_error_line(mnist_npz, tmp_path):
    train_in_process(tmp_path, ImageType='MNIST', mnist_path=mnist_npz, epochs=1,
                     steps_per_epoch=1, seed=1)
    env = dict(script_env(), KERAS_HOME=str(tmp_path / 'keras'), HTTPS_PROXY='http://127.0.0.1:9',
               HTTP_PROXY='http://127.0.0.1:9', https_proxy='http://127.0.0.1:9')
    result = run_script('evaluate.py', ['--model=models/MNIST-False/generator.keras',
                                        '--ImageType=MNIST', '--mnist_path=' + mnist_npz],
                        str(tmp_path), env=env)
    line = error_line(result)
    assert 'cannot download InceptionV3' in line and '--inception_weights=PATH' in line
    assert metrics.INCEPTION_FILE in line
