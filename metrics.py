"""Image-quality metrics of a generator against real images: FID, KID, precision/recall and IS;
for a conditional generator also its conditional accuracy (by a classifier of the real labelled
images) and the FID of each class.

Features come from a feature model: Keras' InceptionV3 (2048-d pool features and the 1000 class
probabilities), TTUR's frozen 2015 Inception graph (the published FID protocol), or any saved
.keras model mapping images to feature vectors (and, as a second output, class probabilities for
the Inception Score).
"""
import dataclasses
import hashlib
import json
import os
import time

import keras
import numpy as np
import scipy.linalg
import tensorflow as tf
from absl import logging
from sklearn.neighbors import NearestNeighbors
from tqdm import tqdm

import conditions
from config import GRAPH_FILE, GRAPH_URL, INCEPTION_FILE, INCEPTION_URL
from errors import UsageError
import files
import model

# changes whenever the images fed to a feature model change: cached statistics are then redone
PREPROCESSING_VERSION = 2
K = 3  # the neighbours of improved precision and recall (Kynkaanniemi et al. 2019)


# ----------------------------------------------------------------------------- the metrics

def frechet_distance(mu1, sigma1, mu2, sigma2):
    """FID (Heusel et al. 2017): |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(covmean)):  # singular product: nudge the diagonals, as TTUR does
        offset = np.eye(len(sigma1)) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2)
                 - 2 * np.trace(covmean))


def statistics(features):
    """Mean and covariance of feature rows, for the FID."""
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fid(real, fake, real_statistics=None):
    """FID between two sets of feature rows (real's mean and covariance may be given)."""
    return max(0.0, frechet_distance(*(real_statistics or statistics(real)), *statistics(fake)))


def kid(real, fake, subsets=100, subset_size=1000, seed=0):
    """KID (Binkowski et al. 2018): the unbiased MMD^2 with kernel (x.y / d + 1)^3, mean and std
    over random subsets of subset_size rows of each set."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    m = min(subset_size, len(real), len(fake))
    d = real.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        kxx, kyy, kxy = [(a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y))]
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                      + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def knn_radii(features, k=K):
    """Distance from each row to its k-th nearest other row."""
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    return distances[:, k]


def coverage(manifold, radii, queries, chunk=1024):
    """Fraction of queries inside at least one ball (manifold row, its radius).

    Squared distances come from |q|^2 + |m|^2 - 2 q.m, whose rounding error grows with the
    squared norms: the tolerance is relative to them, so the result does not depend on the
    features' scale."""
    manifold = np.asarray(manifold, np.float64)
    squares = np.sum(manifold ** 2, axis=1)
    inside = []
    for start in range(0, len(queries), chunk):
        q = np.asarray(queries[start:start + chunk], np.float64)
        norms = np.sum(q ** 2, axis=1)[:, None] + squares[None]
        d2 = norms - 2 * q @ manifold.T
        inside.append(np.any(d2 <= radii[None] ** 2 + 1e-9 * norms, axis=1))
    return float(np.mean(np.concatenate(inside)))


def precision_recall(real, fake, k=K, real_radii=None):
    """Improved precision and recall (Kynkaanniemi et al. 2019): the share of generated images
    inside the real images' k-NN manifold, and of real images inside the generated one."""
    real_radii = knn_radii(real, k) if real_radii is None else real_radii
    return coverage(real, real_radii, fake), coverage(fake, knn_radii(fake, k), real)


def inception_score(probabilities, splits=10):
    """IS (Salimans et al. 2016): exp(E KL(p(y|x) || p(y))), mean and std over splits, split at
    i * N // splits as TTUR, improved-GAN and torch-fidelity do."""
    probabilities = np.asarray(probabilities, np.float64)
    n, scores = len(probabilities), []
    for i in range(splits):
        part = probabilities[i * n // splits:(i + 1) * n // splits]
        py = part.mean(axis=0, keepdims=True)
        kl = np.sum(part * (np.log(part + 1e-12) - np.log(py + 1e-12)), axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


# ----------------------------------------------------------------------------- feature models

def inception_v3(weights='imagenet'):
    """Keras' InceptionV3 as a feature model: images -> [2048-d pool features, class probabilities].

    weights: 'imagenet' (Keras' download, cached), a local .h5 file, or None (random, for tests).
    """
    try:
        base = keras.applications.InceptionV3(include_top=True, weights=weights)
    except Exception as e:  # the download or the file failed
        if weights == 'imagenet':
            raise UsageError('cannot download InceptionV3\'s ImageNet weights ({}): fetch {} on a '
                             'machine with internet and pass --inception_weights=PATH, or pass '
                             '--feature_model=PATH.'.format(type(e).__name__, INCEPTION_URL))
        raise UsageError('cannot load --inception_weights {} ({}): it must be Keras\' {}.'.format(
            weights, str(e).splitlines()[0][:200], INCEPTION_FILE))
    return keras.Model(base.input, [base.get_layer('avg_pool').output, base.output],
                       name='inception_v3')


def file_hash(path):
    """A file's absolute path and the first 16 hex digits of its SHA-256: names its content."""
    digest = hashlib.sha256()
    with files.open_file(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return '{} sha256:{}'.format(files.absolute(path), digest.hexdigest()[:16])


class InceptionGraph:
    """TTUR's frozen 2015 Inception graph (classify_image_graph_def.pb of inception-2015-12-05),
    the feature model of TTUR's fid.py, of TF-GAN and, ported, of pytorch-fid, fed as TTUR feeds
    it: RGB in 0..255 into ExpandDims:0, the graph resizing to 299x299 itself; out come the
    2048-d pool_3 features and the class probabilities, rebuilt from pool_3 and the weights of
    softmax/logits/MatMul as TTUR's and improved-GAN's Inception Score do (the graph's own softmax
    reshapes to a batch of one image)."""
    input_shape = (None, None, None, 3)  # any size: the graph resizes
    outputs = ('pool_3', 'softmax')

    def __init__(self, path):
        graph_def = tf.compat.v1.GraphDef()
        try:
            with files.open_file(path, 'rb') as f:
                graph_def.ParseFromString(f.read())
        except Exception as e:  # a file that is no GraphDef
            raise UsageError('--inception_graph {} is not a TensorFlow GraphDef ({}): pass {} '
                             'from {}.'.format(path, type(e).__name__, GRAPH_FILE, GRAPH_URL))

        def imported(pixels):
            pool, matmul = tf.compat.v1.import_graph_def(
                graph_def, input_map={'ExpandDims:0': pixels}, name='',
                return_elements=['pool_3:0', 'softmax/logits/MatMul'])
            features = tf.reshape(pool, [tf.shape(pool)[0], -1])
            return features, tf.nn.softmax(tf.matmul(features, matmul.inputs[1]))

        try:
            wrapped = tf.compat.v1.wrap_function(
                imported, [tf.TensorSpec([None, None, None, 3], tf.float32)])
        except (ValueError, KeyError, tf.errors.OpError) as e:
            raise UsageError('--inception_graph {} lacks the nodes of TTUR\'s Inception graph '
                             '(ExpandDims, pool_3, softmax/logits/MatMul: {}): pass {} from '
                             '{}.'.format(path, str(e).splitlines()[0][:120], GRAPH_FILE,
                                          GRAPH_URL))
        self.run = wrapped.prune(wrapped.inputs[0], wrapped.outputs)
        self.dtype_policy = keras.DTypePolicy('float32')

    def __call__(self, images, training=False):
        """[features, probabilities] of images in [-1, 1], rounded to whole 0..255 values first
        (uint8, as TTUR's and StyleGAN2-ADA's generated images are)."""
        pixels = tf.round(tf.clip_by_value((images + 1.0) * 127.5, 0.0, 255.0))
        return list(self.run(pixels))


def load_feature_model(feature_model='', inception_weights='', inception_graph=''):
    """The feature model and a string that identifies it (for the statistics cache)."""
    if inception_graph:
        if not files.isfile(inception_graph):
            raise UsageError('--inception_graph {} does not exist: pass {} from {} (TTUR\'s '
                             'Inception graph).'.format(inception_graph, GRAPH_FILE, GRAPH_URL))
        return InceptionGraph(inception_graph), 'TTUR inception-2015-12-05 graph ' + file_hash(
            inception_graph)
    if feature_model:
        if not files.isfile(feature_model):
            raise UsageError('--feature_model {} does not exist: pass a saved .keras model that '
                             'maps images to feature vectors.'.format(feature_model))
        try:
            net = keras.models.load_model(feature_model, compile=False)
        except (ValueError, OSError) as e:
            raise UsageError('cannot load --feature_model {} ({}).'.format(
                feature_model, str(e).splitlines()[0][:200]))
        inputs, features = net.input_shape, keras.ops.shape(net.outputs[0])
        if not isinstance(inputs, tuple) or len(inputs) != 4 or None in inputs[1:] \
                or len(features) != 2 or not features[1] or features[1] < 2:
            raise UsageError('--feature_model {} maps {} to {}: it needs images [N, H, W, C] in '
                             'and feature vectors [N, D] of D >= 2 out (a generator or a '
                             'discriminator is neither), e.g. the one python -m '
                             'tools.digit_features writes.'.format(
                                 feature_model, inputs, tuple(features)))
        return net, file_hash(feature_model)
    if inception_weights:
        if not files.isfile(inception_weights):
            raise UsageError('--inception_weights {} does not exist: pass Keras\' {}.'.format(
                inception_weights, INCEPTION_FILE))
        return inception_v3(inception_weights), 'inception_v3 ' + file_hash(inception_weights)
    return inception_v3('imagenet'), 'inception_v3 imagenet (keras.applications)'


class FeatureExtractor:
    """Runs a feature model on batches of images in [-1, 1] of any size and channel count."""

    def __init__(self, net, name):
        self.net, self.name = net, name
        shape = net.input_shape
        self.size, self.channels = tuple(shape[1:3]), shape[3]
        self.has_probabilities = len(net.outputs) > 1
        self.run = tf.function(self.features)
        graph = isinstance(net, InceptionGraph)
        # what the statistics depend on beside the images: the cache key and the eval protocol
        self.protocol = {
            'feature_model': name,
            'compute_dtype': ','.join(sorted({layer.dtype_policy.compute_dtype
                                              for layer in getattr(net, 'layers', [net])})),
            'resize': ('by the graph (ResizeBilinear to 299x299)' if graph else
                       'bilinear to {}x{} (tf.image.resize)'.format(*self.size)),
            'rounding': ('to whole 0..255 values (uint8), as TTUR' if graph else
                         'none: float images in [-1, 1]'),
            'grayscale': 'repeated to 3 channels' if self.channels == 3 else 'as it is',
            'preprocessing_version': PREPROCESSING_VERSION,
        }

    def features(self, images):
        """Features (and class probabilities) of a batch, resized and coloured for the model."""
        images = tf.cast(images, tf.float32)
        if images.shape[-1] == 1 and self.channels == 3:
            images = tf.repeat(images, 3, axis=-1)  # grayscale repeated to 3 channels
        if None not in self.size and tuple(images.shape[1:3]) != self.size:
            images = tf.image.resize(images, self.size)
        out = self.net(images, training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        return [tf.cast(tf.reshape(o, [tf.shape(o)[0], -1]), tf.float32) for o in out]

    def __call__(self, batches, total, desc):
        """Features [total, d] and probabilities [total, classes] (or None) of a batch iterator."""
        features, probabilities = [], []
        with tqdm(total=total, unit='img', desc=desc, dynamic_ncols=True, leave=False) as bar:
            for batch in batches:
                out = self.run(batch)
                features.append(out[0].numpy())
                if self.has_probabilities:
                    probabilities.append(out[1].numpy())
                bar.update(len(features[-1]))
        features = np.concatenate(features)[:total]
        return features, np.concatenate(probabilities)[:total] if probabilities else None


# ----------------------------------------------------------------------------- evaluation

class Reference:
    """The real side of every metric: the real images' features (None when only their statistics
    are known), their mean and covariance, and k-NN radii; origin says where they come from;
    labels: their condition vectors [N, C], for the FID of each class."""

    def __init__(self, features, mu=None, sigma=None, radii=None, origin='real images',
                 labels=None):
        self.features, self.origin, self.labels = features, origin, labels
        if features is not None and len(features) < K + 1:
            raise UsageError('{} gives {} images; precision and recall need at least k + 1 = {} '
                             '(and the FID many more).'.format(origin, len(features), K + 1))
        if mu is None:
            mu, sigma = statistics(features)
            radii = knn_radii(features)
        self.mu, self.sigma, self.radii = mu, sigma, radii

    def save(self, path, key):
        """Write to path, completely or not at all, tagged with key."""
        with files.saving('the reference statistics', path) as tmp, files.open_file(tmp, 'wb') as f:
            np.savez(f, features=self.features, mu=self.mu, sigma=self.sigma, radii=self.radii,
                     key=key, **({} if self.labels is None else {'labels': self.labels}))

    def save_stats(self, path):
        """Write mu and sigma in TTUR's format (fid_stats_*.npz), completely or not at all."""
        with files.saving('the statistics file', path) as tmp, files.open_file(tmp, 'wb') as f:
            np.savez(f, mu=self.mu, sigma=self.sigma)


def load_stats(path):
    """The Reference of a TTUR-format statistics file (mu, sigma): FID only, no features."""
    if not files.isfile(path):
        raise UsageError('--reference_stats {} does not exist: pass a TTUR-format .npz with mu and '
                         'sigma (e.g. fid_stats_cifar10_train.npz), or one evaluate.py '
                         '--save_stats wrote.'.format(path))
    try:
        with files.open_file(path, 'rb') as f, np.load(f) as data:
            mu, sigma = np.asarray(data['mu'], np.float64), np.asarray(data['sigma'], np.float64)
    except Exception as e:  # not an npz, or no mu / sigma in it
        raise UsageError('--reference_stats {} is not a TTUR statistics file with arrays mu and '
                         'sigma ({}: {}).'.format(path, type(e).__name__, str(e)[:100]))
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise UsageError('--reference_stats {}: mu has shape {} and sigma {}, expected [d] and '
                         '[d, d].'.format(path, mu.shape, sigma.shape))
    return Reference(None, mu, sigma, origin='statistics file ' + files.absolute(path))


def reference_features(extractor, images, count, source, stats_dir, batch=100, condition=None):
    """The Reference of the first count real images, cached in stats_dir and recomputed when the
    source (a string naming the data and how it was made), the feature model, its precision or
    the preprocessing change. With a conditions.Condition, images come with their condition
    vectors, which the Reference keeps."""
    key = json.dumps({'source': source, 'count': count, 'protocol': extractor.protocol,
                      **({'condition': dataclasses.asdict(condition)} if condition else {})},
                     sort_keys=True)
    path = os.path.join(stats_dir, 'ref-{}.npz'.format(hashlib.sha1(key.encode()).hexdigest()[:16]))
    origin = '{} real images of {}'.format(count, source)
    if files.isfile(path):
        with files.open_file(path, 'rb') as f, np.load(f) as data:
            if str(data['key']) == key:
                logging.info('Reference features of %s from %s', source, path)
                return Reference(data['features'], data['mu'], data['sigma'], data['radii'],
                                 origin, data['labels'] if condition else None)
    start = time.time()
    batches, labels = images.batch(batch).take(-(-count // batch)), []
    if condition:
        batches = (labelled_batch(x, y, labels) for x, y in batches)
    features, _ = extractor(batches, count, 'reference features')
    reference = Reference(features, origin=origin,
                          labels=np.concatenate(labels)[:count] if condition else None)
    reference.save(path, key)
    logging.info('Reference features of %d images of %s in %.0f s, cached in %s', len(features),
                 source, time.time() - start, path)
    return reference


def labelled_batch(images, vectors, labels):
    """images, keeping their condition vectors in the list labels."""
    labels.append(vectors.numpy())
    return images


def generated_features(extractor, generator, count, seed, batch=100, condition=None,
                       judge=None):
    """Features and probabilities of count images from seeded latents (the same for every call);
    a conditional generator draws as many of each class as can be (conditions.balanced), and
    judge, a LabelClassifier, gives its accuracy on them: (features, probabilities, accuracy)."""
    noise_dim = generator.inputs[0].shape[-1]
    latents = np.random.default_rng(seed).standard_normal((count, noise_dim)).astype(np.float32)
    vectors = condition.balanced(count) if condition else None
    judged = []

    def batches():
        for start in range(0, count, batch):
            images = model.apply(generator, latents[start:start + batch],
                                 None if vectors is None else vectors[start:start + batch])
            if judge is not None:
                judged.append(judge.predict(images))
            yield images

    features, probabilities = extractor(batches(), count, 'generated features')
    accuracy = judge.accuracy(np.concatenate(judged), vectors) if judge is not None else None
    return features, probabilities, accuracy


def evaluate(generator, extractor, reference, count, seed=0, batch=100, condition=None,
             judge=None):
    """Every metric of count generated images against a Reference, as a dict; KID and
    precision/recall are NaN against statistics alone, which hold no features. A conditional
    generator (condition: its conditions.Condition) draws every class alike; with judge (a
    LabelClassifier) its conditional accuracy is measured, and with the Reference's labels the
    FID of each class."""
    start = time.time()
    fake, probabilities, accuracy = generated_features(extractor, generator, count, seed, batch,
                                                       condition, judge)
    if fake.shape[1] != len(reference.mu):
        raise UsageError('the {} holds {}-d statistics but {} gives {}-d features: use the feature '
                         'model the statistics were made with.'.format(
                             reference.origin, len(reference.mu), extractor.name, fake.shape[1]))
    real, nan = reference.features, float('nan')
    kid_mean, kid_std = kid(real, fake) if real is not None else (nan, nan)
    precision, recall = (precision_recall(real, fake, real_radii=reference.radii)
                         if real is not None else (nan, nan))
    is_mean, is_std = (inception_score(probabilities) if probabilities is not None
                       else (nan, nan))
    result = {'fid': fid(real, fake, (reference.mu, reference.sigma)), 'kid_mean': kid_mean,
              'kid_std': kid_std, 'precision': precision, 'recall': recall, 'is_mean': is_mean,
              'is_std': is_std, 'num_samples': count,
              'num_reference': None if real is None else len(real), 'reference': reference.origin,
              'feature_model': extractor.name, 'protocol': extractor.protocol}
    if condition is not None:
        result.update(conditional_results(condition, accuracy, judge, reference, fake))
    result['seconds'] = time.time() - start
    return result


def conditional_results(condition, accuracy, judge, reference, fake):
    """The conditional accuracy (of each attribute too) beside its classifier's on held-out real
    images, and the FID of each class against the real images of that class."""
    result = {}
    if accuracy is not None:
        result.update(conditional_accuracy=accuracy[0], classifier_accuracy=judge.ceiling[0])
        if condition.kind == conditions.ATTRIBUTES:
            result.update(attribute_accuracy=dict(zip(condition.names, accuracy[1])),
                          classifier_attribute_accuracy=dict(zip(condition.names,
                                                                 judge.ceiling[1])))
    if condition.kind == conditions.CLASS and reference.labels is not None:
        real_class = np.argmax(reference.labels, axis=1)
        fake_class = np.argmax(condition.balanced(len(fake)), axis=1)  # as they were drawn
        result['class_fid'] = {
            name: fid(reference.features[real_class == i], fake[fake_class == i])
            if min(np.sum(real_class == i), np.sum(fake_class == i)) > 1 else float('nan')
            for i, name in enumerate(condition.names)}
    return result


# ----------------------------------------------------------------------------- label classifier

CLASSIFIER_IMAGES = 10000  # real images, at most, that train and test a label classifier
CLASSIFIER_STEPS = 3000    # its training steps, at most (and at least 3 epochs)
CLASSIFIER_EPOCHS = 15


def label_net(size, channels, condition):
    """A small CNN from images [size, size, channels] in [-1, 1] to class probabilities (softmax)
    or each attribute's probability (sigmoid)."""
    x = inputs = keras.Input([size, size, channels])
    for width in (32, 64, 128):
        # state size: size / 2 x size / 2 x 32, then / 4 x 64, then / 8 x 128
        x = keras.layers.Conv2D(width, 3, padding='same', activation='relu')(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Dropout(0.3)(keras.layers.Flatten()(x))
    x = keras.layers.Dense(128, activation='relu')(x)
    output = keras.layers.Dense(condition.size, activation='softmax'
                                if condition.kind == conditions.CLASS else 'sigmoid')(x)
    return keras.Model(inputs, output, name='label_classifier')


class LabelClassifier:
    """A classifier of the real labelled images, which judges whether a generated image is of the
    condition it was drawn for; ceiling: its (overall, per attribute) accuracy on held-out real
    images."""

    def __init__(self, net, condition, ceiling):
        self.net, self.condition, self.ceiling = net, condition, ceiling
        self.run = tf.function(lambda x: net(x, training=False))

    def predict(self, images):
        """The predicted condition vectors of a batch: one-hot classes, or 0/1 attributes."""
        p = self.run(tf.cast(images, tf.float32)).numpy()
        return self.condition.vectors(p.argmax(axis=1) if self.condition.kind == conditions.CLASS
                                      else p > 0.5)

    def accuracy(self, predicted, vectors):
        """(share of images whose class, or each attribute, is the one asked for; per
        attribute: the share right of each, [] for classes)."""
        if self.condition.kind == conditions.CLASS:
            return float(np.mean(predicted.argmax(1) == vectors.argmax(1))), []
        right = np.mean(predicted == vectors, axis=0)
        return float(right.mean()), right.tolist()


def label_classifier(images, count, condition, source, stats_dir):
    """The LabelClassifier of count labelled real images (image, condition vector), or of
    CLASSIFIER_IMAGES of them evenly spread (a folder's records come class by class), every
    tenth held out: trained once and cached in stats_dir, keyed like the reference statistics
    (its weights and accuracy, no code)."""
    stride = -(-count // CLASSIFIER_IMAGES)
    images, count = images.shard(stride, 0), len(range(0, count, stride))
    key = json.dumps({'source': source, 'count': count,
                      'condition': dataclasses.asdict(condition), 'version': 1}, sort_keys=True)
    stem = os.path.join(stats_dir, 'classifier-{}'.format(
        hashlib.sha1(key.encode()).hexdigest()[:16]))
    shape = tuple(images.element_spec[0].shape)
    net = label_net(shape[0], shape[-1], condition)
    if files.isfile(stem + '.json') and files.isfile(stem + '.weights.h5'):
        with files.open_file(stem + '.json') as f:
            saved = json.load(f)
        if saved.get('key') == key:
            net.load_weights(stem + '.weights.h5')
            logging.info('Label classifier of %s from %s (%.1f%% right on held-out images)',
                         source, stem + '.weights.h5', 100 * saved['accuracy'][0])
            return LabelClassifier(net, condition, tuple(saved['accuracy']))
    start = time.time()
    x, y = [], []
    for batch_x, batch_y in images.batch(500).take(-(-count // 500)):
        x.append(batch_x.numpy())
        y.append(batch_y.numpy())
    x, y = np.concatenate(x)[:count], np.concatenate(y)[:count]
    held = np.arange(len(x)) % 10 == 0
    if held.sum() < 2 or (~held).sum() < 2:
        raise UsageError('{} gives {} labelled images; the conditional accuracy\'s classifier '
                         'needs at least 12.'.format(source, len(x)))
    trained = keras.Model(net.inputs, net(keras.layers.RandomTranslation(
        0.06, 0.06, fill_mode='nearest')(net.inputs[0])))
    classes = condition.kind == conditions.CLASS
    trained.compile(keras.optimizers.Adam(1e-3), 'categorical_crossentropy' if classes
                    else 'binary_crossentropy')
    epochs = max(3, min(CLASSIFIER_EPOCHS, CLASSIFIER_STEPS * 64 // max(1, (~held).sum())))
    trained.fit(x[~held], y[~held], batch_size=64, epochs=epochs, verbose=0)
    classifier = LabelClassifier(net, condition, None)
    accuracy = classifier.accuracy(np.concatenate([
        classifier.predict(x[held][i:i + 500]) for i in range(0, held.sum(), 500)]), y[held])
    classifier.ceiling = accuracy
    model.save_network(net, stem + '.weights.h5', 'the label classifier')
    files.write_json(stem + '.json', dict(key=key, accuracy=accuracy), 'the label classifier')
    logging.info('Label classifier of %d images of %s trained in %.0f s (%d epochs): %.1f%% right '
                 'on the %d held out, cached in %s', len(x), source, time.time() - start, epochs,
                 100 * accuracy[0], held.sum(), stem + '.weights.h5')
    return classifier
