"""FID, KID, precision/recall and IS against known answers; feature models; evaluation in training."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import csv_log
import dataset
from errors import UsageError
from helpers import StopAt, run_script, tiny_feature_model, train_in_process
import metrics
import model
from plot_logs import plot_logs
import trainer

# one worker runs this file's tests, which share expensive runs (pytest.ini: loadgroup)
pytestmark = pytest.mark.xdist_group('metrics')


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


@pytest.mark.slow
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


@pytest.fixture(scope='session')
def feature_model(tmp_path_factory):
    return tiny_feature_model(str(tmp_path_factory.mktemp('features') / 'tiny.keras'))


def eval_settings(mnist_npz, feature_model, stats_dir):
    return dict(ImageType='MNIST', mnist_path=mnist_npz, epochs=2, steps_per_epoch=2, seed=6,
                eval_every=1, eval_samples=40, feature_model=feature_model,
                stats_dir=str(stats_dir), tensorboard=True)


def eval_rows(folder):
    table = csv_log.read_csv(os.path.join(folder, 'logs', 'MNIST-False-eval.csv'),
                           csv_log.EVAL_COLUMNS)
    return {k: v for k, v in table.items() if k != 'seconds'}  # all but the timing


@pytest.mark.slow
def test_evaluation_during_training_and_after_a_stop(mnist_npz, feature_model, tmp_path):
    settings = eval_settings(mnist_npz, feature_model, tmp_path / 'stats')
    train_in_process(tmp_path / 'reference', **settings)
    reference = str(tmp_path / 'reference')
    rows = eval_rows(reference)
    assert list(rows['epoch']) == [0, 1]
    assert np.all(rows['FID'] > 0)
    assert np.all((rows['precision'] >= 0) & (rows['precision'] <= 1))
    assert np.all((rows['recall'] >= 0) & (rows['recall'] <= 1))
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
    source = dataset.source('MNIST', 32, array_path=npz)
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
    # replaced by a copy of other digits that kept its size and time (cp -p, rsync -a): the key
    # changed by the time alone, and it was taken for the old file
    stat = os.stat(npz)
    other = synthetic.write_mnist(str(tmp_path / 'other.npz'), seed=2)
    assert os.path.getsize(other) == stat.st_size
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(other, npz)
    images, _ = source.load()
    third = metrics.reference_features(extractor, images, 64, source.identity(),
                                       str(tmp_path / 'stats'))
    assert not np.array_equal(third.features, changed.features)


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


def test_offline_without_weights_is_one_error(monkeypatch):
    def offline(*_args, **_kwargs):  # as Keras fails to fetch the weights with no network
        raise Exception('URL fetch failure on {}: None -- [Errno 101] Network is '
                        'unreachable'.format(metrics.INCEPTION_URL))

    monkeypatch.setattr(keras.applications, 'InceptionV3', offline)
    with pytest.raises(UsageError) as error:
        metrics.load_feature_model()
    assert 'cannot download InceptionV3' in str(error.value)
    assert '--inception_weights=PATH' in str(error.value)
    assert metrics.INCEPTION_URL.endswith(metrics.INCEPTION_FILE) and \
        metrics.INCEPTION_URL in str(error.value)


# ----------------------------------------------------------------------------- TTUR's protocol

GRAPH_DIM, GRAPH_CLASSES = 12, 5


def ttur_like_graph(path):
    """A small frozen GraphDef with the node names and structure of TTUR's Inception graph: an
    undecoded image, ExpandDims to a batch of one, ResizeBilinear, pool_3, and a softmax after a
    reshape to a batch of one."""
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        contents = tf.compat.v1.placeholder(tf.string, [], name='DecodeJpeg/contents')
        image = tf.cast(tf.io.decode_jpeg(contents, channels=3, name='DecodeJpeg'), tf.float32,
                        name='Cast')
        x = tf.expand_dims(image, 0, name='ExpandDims')
        x = tf.compat.v1.image.resize_bilinear(x, [29, 29], name='ResizeBilinear')
        x = tf.multiply(tf.subtract(x, 128.0, name='Sub'), 1 / 128.0, name='Mul')
        kernel = tf.constant(rng.normal(0, 0.3, (3, 3, 3, GRAPH_DIM)).astype(np.float32))
        x = tf.nn.relu(tf.nn.conv2d(x, kernel, 2, 'VALID', name='conv'))
        pool = tf.nn.avg_pool2d(x, [1, 14, 14, 1], [1, 1, 1, 1], 'VALID', name='pool_3')
        flat = tf.reshape(pool, [1, GRAPH_DIM], name='pool_3/_reshape')
        weights = tf.constant(rng.normal(0, 1, (GRAPH_DIM, GRAPH_CLASSES)).astype(np.float32))
        logits = tf.matmul(flat, weights, name='softmax/logits/MatMul')
        tf.nn.softmax(tf.nn.bias_add(logits, tf.ones([GRAPH_CLASSES]), name='softmax/logits'),
                      name='softmax')
    with open(path, 'wb') as f:
        f.write(graph.as_graph_def().SerializeToString())
    return path, weights_of(graph)


def weights_of(graph):
    with tf.compat.v1.Session(graph=graph) as sess:
        return sess.run(graph.get_operation_by_name('softmax/logits/MatMul').inputs[1])


def one_image_at_a_time(path, pixels):
    """pool_3 of each image, fed alone into ExpandDims:0 of the graph as TTUR's fid.py does."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(open(path, 'rb').read())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name='FID_Inception_Net')
    with tf.compat.v1.Session(graph=graph) as sess:
        return np.concatenate([sess.run('FID_Inception_Net/pool_3:0', {
            'FID_Inception_Net/ExpandDims:0': image[None]}).reshape(1, -1) for image in pixels])


