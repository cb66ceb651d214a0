"""DiffAugment (Zhao et al. 2020): one differentiable augmentation of real and generated images
before every discriminator call, so that a discriminator trained on few images cannot memorise
them. Randomness is stateless: drawn for the whole global batch from a seed made of the run's
seed and the global step, then sliced by replica, so resumed and distributed runs augment each
image exactly as a single uninterrupted run does."""
import tensorflow as tf

POLICIES = ('color', 'translation', 'cutout')  # applied in this order, as the paper's code
TRANSLATION_RATIO = 0.125  # shift by up to 1/8 of the side, as the paper
CUTOUT_RATIO = 0.5  # a square of half the side, as the paper


def parse_policy(text):
    """'translation,color' -> ('translation', 'color'); empty -> (); ValueError naming the bad one."""
    names = tuple(p.strip() for p in text.split(',') if p.strip()) if text else ()
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError('augment policy {} is not one of {}'.format(
            ','.join(unknown), ','.join(POLICIES)))
    return names


def uniform(seed, shape, offset, count):
    """Stateless uniform [0, 1) numbers of shape [total, ...], rows offset .. offset+count."""
    return tf.random.stateless_uniform(shape, seed=seed)[offset:][:count]


def color(images, seed, offset, total):
    """Random brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5) per image."""
    n = tf.shape(images)[0]
    r = uniform(seed, [total, 3], offset, n)
    r = tf.cast(r, images.dtype)[:, None, None, :]
    images = images + (r[..., 0:1] - 0.5)
    mean = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - mean) * (r[..., 1:2] * 2) + mean
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * (r[..., 2:3] + 0.5) + mean


def translation(images, seed, offset, total):
    """Shift each image by up to 1/8 of its side in x and y; what comes in is zeros."""
    n, h, w = tf.shape(images)[0], images.shape[1], images.shape[2]
    shift = [int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)]
    r = uniform(seed, [total, 2], offset, n)
    dy = tf.cast(tf.floor(r[:, 0] * (2 * shift[0] + 1)), tf.int32) - shift[0]
    dx = tf.cast(tf.floor(r[:, 1] * (2 * shift[1] + 1)), tf.int32) - shift[1]
    ys = tf.range(h)[None] - dy[:, None]  # output row y shows input row y - dy
    xs = tf.range(w)[None] - dx[:, None]
    inside = ((ys >= 0) & (ys < h))[:, :, None] & ((xs >= 0) & (xs < w))[:, None, :]
    moved = tf.gather(images, tf.clip_by_value(ys, 0, h - 1), axis=1, batch_dims=1)
    moved = tf.gather(moved, tf.clip_by_value(xs, 0, w - 1), axis=2, batch_dims=1)
    return moved * tf.cast(inside, images.dtype)[..., None]


def cutout(images, seed, offset, total):
    """Set one square of half the side to zero in each image, anywhere it fits partly."""
    n, h, w = tf.shape(images)[0], images.shape[1], images.shape[2]
    size = [int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)]
    r = uniform(seed, [total, 2], offset, n)
    # the square's centre, as in the paper's code: 0 .. side (+1 for even squares)
    cy = tf.cast(tf.floor(r[:, 0] * (h + 1 - size[0] % 2)), tf.int32)
    cx = tf.cast(tf.floor(r[:, 1] * (w + 1 - size[1] % 2)), tf.int32)
    ys = tf.range(h)[None] - (cy[:, None] - size[0] // 2)
    xs = tf.range(w)[None] - (cx[:, None] - size[1] // 2)
    hole = ((ys >= 0) & (ys < size[0]))[:, :, None] & ((xs >= 0) & (xs < size[1]))[:, None, :]
    return images * tf.cast(tf.logical_not(hole), images.dtype)[..., None]


OPS = {'translation': translation, 'color': color, 'cutout': cutout}


def diff_augment(images, policy, seed, offset=0, total=None):
    """Apply the policy's augmentations, in the order of POLICIES.

    seed: a stateless seed, int64 [2]; the random parameters are drawn for `total` images (the
    global batch; default: this batch) and rows offset .. offset+len(images) are used."""
    total = tf.shape(images)[0] if total is None else total
    for index, name in enumerate(POLICIES):
        if name in policy:
            op_seed = tf.random.experimental.stateless_fold_in(seed, index)
            images = OPS[name](images, op_seed, offset, total)
    return images
