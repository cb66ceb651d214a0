"""Image-quality metrics of a generator against real images: FID, KID, precision/recall and IS.

Features come from a feature model: Keras' InceptionV3 (2048-d pool features and the 1000 class
probabilities) or any saved .keras model mapping images to feature vectors (and, as a second
output, class probabilities for the Inception Score).
"""
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

import dataset
from utils import UsageError

INCEPTION_FILE = 'inception_v3_weights_tf_dim_ordering_tf_kernels.h5'
INCEPTION_URL = ('https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/'
                 + INCEPTION_FILE)


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


def knn_radii(features, k=3):
    """Distance from each row to its k-th nearest other row."""
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    return distances[:, k]


def coverage(manifold, radii, queries, chunk=1024):
    """Fraction of queries inside at least one ball (manifold row, its radius)."""
    manifold = np.asarray(manifold, np.float64)
    squares = np.sum(manifold ** 2, axis=1)
    inside = []
    for start in range(0, len(queries), chunk):
        q = np.asarray(queries[start:start + chunk], np.float64)
        d2 = np.sum(q ** 2, axis=1)[:, None] + squares[None] - 2 * q @ manifold.T
        inside.append(np.any(d2 <= radii[None] ** 2 + 1e-9, axis=1))
    return float(np.mean(np.concatenate(inside)))


def precision_recall(real, fake, k=3, real_radii=None):
    """Improved precision and recall (Kynkaanniemi et al. 2019): the share of generated images
    inside the real images' k-NN manifold, and of real images inside the generated one."""
    real_radii = knn_radii(real, k) if real_radii is None else real_radii
    return coverage(real, real_radii, fake), coverage(fake, knn_radii(fake, k), real)


def inception_score(probabilities, splits=10):
    """IS (Salimans et al. 2016): exp(E KL(p(y|x) || p(y))), mean and std over splits."""
    scores = []
    for part in np.array_split(np.asarray(probabilities, np.float64), splits):
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


def load_feature_model(feature_model='', inception_weights=''):
    """The feature model and a string that identifies it (for the statistics cache)."""
    if feature_model:
        if not os.path.isfile(feature_model):
            raise UsageError('--feature_model {} does not exist: pass a saved .keras model that '
                             'maps images to feature vectors.'.format(feature_model))
        try:
            net = keras.models.load_model(feature_model, compile=False)
        except (ValueError, OSError) as e:
            raise UsageError('cannot load --feature_model {} ({}).'.format(
                feature_model, str(e).splitlines()[0][:200]))
        return net, dataset.file_identity(feature_model)
    if inception_weights:
        if not os.path.isfile(inception_weights):
            raise UsageError('--inception_weights {} does not exist: pass Keras\' {}.'.format(
                inception_weights, INCEPTION_FILE))
        return inception_v3(inception_weights), 'inception_v3 ' + dataset.file_identity(inception_weights)
    return inception_v3('imagenet'), 'inception_v3 imagenet (keras.applications)'


class FeatureExtractor:
    """Runs a feature model on batches of images in [-1, 1] of any size and channel count."""

    def __init__(self, net, name):
        self.net, self.name = net, name
        shape = net.input_shape
        self.size, self.channels = tuple(shape[1:3]), shape[3]
        self.has_probabilities = len(net.outputs) > 1
        self.run = tf.function(self.features)

    def features(self, images):
        """Features (and class probabilities) of a batch, resized and coloured for the model."""
        images = tf.cast(images, tf.float32)
        if images.shape[-1] == 1 and self.channels == 3:
            images = tf.repeat(images, 3, axis=-1)  # grayscale repeated to 3 channels
        if tuple(images.shape[1:3]) != self.size:
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
    """Real images' features with what every evaluation needs of them: mean, covariance, k-NN radii."""

    def __init__(self, features, mu=None, sigma=None, radii=None):
        self.features = features
        if mu is None:
            mu, sigma = statistics(features)
            radii = knn_radii(features)
        self.mu, self.sigma, self.radii = mu, sigma, radii

    def save(self, path, key):
        """Write to path atomically, tagged with key."""
        tmp = path + '.tmp.npz'
        np.savez(tmp, features=self.features, mu=self.mu, sigma=self.sigma, radii=self.radii,
                 key=key)
        os.replace(tmp, path)


def reference_features(extractor, images, count, source, stats_dir, batch=100):
    """The Reference of the first count real images, cached in stats_dir and recomputed when the
    source (a string naming the data and how it was made) or the feature model changes."""
    key = json.dumps({'source': source, 'count': count, 'feature_model': extractor.name},
                     sort_keys=True)
    path = os.path.join(stats_dir, 'ref-{}.npz'.format(hashlib.sha1(key.encode()).hexdigest()[:16]))
    if os.path.isfile(path):
        with np.load(path) as data:
            if str(data['key']) == key:
                logging.info('Reference features of %s from %s', source, path)
                return Reference(data['features'], data['mu'], data['sigma'], data['radii'])
    start = time.time()
    features, _ = extractor(images.batch(batch).take(-(-count // batch)), count,
                            'reference features')
    reference = Reference(features)
    os.makedirs(stats_dir, exist_ok=True)
    reference.save(path, key)
    logging.info('Reference features of %d images of %s in %.0f s, cached in %s', len(features),
                 source, time.time() - start, path)
    return reference


def generated_features(extractor, generator, count, seed, batch=100):
    """Features and probabilities of count images from seeded latents (the same for every call)."""
    noise_dim = generator.inputs[0].shape[-1]
    latents = np.random.default_rng(seed).standard_normal((count, noise_dim)).astype(np.float32)

    def batches():
        for start in range(0, count, batch):
            yield generator(latents[start:start + batch], training=False)

    return extractor(batches(), count, 'generated features')


def evaluate(generator, extractor, reference, count, seed=0, batch=100):
    """Every metric of count generated images against a Reference, as a dict."""
    start = time.time()
    fake, probabilities = generated_features(extractor, generator, count, seed, batch)
    real = reference.features
    kid_mean, kid_std = kid(real, fake)
    precision, recall = precision_recall(real, fake, real_radii=reference.radii)
    is_mean, is_std = (inception_score(probabilities) if probabilities is not None
                       else (float('nan'), float('nan')))
    return {'fid': fid(real, fake, (reference.mu, reference.sigma)), 'kid_mean': kid_mean, 'kid_std': kid_std,
            'precision': precision, 'recall': recall, 'is_mean': is_mean, 'is_std': is_std,
            'num_samples': count, 'num_reference': len(real), 'feature_model': extractor.name,
            'seconds': time.time() - start}