def numpy_fid(a, b):
    """FID from features with numpy alone: Tr((S1^1/2 S2 S1^1/2)^1/2) by eigendecomposition."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root @ s2 @ root)
    return np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(
        np.sqrt(np.clip(inner, 0, None)))


@pytest.fixture(scope='session')
def graph_file(tmp_path_factory):
    return ttur_like_graph(str(tmp_path_factory.mktemp('graph') / 'classify_image_graph_def.pb'))


def test_inception_graph_batches_equal_one_image_at_a_time(graph_file):
    path, weights = graph_file
    net, name = metrics.load_feature_model(inception_graph=path)
    assert name.startswith('TTUR inception-2015-12-05 graph ' + os.path.abspath(path) + ' sha256:')
    extractor = metrics.FeatureExtractor(net, name)
    assert extractor.protocol['rounding'].startswith('to whole 0..255 values')
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (40, 20, 20, 3)).astype(np.float32)
    features, probabilities = extractor(iter([images[:7], images[7:]]), 40, 'test')
    # fed as TTUR feeds it: whole 0..255 values, one image at a time
    pixels = np.round(np.clip((images + 1) * 127.5, 0, 255))
    alone = one_image_at_a_time(path, pixels)
    assert features.shape == (40, GRAPH_DIM)
    np.testing.assert_allclose(features, alone, rtol=1e-5, atol=1e-6)
    logits = alone @ weights  # improved-GAN's IS: softmax of pool_3 times the logit weights
    want = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probabilities, want / want.sum(1, keepdims=True), rtol=1e-4)
    # images less than half a level from the same whole values: the same features (in the same
    # batches: another split may round differently in the last bit)
    nudged = pixels / 127.5 - 1 + rng.uniform(-0.4, 0.4, pixels.shape).astype(np.float32) / 127.5
    np.testing.assert_array_equal(extractor(iter([nudged[:7], nudged[7:]]), 40, 'test')[0],
                                  features)
    # and the FID of those features is the numpy reference
    other = one_image_at_a_time(path, np.round(np.clip((images[::-1] * 0.5 + 1) * 127.5, 0,
                                                       255)))
    assert metrics.fid(alone, other) == pytest.approx(numpy_fid(alone, other), rel=1e-6)


def test_inception_graph_that_is_not_one(tmp_path):
    junk = tmp_path / 'junk.pb'
    junk.write_bytes(b'\x00not a graph' * 10)
    with pytest.raises(UsageError, match='is not a TensorFlow GraphDef|lacks the nodes'):
        metrics.load_feature_model(inception_graph=str(junk))
    with pytest.raises(UsageError, match='--inception_graph nope.pb does not exist: pass '
                       'classify_image_graph_def.pb from http'):
        metrics.load_feature_model(inception_graph='nope.pb')


def test_statistics_file_gives_the_fid_of_its_features(tmp_path):
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(300, 6)), rng.normal(0.2, 1.1, size=(200, 6))
    path = str(tmp_path / 'fid_stats_test.npz')
    metrics.Reference(real).save_stats(path)
    with np.load(path) as data:
        assert sorted(data.files) == ['mu', 'sigma']  # TTUR's format
    stats = metrics.load_stats(path)
    assert stats.features is None and 'statistics file' in stats.origin
    assert metrics.fid(None, fake, (stats.mu, stats.sigma)) == pytest.approx(
        metrics.fid(real, fake), rel=1e-12)
    np.savez(str(tmp_path / 'bad.npz'), mu=np.zeros(3), sigma=np.eye(4))
    with pytest.raises(UsageError, match='mu has shape \\(3,\\) and sigma \\(4, 4\\)'):
        metrics.load_stats(str(tmp_path / 'bad.npz'))
    np.savez(str(tmp_path / 'other.npz'), features=np.zeros(3))
    with pytest.raises(UsageError, match='is not a TTUR statistics file with arrays mu and sigma'):
        metrics.load_stats(str(tmp_path / 'other.npz'))


def test_reference_statistics_give_the_fid_and_nan_for_the_rest(feature_model, tmp_path):
    # statistics hold no features: KID and precision/recall are NaN, the FID is that of the stats
    extractor = metrics.FeatureExtractor(*metrics.load_feature_model(feature_model))  # 16-d
    real = np.random.default_rng(5).normal(size=(100, 16))
    metrics.Reference(real).save_stats(str(tmp_path / 'stats.npz'))
    keras.utils.set_random_seed(1)
    generator = model.Gen_Net(1, 100, 32, filters=32)
    result = metrics.evaluate(generator, extractor, metrics.load_stats(str(tmp_path / 'stats.npz')),
                              8, seed=2)
    assert all(np.isnan(result[k]) for k in ('kid_mean', 'kid_std', 'precision', 'recall'))
    whole = metrics.evaluate(generator, extractor, metrics.Reference(real), 8, seed=2)
    assert result['fid'] == pytest.approx(whole['fid'], rel=1e-9) and whole['fid'] > 0
    assert not np.isnan(whole['kid_mean']) and 0 <= whole['precision'] <= 1


def test_statistics_of_another_dimension_are_one_error(feature_model, tmp_path):
    extractor = metrics.FeatureExtractor(*metrics.load_feature_model(feature_model))  # 16-d
    path = str(tmp_path / 'stats2048.npz')
    np.savez(path, mu=np.zeros(2048), sigma=np.eye(2048))
    generator = keras.Sequential([keras.Input([100]), keras.layers.Dense(16 * 16),
                                  keras.layers.Reshape([16, 16, 1])])
    with pytest.raises(UsageError, match='holds 2048-d statistics but .* gives 16-d features'):
        metrics.evaluate(generator, extractor, metrics.load_stats(path), 8)


def tiny_net_under(policy, weights=None):
    keras.mixed_precision.set_global_policy(policy)
    x = inputs = keras.Input([8, 8, 1])
    x = keras.layers.Conv2D(4, 3, activation='tanh')(x)
    net = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    if weights:
        net.set_weights(weights)
    keras.mixed_precision.set_global_policy('float32')
    return net


def test_reference_cache_keeps_precisions_apart(tmp_path):
    # --eval_every builds the feature model under the training precision, evaluate.py under
    # float32: the same weights, different features, and never one served the other's
    images = tf.data.Dataset.from_tensor_slices(
        np.random.default_rng(5).uniform(-1, 1, (12, 8, 8, 1)).astype(np.float32))
    fp32 = tiny_net_under('float32')
    bf16 = tiny_net_under('mixed_bfloat16', fp32.get_weights())
    a = metrics.reference_features(metrics.FeatureExtractor(fp32, 'tiny'), images, 12, 'x',
                                   str(tmp_path))
    b = metrics.reference_features(metrics.FeatureExtractor(bf16, 'tiny'), images, 12, 'x',
                                   str(tmp_path))
    assert len(os.listdir(tmp_path)) == 2
    assert not np.array_equal(a.features, b.features)
    np.testing.assert_allclose(a.features, b.features, atol=0.05)


def test_precision_and_recall_do_not_depend_on_the_feature_scale():
    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=(400, 8)), rng.normal(0.3, 1.2, size=(400, 8))
    want = metrics.precision_recall(real, fake)
    for scale in (1e-5, 1e5):
        assert metrics.precision_recall(real * scale, fake * scale) == want


def test_inception_score_splits_as_ttur():
    probabilities = np.random.default_rng(7).dirichlet(np.ones(10) * 0.3, size=1003)
    n, scores = len(probabilities), []
    for i in range(10):  # TTUR's and torch-fidelity's boundaries
        part = probabilities[i * n // 10:(i + 1) * n // 10]
        py = part.mean(0, keepdims=True)
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part + 1e-12) - np.log(py + 1e-12)),
                                            1))))
    assert metrics.inception_score(probabilities) == pytest.approx(
        (np.mean(scores), np.std(scores)), rel=1e-12)
